package routematch

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		want    Pattern
	}{
		{"POST /2.0/users/{user}/connections", Pattern{Method: "POST", Host: "", Path: "/2.0/users/{user}/connections"}},
		{"/2.0/users/{user}/connections", Pattern{Method: "", Host: "", Path: "/2.0/users/{user}/connections"}},
		{"acme.biapi.pro/2.0/payments/{payment}", Pattern{Method: "", Host: "acme.biapi.pro", Path: "/2.0/payments/{payment}"}},
		{"  PUT\tacme-sandbox.biapi.pro/2.0/Users/{User}/", Pattern{Method: "PUT", Host: "acme-sandbox.biapi.pro", Path: "/2.0/users/{user}/"}},
		{"POST 127.0.0.1/login", Pattern{Method: "POST", Host: "127.0.0.1", Path: "/login"}},
		{"POST localhost/{rest...}", Pattern{Method: "POST", Host: "localhost", Path: "/{rest...}"}},
		{"POST xn--acme-9ra.example/v1:run", Pattern{Method: "POST", Host: "xn--acme-9ra.example", Path: "/v1:run"}},
	} {
		got, err := Parse(tt.pattern)
		if err != nil || got.Method != tt.want.Method || got.Host != tt.want.Host || got.Path != tt.want.Path {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.pattern, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ pattern, reason string }{
		{"", "want"},
		{"POST acme.biapi.pro /x", "want"},
		{"POST", "no path"},
		{"POST acme.biapi.pro", "no path"},
		{"post /x", `method "post" must be upper case: POST`},
		{"FETCH /x", `unknown method "FETCH"`},
		{"POST 2.0/users/{user}/connections", `"2.0" is not a host name`},
		{"POST users/{user}/connections", `"users" is not a host name`},
		{"POST /users/:user", "write a wildcard as {user}"},
		{"POST /users/*", "write a wildcard as {name}"},
		{"POST /users/conn*", "write a wildcard"},
		{"POST /users?x", "query"},
		{"POST /users#x", "fragment"},
		{"POST acme.biapi.pro:443/x", "has a port"},
		{"POST acme.biapi.pro./x", "ends with a dot"},
		{"POST [::1]/x", "brackets"},
		{"POST acme。biapi.pro/x", `write it as net/http dials it, "acme.biapi.pro"`},
		{"POST Acme.biapi.pro/x", "must be lowercase: acme.biapi.pro"},
		{"POST a_b.example/x", "not a DNS label"},
		{"POST -a.example/x", "not a DNS label"},
		{"POST a..example/x", "not a DNS label"},
		{"POST 1.2.3/x", "not a host name"},
	} {
		if got, err := Parse(tt.pattern); err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Parse(%q) = %+v, %v; want an error saying %q", tt.pattern, got, err, tt.reason)
		}
	}
}

func TestHostReadings(t *testing.T) {
	for _, tt := range []struct {
		host string
		want string // among the readings; "" for none at all
	}{
		{"acme.biapi.pro", "acme.biapi.pro"},
		{"ACME.biapi.pro:443", "acme.biapi.pro"},
		{"acme.biapi.pro.", "acme.biapi.pro"},
		{"acme。biapi.pro", "acme.biapi.pro"},      // U+3002, mapped by IDNA lookup
		{"ａｃｍｅ.biapi.pro", "acme.biapi.pro"},      // fullwidth letters
		{"acme｡biapi.pro:8443", "acme.biapi.pro"}, // U+FF61, with a port
		{"acme%E3%80%82biapi.pro", "acme.biapi.pro"},
		{"ÄCME.biapi.pro", "xn--cme-pla.biapi.pro"},
		{"", ""},
		{":443", ""},
		{"xn--zzé.biapi.pro", ""}, // cannot be mapped
	} {
		got := hostReadings(tt.host)
		if tt.want == "" && len(got) != 0 || tt.want != "" && !slices.Contains(got, tt.want) {
			t.Errorf("hostReadings(%q) = %q; want %q among them", tt.host, got, tt.want)
		}
	}
}

func TestMatchPath(t *testing.T) {
	for _, tt := range []struct {
		pattern, path string
		want          int // 0: no match
	}{
		{"/users/{user}/connections", "/2.0/users/me/connections", 4},
		{"/users/{user}/connections", "/users/me/connections", 4},
		{"/users/{user}/connections", "/users//connections", 0},
		{"/users/{user}/connections", "/users/me/connections/7", 0},
		{"/files/{rest...}", "/v1/files/a/b", 4},
		{"/files/", "/files", 2},
		{"/exact/{$}", "/x/exact/", 3},
		{"/exact/{$}", "/x/exact", 0},
		{"/A%20b", "/a b", 2},
	} {
		p, err := Parse(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		for _, segs := range Read(&http.Request{Method: "POST", URL: &url.URL{Path: tt.path}}).Paths {
			got = max(got, p.MatchPath(segs))
		}
		if got != tt.want {
			t.Errorf("Parse(%q).MatchPath(%q) = %d; want %d", tt.pattern, tt.path, got, tt.want)
		}
	}
}
