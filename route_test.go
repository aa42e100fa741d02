package e2ee

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode"

	"github.com/credseal/e2ee/internal/routematch"
	"golang.org/x/net/idna"
)

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
		route, foreign, _ := rt.route(req)
		if got := patternOf(route); got != tt.routed || (foreign != nil) != tt.foreign {
			t.Errorf("route(%s) = %q, foreign %v; want %q, foreign %v", tt.url, got, foreign != nil, tt.routed, tt.foreign)
		}
	}
}

// TestRouterByResource checks that a request matches a route when its path
// ends with the route's path, at a segment boundary, however the path is
// spelled, and which route wins when several do.
func TestRouterByResource(t *testing.T) {
	p, err := NewPayload(nil, "/*")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := newRouter([]Route{
		{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: p, VerifyOnly: true},
		{Pattern: "acme.biapi.pro/users/{user}/connections/{connection}", Payload: p, VerifyOnly: true},
		{Pattern: "/files/{rest...}", Payload: p, VerifyOnly: true},
		{Pattern: "/dirs/", Payload: p, VerifyOnly: true},
		{Pattern: "/exact/{$}", Payload: p, VerifyOnly: true},
		{Pattern: "GET /reports/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "/orders/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "PUT /orders/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "shop.example/orders/{id}", Payload: p, VerifyOnly: true},
		{Pattern: "/a%20b/c", Payload: p, VerifyOnly: true},
		{Pattern: "/api/files/latest", Payload: p, VerifyOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	const (
		create = "acme.biapi.pro/users/{user}/connections"
		update = "acme.biapi.pro/users/{user}/connections/{connection}"
	)
	for _, tt := range []struct {
		method, url string
		routed      string // the pattern of the route matched; "" for none
		foreign     bool
	}{
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections", create, false},
		{"POST", "https://acme.biapi.pro/users/me/connections", create, false},
		{"POST", "https://acme.biapi.pro/3.0/users/me/connections", create, false},
		{"POST", "https://acme.biapi.pro/gw/x/2.0/users/me/connections", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections/", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections.", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections..%20%09", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections%00", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections.json", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections;v=2", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me%2Fconnections", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users\\me\\connections", create, false},
		{"CONNECT", "https://acme.biapi.pro/2.0/./users/me/connections", create, false},
		{"CONNECT", "https://acme.biapi.pro/2.0//users//me/x/../connections", create, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections/42", update, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections/42.json", update, false},
		{"POST", "https://acme.biapi.pro/users/me/connections/42", update, false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connectionsx", "", false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/xconnections", "", false},
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections/42/accounts", "", false},
		{"POST", "https://acme.biapi.pro/2.0/connections", "", false},
		{"POST", "https://gw.example/acme/2.0/users/me/connections", "", true},
		{"POST", "https://gw.example/users/me/connections/42", "", true},
		{"POST", "https://gw.example/users/me/accounts", "", false},
		{"POST", "https://any.example/files", "/files/{rest...}", false},
		{"POST", "https://any.example/v1/files/a/b/c", "/files/{rest...}", false},
		{"POST", "https://any.example/x/api/files/latest", "/api/files/latest", false}, // longer than files/{rest...}
		{"POST", "https://any.example/dirs/a", "/dirs/", false},
		{"POST", "https://any.example/x/dirs/", "/dirs/", false},
		{"POST", "https://any.example/x/exact/", "/exact/{$}", false},
		{"POST", "https://any.example/x/exact/y", "", false},
		{"GET", "https://any.example/reports/1", "GET /reports/{id}", false},
		{"HEAD", "https://any.example/reports/1", "GET /reports/{id}", false},
		{"POST", "https://any.example/reports/1", "", false},
		{"POST", "https://any.example/orders/1", "/orders/{id}", false},
		{"PUT", "https://any.example/orders/1", "PUT /orders/{id}", false},
		{"POST", "https://shop.example/orders/1", "shop.example/orders/{id}", false},
		{"POST", "https://any.example/v2/a%20b/c", "/a%20b/c", false},
		{"POST", "https://any.example/a b/c", "/a%20b/c", false},
	} {
		req, err := http.NewRequest(tt.method, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		route, foreign, _ := rt.route(req)
		if got := patternOf(route); got != tt.routed || (foreign != nil) != tt.foreign {
			t.Errorf("%s %s = %q, foreign %v; want %q, foreign %v", tt.method, tt.url, got, foreign != nil, tt.routed, tt.foreign)
		}
	}
}

// TestRouterRefusesAmbiguousPaths checks that a path whose readings match
// different routes is refused, rather than sent with the route of its first
// reading: "connections/payments/.." reads as a payment as sent, and as a
// connection creation once cleaned.
func TestRouterRefusesAmbiguousPaths(t *testing.T) {
	p, err := NewPayload(nil, "/*")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := newRouter([]Route{
		{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: p, VerifyOnly: true},
		{Pattern: "acme.biapi.pro/users/{user}/connections/{connection}", Payload: p, VerifyOnly: true},
		{Pattern: "acme.biapi.pro/payments/{payment}", Payload: p, VerifyOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://acme.biapi.pro/2.0/users/me/connections/payments/..",
		"https://acme.biapi.pro/2.0/users/me/connections/payments/%2e%2e",
		"https://acme.biapi.pro/2.0/users/me/connections%2Fpayments%2F..",
		"https://acme.biapi.pro/2.0/users/me/connections/.",
	} {
		req, err := http.NewRequest("POST", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		route, _, err := rt.route(req)
		if err == nil || !strings.Contains(err.Error(), "reads as the resources of two routes") {
			t.Errorf("route(%s) = %v, %v; want an error for two routes", u, patternOf(route), err)
		}
	}
	for _, u := range []string{
		"https://acme.biapi.pro/2.0/users/me/connections/",
		"https://acme.biapi.pro/2.0/users/me/connections/42.json",
		"https://acme.biapi.pro/2.0/users/me/connections%3Fsource=openapi",
		"https://acme.biapi.pro/2.0/users/me/connections%23x",
	} {
		req, err := http.NewRequest("POST", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if route, _, err := rt.route(req); err != nil || route == nil {
			t.Errorf("route(%s) = %v, %v; want one route", u, patternOf(route), err)
		}
	}
}

// TestRouterRefusesDuplicates checks that two routes of one pattern are a
// configuration error, unless their variants differ.
func TestRouterRefusesDuplicates(t *testing.T) {
	p, err := NewPayload(nil, "/*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newRouter([]Route{
		{Pattern: "/users/{user}", Payload: p, VerifyOnly: true},
		{Pattern: "/users/{id}", Payload: p, VerifyOnly: true},
	}); err == nil || !strings.Contains(err.Error(), "conflicts") {
		t.Errorf("newRouter of two routes of one pattern = %v; want a conflict", err)
	}
	if _, err := newRouter([]Route{
		{Pattern: "/users/{user}", Payload: p, VerifyOnly: true},
		{Pattern: "/users/{id}", Payload: p, VerifyOnly: true, Variant: "v"},
	}); err != nil {
		t.Errorf("newRouter of two variants of one pattern = %v; want none", err)
	}
}

func patternOf(r *Route) string {
	if r == nil {
		return ""
	}
	return r.Pattern
}

// FuzzRouteMatch sends a credential through a Transport with the method,
// host, Host header and path that the fuzzer picks: a path made of a
// prefix, one of the routed resources (in some spelling) and a suffix. When
// a server may read the path as ending with a routed resource (read as
// net/http reads it: decoded, cleaned, in any letter case, without trailing
// slashes, and with its last segment without trailing dots, white space or
// a format suffix), the credential must not reach the network in
// cleartext, whatever the host: the Transport refuses the request or
// encrypts it. When the host that net/http dials (the IDNA lookup mapping of
// the URL's host) is the routed one, it must encrypt, unless the request
// has a query, whose parameters the routes designate.
func FuzzRouteMatch(f *testing.F) {
	for _, seed := range []struct {
		method, host, hostHeader, prefix, suffix string
		resource                                 uint8
	}{
		{"POST", "acme.biapi.pro", "", "/2.0", "", 0},
		{"post", "ACME.biapi.pro.:443", "", "/2.0", "/", 0},
		{"POST", "acme。biapi.pro", "", "/3.0", "", 0},
		{"POST", "ａｃｍｅ.ｂｉａｐｉ.ｐｒｏ", "", "", "", 0},
		{"POST", "acme%E3%80%82biapi.pro", "", "/2.1", ".", 0},
		{"POST", "10.0.0.1", "acme.biapi.pro", "/2.0", "%20", 0},
		{"POST", "acme.biapi.pro", "", "/2.0", ".json", 2},
		{"POST", "acme.biapi.pro", "", "/2.0/", ";x", 3},
		{"PUT", "acme.biapi.pro", "", "/2.0", "", 1},
		{"PATCH", "other.biapi.pro", "", "/2.0", "", 4},
		{"POST", "egress.internal", "", "/powens/2.0", "", 0},
		{"POST", "proxy.example", "", "/acme.biapi.pro/2.0", "", 0},
		{"CONNECT", "acme.biapi.pro", "", "/2.0/./", "", 1},
		{"CONNECT", "acme.biapi.pro", "", "//2.0", "/.", 0},
		{"OPTIONS", "xn--zzé.biapi.pro", "acme.biapi.pro", "/2.0", "", 1},
		{"POST", "acme.biapi.pro", "", "/2.0", "%09..", 5},
	} {
		f.Add(seed.method, seed.host, seed.hostHeader, seed.prefix, seed.suffix, seed.resource)
	}
	resources := []string{
		"/users/me/connections", "/payments/7", "/users/%6de/connections", "/USERS/me/Connections",
		"/payments/%37", "/users/me%2Fconnections",
	}
	enc, _, _ := testEncryptor()
	create, err := NewPayload(enc, "/*")
	if err != nil {
		f.Fatal(err)
	}
	tr := &Transport{Routes: []Route{
		{Pattern: "POST acme.biapi.pro/users/{user}/connections", Payload: create},
		{Pattern: "acme.biapi.pro/payments/{payment}", Payload: create},
	}}
	body := `{"password": "` + canary + `"}`
	f.Fuzz(func(t *testing.T, method, host, hostHeader, prefix, suffix string, resource uint8) {
		rawPath := prefix + resources[int(resource)%len(resources)] + suffix
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
		routed, dialed := delivered(method, u)
		if err != nil {
			if !errors.Is(err, ErrNotSent) || reached {
				t.Fatalf("RoundTrip error %v (sent: %v); want ErrNotSent and nothing sent", err, reached)
			}
			if dialed && u.RawQuery == "" {
				t.Fatalf("%s https://%s%s (Host %q): RoundTrip error %v; want the credential encrypted (net/http dials the routed host)",
					method, host, rawPath, hostHeader, err)
			}
			return
		}
		if !routed || !bytes.Contains(sent, []byte(canary)) {
			return
		}
		t.Fatalf("%s https://%s%s (Host %q) reaches a routed resource with the credential in cleartext", method, host, rawPath, hostHeader)
	})
}

// delivered reports whether a server may read a request as one of
// FuzzRouteMatch's routed resources (routed), whatever its host, and
// whether net/http then dials the routed host (dialed). Lower case is not
// required of the path: servers may match it without regard to case.
func delivered(method string, u *url.URL) (routed, dialed bool) {
	segs := strings.Split(strings.Trim(strings.ToLower(path.Clean("/"+u.Path)), "/"), "/")
	last := strings.TrimRightFunc(segs[len(segs)-1], func(r rune) bool {
		return r == '.' || unicode.IsSpace(r) || unicode.IsControl(r)
	})
	for _, l := range []string{segs[len(segs)-1], last, strings.Split(last, ".")[0]} {
		segs[len(segs)-1] = l
		n := len(segs)
		switch {
		case n >= 3 && segs[n-3] == "users" && segs[n-2] != "" && segs[n-1] == "connections":
			routed = routed || strings.EqualFold(method, "POST")
		case n >= 2 && segs[n-2] == "payments" && segs[n-1] != "":
			routed = true
		}
	}
	if !routed {
		return false, false
	}
	dial := u.Hostname()
	if a, err := idna.Lookup.ToASCII(dial); err == nil && !routematch.IsASCII(dial) {
		dial = a
	}
	return true, strings.TrimSuffix(strings.ToLower(dial), ".") == "acme.biapi.pro"
}
