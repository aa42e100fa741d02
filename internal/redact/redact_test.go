package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"acme", `"acme"`},
		{"\x1b[2J\n", `"\x1b[2J\n"`},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `..."`},
	} {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://keys.example/key", "https://keys.example/key"},
		{"https://TOKEN@keys.example/key", "https://keys.example/key"},
		{"https://TOKEN:@keys.example/key", "https://keys.example/key"},
		{"https://user:TOKEN@keys.example/key?k=TOKEN#TOKEN", "https://keys.example/key"},
		{"https://keys.example/key?", "https://keys.example/key"},
		{"https:TOKEN@keys.example/key", "https:..."},
	} {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := URL(u); got != tt.want {
			t.Errorf("URL(%s) = %s; want %s", tt.in, got, tt.want)
		}
		if got := RawURL("  " + tt.in + "\n"); got != tt.want {
			t.Errorf("RawURL(%s) = %s; want %s", tt.in, got, tt.want)
		}
	}
	if got := RawURL("https://TOKEN@keys.example/%zz"); got != "(unparsable)" {
		t.Errorf("RawURL of an unparsable URL = %s; want (unparsable)", got)
	}
}
