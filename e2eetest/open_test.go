package e2eetest

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

func TestOpen(t *testing.T) {
	srv := newServer(t)
	key := srv.Key()
	for _, tt := range []struct {
		name     string
		template string            // %[n]s stands for JWE n, %s for the next one
		plain    []string          // what each JWE holds
		want     string            // the opened body
		wantFlds map[string]string // what DecryptFields gives
	}{
		{
			name:     "connection creation",
			template: `{"id_connector": 40, "login": "%s", "password": "%s"}`,
			plain:    []string{"john.doe", "hunter2"},
			want:     `{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`,
			wantFlds: map[string]string{"/login": "john.doe", "/password": "hunter2"},
		},
		{
			name:     "nested and in arrays",
			template: "{\"fields\":{\"website\":\"%s\"},\n \"list\":[1,\"%s\",{\"x\":\"%s\"}],\"clear\":\"keep me\"}",
			plain:    []string{"par", "a", "b"},
			want:     "{\"fields\":{\"website\":\"par\"},\n \"list\":[1,\"a\",{\"x\":\"b\"}],\"clear\":\"keep me\"}",
			wantFlds: map[string]string{"/fields/website": "par", "/list/1": "a", "/list/2/x": "b"},
		},
		{
			name:     "characters to escape",
			template: `{"a":"%s","b":"%s","c":"%s","d":"%s","e":"%s"}`,
			plain:    []string{`pa"ss\word`, "<b>&amp;", "é 🔑", "", "tab\tnew\nline"},
			want:     `{"a":"pa\"ss\\word","b":"<b>&amp;","c":"é 🔑","d":"","e":"tab\tnew\nline"}`,
			wantFlds: map[string]string{"/a": `pa"ss\word`, "/b": "<b>&amp;", "/c": "é 🔑", "/d": "", "/e": "tab\tnew\nline"},
		},
		{
			name:     "pointer escapes",
			template: `{"a/b":"%s","m~n":"%s"}`,
			plain:    []string{"1", "2"},
			want:     `{"a/b":"1","m~n":"2"}`,
			wantFlds: map[string]string{"/a~1b": "1", "/m~0n": "2"},
		},
		{
			name:     "duplicate names",
			template: `{"p":"%s","p":"%s"}`,
			plain:    []string{"first", "last"},
			want:     `{"p":"first","p":"last"}`,
			wantFlds: map[string]string{"/p": "last"},
		},
		{
			name:     "a JWE as a member name stays",
			template: `{"%s":"%s"}`,
			plain:    []string{"name", "value"},
			wantFlds: map[string]string{}, // filled below: the name's JWE is the pointer
		},
		{
			name:     "top-level string",
			template: ` "%s" `,
			plain:    []string{"alone"},
			want:     ` "alone" `,
			wantFlds: map[string]string{"": "alone"},
		},
		{
			name:     "no JWE",
			template: `{"n":12345678901234567890,"s":"eyJ.a.b.c.d","t":[true,null]}`,
			want:     `{"n":12345678901234567890,"s":"eyJ.a.b.c.d","t":[true,null]}`,
			wantFlds: map[string]string{},
		},
		{name: "empty body", template: "", want: "", wantFlds: map[string]string{}},
		{name: "whitespace", template: " \n", want: " \n", wantFlds: map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []any
			for _, p := range tt.plain {
				args = append(args, encrypt(t, key, p))
			}
			body := tt.template
			if len(args) > 0 {
				body = fmt.Sprintf(tt.template, args...)
			}
			want := tt.want
			if tt.name == "a JWE as a member name stays" {
				want = fmt.Sprintf(`{"%s":"value"}`, args[0])
				tt.wantFlds = map[string]string{"/" + args[0].(string): "value"}
			}
			got, err := srv.Open([]byte(body))
			if got != want || err != nil {
				t.Errorf("Open(%s) =\n%s, %v; want\n%s", body, got, err, want)
			}
			fields, err := srv.DecryptFields([]byte(body))
			if !maps.Equal(fields, tt.wantFlds) || err != nil {
				t.Errorf("DecryptFields = %v, %v; want %v", fields, err, tt.wantFlds)
			}
		})
	}

	t.Run("escaped JWE", func(t *testing.T) {
		jwe := encrypt(t, key, "hunter2")
		body := `{"p":"\u0065` + jwe[1:] + `"}` // the JWE's first letter, e, escaped
		if got, err := srv.Open([]byte(body)); got != `{"p":"hunter2"}` || err != nil {
			t.Errorf("Open(escaped JWE) = %s, %v; want {\"p\":\"hunter2\"}", got, err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	srv := newServer(t)
	unknown := encrypt(t, fixtureKey(fixture.RSA2048C), "hunter2")
	good := encrypt(t, srv.Key(), "hunter2")
	for _, tt := range []struct {
		name   string
		body   string
		want   string // in the error
		wantIs error
	}{
		{"truncated", `{"password":"hunter2"`, "unexpected end of input", nil},
		{"not JSON", `{"password": hunter2}`, "not valid JSON (at byte offset", nil},
		{"form", `login=john&password=hunter2`, "not valid JSON", nil},
		{"data after the value", `{} {"password":"hunter2"}`, "data after the JSON value", nil},
		{"two values", `"hunter2" "hunter2"`, "data after the JSON value", nil},
		{"invalid UTF-8", "{\"password\":\"hunter2\xff\"}", "not valid JSON", nil},
		{"unknown kid", `{"login":"` + good + `","password":"` + unknown + `"}`, `: the server never served it (the JWE at "/password")`, ErrUnknownKey},
		{"tampered", `{"a":["` + tamper(good, 3) + `"]}`, `error in cryptographic primitive (the JWE at "/a/0")`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, open := range map[string]func([]byte) (any, error){
				"Open":          func(b []byte) (any, error) { return srv.Open(b) },
				"DecryptFields": func(b []byte) (any, error) { return srv.DecryptFields(b) },
			} {
				got, err := open([]byte(tt.body))
				if err == nil {
					t.Errorf("%s = %v, nil; want an error", name, got)
					continue
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "e2eetest: ") || strings.Count(msg, "e2eetest: ") != 1 || !strings.Contains(msg, tt.want) {
					t.Errorf("%s error = %q; want e2eetest: ... %s ...", name, msg, tt.want)
				}
				if strings.Contains(msg, "hunter2") {
					t.Errorf("%s error = %q; it contains a plaintext", name, msg)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("%s error = %q; want it to wrap %v", name, msg, tt.wantIs)
				}
			}
		})
	}
}
