package powens_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// TestNewClientConfigErrors checks that NewClient returns every
// configuration error itself, and no client with it.
func TestNewClientConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		domain string
		opts   *powens.Options
		reason string
	}{
		{"URL as the domain", "https://acme.biapi.pro", nil, `pass the domain name alone, e.g. "acme"`},
		{"mistyped domain", "acme_prod", nil, "which a DNS label cannot have"},
		{"empty domain", "", &powens.Options{}, "domain is empty"},
		{"BaseURL over http", "acme", &powens.Options{BaseURL: "http://egress.internal/powens"}, "is http: want https"},
		{"BaseURL with a query", "acme", &powens.Options{BaseURL: "https://egress.internal/powens?key=TOKEN"}, "has a query"},
		{"BaseURL with a fragment", "acme", &powens.Options{BaseURL: "https://egress.internal/powens#x"}, "has a fragment"},
		{"BaseURL with user information", "acme", &powens.Options{BaseURL: "https://TOKEN:x@egress.internal/powens"}, "has user information"},
		{"BaseURL without a scheme", "acme", &powens.Options{BaseURL: "egress.internal/powens"}, "has no host"},
		{"BaseURL of another scheme", "acme", &powens.Options{BaseURL: "ftp://egress.internal/powens"}, "want an https URL"},
		{"BaseURL with an IPv6 address", "acme", &powens.Options{BaseURL: "https://[::1]/powens"}, "IPv6"},
		{"BaseURL with a one-label host", "acme", &powens.Options{BaseURL: "https://egress/powens"}, "use its fully qualified name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, err := powens.NewClient(tt.domain, tt.opts)
			if err == nil || client != nil {
				t.Fatalf("NewClient(%q) = %v, %v; want nil and an error saying %q", tt.domain, client, err, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("NewClient(%q) error = %q; want %q", tt.domain, err, tt.reason)
			}
		})
	}
}

// TestNewClientRefusesBaseURLSecrets checks that a BaseURL error never
// quotes the user information or the query, which may carry a token.
func TestNewClientRefusesBaseURLSecrets(t *testing.T) {
	for _, base := range []string{"https://TOKEN:x@egress.internal/p", "https://egress.internal/p?key=TOKEN", "http://egress.internal/p?TOKEN"} {
		if _, err := powens.NewClient("acme", &powens.Options{BaseURL: base}); err == nil || strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("NewClient with BaseURL %s: %v; want an error without the token", base, err)
		}
	}
}

// TestNewClientBaseURLForms checks how BaseURL is read: http only on a
// loopback host, a Unicode host mapped as net/http dials it, and errors
// that name the URL without what may be secret in it.
func TestNewClientBaseURLForms(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	keys := e2ee.StaticKey(&e2ee.Key{ID: "k", PublicKey: &priv.PublicKey})
	for _, tt := range []struct {
		base   string
		post   string // a credential request that must go out encrypted
		reason string // of the configuration error; "" for none
	}{
		{"http://127.0.0.1:8080/powens", "http://127.0.0.1:8080/powens/2.0/users/me/connections/7", ""},
		{"http://localhost/powens", "http://localhost/powens/2.0/users/me/connections/7", ""},
		{"http://[::1]/powens", "", "IPv6"},
		{"http://10.0.0.1/powens", "", "is http: want https"},
		{"https://ｅｇｒｅｓｓ.internal/powens", "https://egress.internal/powens/2.0/users/me/connections/7", ""},
		{"https://xn--zzé.internal/powens", "", "does not map to ASCII"},
		{"https://\x80gress.internal/powens", "", "does not map to ASCII"}, // a byte that is no UTF-8
		{"https://TOKEN:x@egress.internal/powens?key=TOKEN", "", `"https://egress.internal/powens": has user information`},
		{"https://egress.internal/p%zz", "", `"(unparsable)": is not a URL`},
	} {
		t.Run(tt.base, func(t *testing.T) {
			rec := &recorder{bodies: map[string][]byte{}}
			client, err := powens.NewClient("acme", &powens.Options{BaseURL: tt.base, Keys: keys, HTTPClient: &http.Client{Transport: rec}})
			if tt.reason != "" {
				if err == nil || !strings.Contains(err.Error(), tt.reason) || strings.Contains(err.Error(), "TOKEN") {
					t.Errorf("NewClient(BaseURL %s) = %v; want an error saying %q, without TOKEN", tt.base, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(BaseURL %s) = %v", tt.base, err)
			}
			resp, err := client.Post(tt.post, "application/json", strings.NewReader(`{"otp": "123456"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for u, b := range rec.bodies {
				if got, _, err := fixture.Open(b, priv); err != nil || got != `{"otp": jwe("123456")}` {
					t.Errorf("POST %s sent, decrypted: %s, %v; want the OTP encrypted", u, got, err)
				}
			}
			if len(rec.bodies) != 1 {
				t.Errorf("%d requests sent; want 1", len(rec.bodies))
			}
		})
	}
}

// TestNewClientBaseURL checks a gateway declared with BaseURL: the key is
// fetched below its prefix, credential requests to its host are encrypted
// (and to the domain's own host), and those to another host refused.
func TestNewClientBaseURL(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	jwk := fixture.JWK(&priv.PublicKey, map[string]any{"kid": "gw"})
	rec := &recorder{bodies: map[string][]byte{}}
	var keyURLs []string
	base := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == "GET" {
			keyURLs = append(keyURLs, req.URL.String())
			return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(jwk)), Header: http.Header{}, Request: req}, nil
		}
		return rec.RoundTrip(req)
	})}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: base, BaseURL: "https://Egress.Internal:8443/powens/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{
		"https://egress.internal:8443/powens/2.0/users/me/connections/7",
		"https://acme.biapi.pro/2.0/users/me/connections/7",
	} {
		resp, err := client.Post(url, "application/json", strings.NewReader(`{"otp": "123456"}`))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		resp.Body.Close()
		rec.mu.Lock()
		got, _, err := fixture.Open(rec.bodies[url], priv)
		rec.mu.Unlock()
		if err != nil || got != `{"otp": jwe("123456")}` {
			t.Errorf("POST %s sent, decrypted: %s, %v; want the OTP encrypted", url, got, err)
		}
	}
	if len(keyURLs) != 1 || keyURLs[0] != "https://egress.internal:8443/powens/2.0/publickey" {
		t.Errorf("key fetched from %q; want https://egress.internal:8443/powens/2.0/publickey once", keyURLs)
	}
	_, err = client.Post("https://other.internal/powens/2.0/users/me/connections/7", "application/json", strings.NewReader(`{"otp": "123456"}`))
	if !errors.Is(err, e2ee.ErrNotSent) {
		t.Errorf("POST to another host: %v; want ErrNotSent", err)
	}
}

// TestNewClientRedirectThroughRewritingBase sends a connection creation
// through a base client whose Transport rewrites URLs to a gateway and
// answers with its own request, as some egress middleware does; the gateway
// redirects to another host. The hop must carry the credentials encrypted:
// the client recognizes it although Base's request names another host.
func TestNewClientRedirectThroughRewritingBase(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	var bodies []string
	n := 0
	base := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.URL.Host, r.URL.Path, r.Host = "egress.internal", "/powens"+req.URL.Path, ""
		b, _ := io.ReadAll(req.Body)
		bodies = append(bodies, string(b))
		n++
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}
		if n == 1 {
			resp.StatusCode, resp.Header = http.StatusTemporaryRedirect, http.Header{"Location": {"https://status.egress.internal/maintenance"}}
		}
		return resp, nil
	})}
	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient: base,
		Keys:       e2ee.StaticKey(&e2ee.Key{ID: "k", PublicKey: &priv.PublicKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "password": "hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(bodies) != 2 {
		t.Fatalf("%d requests sent; want 2, the redirect followed", len(bodies))
	}
	for i, b := range bodies {
		if got, _, err := fixture.Open([]byte(b), priv); err != nil || got != `{"id_connector": 40, "password": jwe("hunter2")}` {
			t.Errorf("hop %d sent, decrypted: %s, %v; want the password encrypted", i, got, err)
		}
	}
}

// TestNewClientSharesKeysThroughOptions checks what NewClient shares: the
// key of Options.Keys, across every client built with it; nothing else, so
// that two clients built without it fetch the key once each.
func TestNewClientSharesKeysThroughOptions(t *testing.T) {
	api := e2eetest.NewServer()
	defer api.Close()
	post := func(c *http.Client) {
		t.Helper()
		resp, err := c.Post("https://acme.biapi.pro/2.0/users/me/connections/7", "application/json", strings.NewReader(`{"otp": "1"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	keys, err := e2ee.NewKeyFetcher("https://acme.biapi.pro/2.0/publickey", &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	for range 5 {
		c, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		post(c)
		post(c)
	}
	if n := api.KeyRequests(); n != 1 {
		t.Errorf("5 clients sharing Options.Keys made %d key requests; want 1", n)
	}
	for range 2 {
		c, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
		if err != nil {
			t.Fatal(err)
		}
		post(c)
		post(c)
	}
	if n := api.KeyRequests(); n != 3 {
		t.Errorf("2 clients of their own made %d key requests in all; want 1 each", n-1)
	}
}

// countingSource is a key source that counts its calls.
type countingSource struct {
	key   *e2ee.Key
	calls atomic.Int32
}

func (s *countingSource) Key(context.Context) (*e2ee.Key, error) {
	s.calls.Add(1)
	return s.key, nil
}

// TestNewClientUsesOptions checks that the client NewClient returns keeps
// the base client's settings, sends through its Transport, and encrypts
// with Options.Keys when it is set, fetching no key of its own.
func TestNewClientUsesOptions(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	keys := &countingSource{key: &e2ee.Key{ID: "mine", PublicKey: &priv.PublicKey}}
	rec := &recorder{bodies: map[string][]byte{}}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	errRedirect := errors.New("the base client's CheckRedirect")
	base := &http.Client{
		Transport:     rec,
		Timeout:       7 * time.Second,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: base, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if client == base {
		t.Errorf("NewClient returned the base client itself; want a copy")
	}
	if client.Timeout != base.Timeout || client.Jar != base.Jar {
		t.Errorf("client Timeout %v, Jar %v; want the base client's %v, %v", client.Timeout, client.Jar, base.Timeout, base.Jar)
	}
	if client.CheckRedirect == nil || client.CheckRedirect(nil, nil) != errRedirect {
		t.Errorf("client CheckRedirect is not the base client's")
	}
	if base.Transport != rec {
		t.Errorf("NewClient changed the base client's Transport")
	}

	const url = "https://acme.biapi.pro/2.0/users/me/connections/7"
	resp, err := client.Post(url, "application/json", strings.NewReader(`{"otp": "123456"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.bodies) != 1 {
		t.Errorf("the base Transport got %d requests; want 1 (the API request, no key fetch)", len(rec.bodies))
	}
	got, headers, err := fixture.Open(rec.bodies[url], priv)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"otp": jwe("123456")}`; got != want || len(headers) != 1 || headers[0]["kid"] != "mine" {
		t.Errorf("sent, decrypted: %s with headers %v; want %s with kid mine", got, headers, want)
	}
	if keys.calls.Load() == 0 {
		t.Errorf("Options.Keys was never asked for the key")
	}
}

// BenchmarkClientRouting measures what deciding a request's route costs a
// client of NewClient: a request on no credential resource (unmatched), and
// a credential request without a body (matched, then passed as the API's
// sync request is). Base answers at once, so matching is what is measured.
func BenchmarkClientRouting(b *testing.B) {
	pub := fixture.Public(fixture.RSA2048A)
	ok := &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}
	base := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return ok, nil })}
	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient: base,
		Keys:       e2ee.StaticKey(&e2ee.Key{ID: "k", PublicKey: pub}),
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct{ name, method, url string }{
		{"unmatched", "GET", "https://acme.biapi.pro/2.0/users/me/accounts/42/transactions"},
		{"matched", "PUT", "https://acme.biapi.pro/2.0/users/me/connections/42"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			req, err := http.NewRequest(bm.method, bm.url, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Transport.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// roundTripFunc is an http.RoundTripper that is a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestOptionsMaxBodyBytes checks that Options.MaxBodyBytes bounds the
// bodies of the client and the relay, and that the refusal says how to
// raise the bound.
func TestOptionsMaxBodyBytes(t *testing.T) {
	api := e2eetest.NewServer()
	defer api.Close()
	body := `{"id_connector": 40, "login": "john.doe", "password": "hunter2-and-then-some"}`
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json", strings.NewReader(body))
	if !errors.Is(err, e2ee.ErrNotSent) || !strings.Contains(err.Error(), "exceeds the limit of 64 (Transport.MaxBodyBytes; powens.Options.MaxBodyBytes)") {
		t.Errorf("a body over Options.MaxBodyBytes: %v; want a refusal saying how to raise the bound", err)
	}
	client, err = powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), MaxBodyBytes: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("a body at Options.MaxBodyBytes: %v; want it sent", err)
	}
	resp.Body.Close()

	relay, err := powens.NewRelay("acme", &powens.Options{HTTPClient: api.Client(), MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	relay.ServeHTTP(rec, httptest.NewRequest("POST", "/2.0/users/me/connections", strings.NewReader(body)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "exceeds the limit of 64") {
		t.Errorf("the relay answered %d %q; want 400 and the limit", rec.Code, rec.Body)
	}
}
