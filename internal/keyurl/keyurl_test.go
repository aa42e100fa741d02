package keyurl

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, ok := range []string{"https://keys.example/k", "http://localhost:8080/k", "http://127.0.0.1/k", "http://[::1]/k", "http://LOCALHOST./k"} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%s) = %v; want it taken", ok, err)
		}
	}
	for _, tt := range []struct{ url, reason string }{
		{"http://keys.example/k", "is not https"},
		{"ftp://localhost/k", "is not https"},
		{"https:///k", "has no host"},
		{"https://TOKEN@/k", `key URL "https:///k" has no host`},
		{"https://keys.example/%zz", "invalid URL escape"},
	} {
		_, err := Parse(tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.reason) || strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("Parse(%s) = %v; want an error saying %q, without TOKEN", tt.url, err, tt.reason)
		}
	}
}

func TestCheckRedirect(t *testing.T) {
	via := func(s string) []*http.Request {
		u, _ := url.Parse(s)
		return []*http.Request{{URL: u}}
	}
	req := func(s string) *http.Request {
		u, _ := url.Parse(s)
		return &http.Request{URL: u}
	}
	for _, tt := range []struct {
		from, to string
		hops     int
		reason   string // "" when followed
	}{
		{"https://keys.example/k", "https://KEYS.example:443/other", 1, ""},
		{"http://localhost:8080/k", "http://localhost:8080/other", 1, ""},
		{"https://keys.example/k", "https://evil.example/k", 1, "another host"},
		{"https://keys.example/k", "https://keys.example:8443/k", 1, "another host"},
		{"https://keys.example/k", "http://keys.example/k", 1, "not https"},
		{"https://keys.example/k", "https://keys.example/k", MaxRedirects + 1, "more than 3 times"},
	} {
		v := via(tt.from)
		for len(v) < tt.hops {
			v = append(v, v[0])
		}
		err := CheckRedirect(req(tt.to), v)
		if (err == nil) != (tt.reason == "") || err != nil && !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("CheckRedirect(%s -> %s, %d hops) = %v; want %q", tt.from, tt.to, tt.hops, err, tt.reason)
		}
	}
}

func TestClientKeepsUsersSettings(t *testing.T) {
	calls := 0
	user := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { calls++; return nil }}
	c := Client(user)
	if c == user || c.CheckRedirect == nil {
		t.Fatal("Client returned the user's client, or no redirect policy")
	}
	u, _ := url.Parse("https://keys.example/k")
	if err := c.CheckRedirect(&http.Request{URL: u}, []*http.Request{{URL: u}}); err != nil || calls != 1 {
		t.Errorf("a redirect to the same host = %v, the user's policy called %d times; want nil, 1", err, calls)
	}
	other, _ := url.Parse("https://evil.example/k")
	if err := c.CheckRedirect(&http.Request{URL: other}, []*http.Request{{URL: u}}); err == nil || calls != 1 {
		t.Errorf("a redirect elsewhere = %v, the user's policy called %d times; want an error first", err, calls)
	}
	if own := Client(nil); own.Transport == nil {
		t.Errorf("Client(nil) has no transport of its own")
	}
}
