package e2ee

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

func TestParsePattern(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		want    routePattern
	}{
		{"POST /2.0/users/{user}/connections", routePattern{"POST", "", "/2.0/users/{user}/connections"}},
		{"/2.0/users/{user}/connections", routePattern{"", "", "/2.0/users/{user}/connections"}},
		{"acme.biapi.pro/2.0/payments/{payment}", routePattern{"", "acme.biapi.pro", "/2.0/payments/{payment}"}},
		{"  PUT\tacme-sandbox.biapi.pro/2.0/Users/{User}/", routePattern{"PUT", "acme-sandbox.biapi.pro", "/2.0/users/{user}/"}},
		{"POST 127.0.0.1/login", routePattern{"POST", "127.0.0.1", "/login"}},
		{"POST localhost/{rest...}", routePattern{"POST", "localhost", "/{rest...}"}},
		{"POST xn--acme-9ra.example/v1:run", routePattern{"POST", "xn--acme-9ra.example", "/v1:run"}},
	} {
		got, err := parsePattern(tt.pattern)
		if err != nil || got != tt.want {
			t.Errorf("parsePattern(%q) = %+v, %v; want %+v", tt.pattern, got, err, tt.want)
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
		if got, err := parsePattern(tt.pattern); err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("parsePattern(%q) = %+v, %v; want an error saying %q", tt.pattern, got, err, tt.reason)
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

// TestRouterGuardsEveryHostOfAPath checks the cross-host guard when the
// routes of several hosts share a path, and when host-less patterns of two
// hosts conflict: a request on that path to a host none names is refused.
func TestRouterGuardsEveryHostOfAPath(t *testing.T) {
	p, err := NewPayload(nil, "/*")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := newRouter([]Route{
		{Pattern: "POST a.example/users/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "POST b.example/users/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "POST c.example/users/{name}/x", Payload: p, VerifyOnly: true},
		{Pattern: "POST d.example/users/me/{op}", Payload: p, VerifyOnly: true}, // conflicts with c's without hosts
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url     string
		routed  string // the pattern of the route matched; "" for none
		foreign bool
	}{
		{"https://a.example/users/1", "POST a.example/users/{id}", false},
		{"https://B.example./users/1", "POST b.example/users/{id}", false},
		{"https://e.example/users/1", "", true},
		{"https://e.example/users/me/x", "", true},
		{"https://e.example/users/you/x", "", true},
		{"https://e.example/users/me/y", "", true},
		{"https://e.example/accounts/1", "", false},
	} {
		req, err := http.NewRequest("POST", tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		route, foreign := rt.route(req)
		if got := patternOf(route); got != tt.routed || (foreign != nil) != tt.foreign {
			t.Errorf("route(%s) = %q, foreign %v; want %q, foreign %v", tt.url, got, foreign != nil, tt.routed, tt.foreign)
		}
	}
}

func patternOf(r *Route) string {
	if r == nil {
		return ""
	}
	return r.Pattern
}

// FuzzRouteMatch sends a credential through a Transport with the method,
// host, Host header and path that the fuzzer picks. When net/http would
// deliver the request to a routed host and path, read as net/http reads
// them (the IDNA lookup mapping of the URL's host, to dial and verify TLS;
// the Punycode form of the Host header; the decoded, cleaned path), the
// credential must not reach the network in cleartext: the Transport either
// refuses the request or encrypts it. When the host net/http dials is the
// routed one, it must encrypt: a spelling of the routed host is matched,
// not left to the cross-host refusal.
func FuzzRouteMatch(f *testing.F) {
	for _, seed := range [][4]string{
		{"POST", "acme.biapi.pro", "", "/2.0/users/me/connections"},
		{"post", "ACME.biapi.pro.:443", "", "/2.0/USERS/me/Connections/"},
		{"POST", "acme。biapi.pro", "", "/2.0/users/me/connections"},
		{"POST", "ａｃｍｅ.ｂｉａｐｉ.ｐｒｏ", "", "/2.0/users/me/connections"},
		{"POST", "acme%E3%80%82biapi.pro", "", "/2.0/users/me/connections"},
		{"POST", "10.0.0.1", "acme.biapi.pro", "/2.0/users/me/connections"},
		{"POST", "acme.biapi.pro", "", "/2.0/users/me%2Fconnections"},
		{"POST", "acme.biapi.pro", "", "/2.0//users/me/./connections;x"},
		{"PUT", "acme.biapi.pro", "", "/2.0/payments/7"},
		{"PATCH", "other.biapi.pro", "", "/2.0/payments/%37"},
		{"POST", "acme-sandbox.biapi.pro", "", "/2.0/users/me/connections"},
		{"CONNECT", "acme.biapi.pro", "", "/2.0/payments/7"},
		{"OPTIONS", "xn--zzé.biapi.pro", "acme.biapi.pro", "/2.0/payments/7"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	enc, _, _ := testEncryptor()
	create, err := NewPayload(enc, "/*")
	if err != nil {
		f.Fatal(err)
	}
	tr := &Transport{Routes: []Route{
		{Pattern: "POST acme.biapi.pro/2.0/users/{user}/connections", Payload: create},
		{Pattern: "acme.biapi.pro/2.0/payments/{payment}", Payload: create},
	}}
	body := `{"password": "` + canary + `"}`
	f.Fuzz(func(t *testing.T, method, host, hostHeader, rawPath string) {
		u, err := url.Parse("https://" + host + rawPath)
		if err != nil || u.Host == "" {
			return
		}
		var sent []byte
		reached := false
		tr.Base = roundTripFunc(func(req *http.Request) (*http.Response, error) {
			reached = true
			sent, _ = io.ReadAll(req.Body)
			return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
		})
		req := &http.Request{Method: method, URL: u, Host: hostHeader, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
		_, err = tr.RoundTrip(req)
		routed, dialed := delivered(method, u, hostHeader)
		if err != nil {
			if !errors.Is(err, ErrNotSent) || reached {
				t.Fatalf("RoundTrip error %v (sent: %v); want ErrNotSent and nothing sent", err, reached)
			}
			if dialed {
				t.Fatalf("%s https://%s%s (Host %q): RoundTrip error %v; want the credential encrypted (net/http dials the routed host)",
					method, host, rawPath, hostHeader, err)
			}
			return
		}
		if !routed || !bytes.Contains(sent, []byte(canary)) {
			return
		}
		t.Fatalf("%s https://%s%s (Host %q) reaches a routed endpoint with the credential in cleartext", method, host, rawPath, hostHeader)
	})
}

// delivered reports whether net/http would deliver a request to one of
// FuzzRouteMatch's routed endpoints (routed), by the host it dials (then
// dialed too) or the Host header it writes, and the path as a server
// decodes and cleans it. Lower case is not required of the path: servers
// may match it without regard to case.
func delivered(method string, u *url.URL, hostHeader string) (routed, dialed bool) {
	dial := u.Hostname()
	if a, err := idna.Lookup.ToASCII(dial); err == nil && !isASCII(dial) {
		dial = a
	}
	header := cmp.Or(hostHeader, u.Host)
	if h, err := idna.ToASCII(header); err == nil {
		header = h
	}
	if i := strings.LastIndexByte(header, ':'); i >= 0 && !strings.Contains(header[i:], "]") {
		header = header[:i]
	}
	norm := func(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }
	byDial := norm(dial) == "acme.biapi.pro"
	if !byDial && norm(header) != "acme.biapi.pro" {
		return false, false
	}
	segs := strings.Split(strings.Trim(strings.ToLower(path.Clean("/"+u.Path)), "/"), "/")
	switch {
	case len(segs) == 4 && segs[0] == "2.0" && segs[1] == "users" && segs[2] != "" && segs[3] == "connections":
		routed = strings.EqualFold(method, "POST")
	case len(segs) == 3 && segs[0] == "2.0" && segs[1] == "payments" && segs[2] != "":
		routed = true
	}
	return routed, routed && byDial
}
