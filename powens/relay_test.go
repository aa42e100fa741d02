package powens_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// relayed starts a test API and a relay to it on loopback, and returns
// them and a function that posts a body through the relay.
func relayed(t *testing.T, opts *powens.Options) (*e2eetest.Server, func(method, path, body string, header http.Header) (int, string)) {
	t.Helper()
	api := e2eetest.NewServer()
	t.Cleanup(api.Close)
	if opts == nil {
		opts = &powens.Options{}
	}
	opts.HTTPClient = api.Client()
	relay, err := powens.NewRelay("acme", opts)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(relay)
	t.Cleanup(front.Close)
	return api, func(method, path, body string, header http.Header) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, front.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(answer)
	}
}

// jweOf returns the JWE of s made with key.
func jweOf(t *testing.T, key *e2ee.Key, s string) string {
	t.Helper()
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(key)).EncryptString(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return jwe
}

// neverServed is a key that no test API serves.
var neverServed = sync.OnceValue(func() *e2ee.Key {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return &e2ee.Key{ID: fixture.Thumbprint(&priv.PublicKey), PublicKey: &priv.PublicKey}
})

func TestNewRelay(t *testing.T) {
	const secret = "hunter2-canary"
	api, post := relayed(t, nil)
	encrypted := `{"id_connector": 40, "login": "` + jweOf(t, api.Key(), "john") + `", "password": "` + jweOf(t, api.Key(), secret) + `"}`
	values := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"id_connector": 40`)
		for i := range n {
			fmt.Fprintf(&b, `, "f%d": "%s"`, i, secret)
		}
		return b.String() + "}"
	}
	for _, tt := range []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		reason                   string // in the answer
	}{
		{"encrypted, forwarded byte for byte", "POST", "/2.0/users/me/connections", encrypted, nil, 200, "{}"},
		{"cleartext", "POST", "/2.0/users/me/connections", `{"id_connector": 40, "password": "` + secret + `"}`, nil, 400, "request refused: e2ee: designated value in cleartext: /*"},
		{"cleartext under another version", "POST", "/3.0/users/me/connections/42", `{"password": "` + secret + `"}`, nil, 400, "cleartext"},
		{"cleartext in the query", "POST", "/2.0/users/me/connections/42?password=" + secret, `{}`, nil, 400, "query parameter 1 (*)"},
		{"stringified body", "POST", "/2.0/users/me/connections", `"{\"password\": \"` + secret + `\"}"`, nil, 400, "the body is a JSON string"},
		{"form", "POST", "/2.0/users/me/connections", "password=" + secret, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 400, "Content-Type"},
		{"20,000 values", "POST", "/2.0/users/me/connections", values(20000), nil, 400, "more than 256"},
		{"a protocol upgrade", "GET", "/2.0/users/me/connections", "", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, 400, "protocol upgrade"},
		{"another path, forwarded", "POST", "/2.0/users/me/accounts", `{"name": "current"}`, nil, 200, "{}"},
		{"a JWE of a key the API never served", "POST", "/2.0/users/me/connections", `{"password": "` + jweOf(t, neverServed(), secret) + `"}`, nil, 400, "not encrypted with a key the API serves"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := api.APIRequests()
			status, answer := post(tt.method, tt.path, tt.body, tt.header)
			if status != tt.status || !strings.Contains(answer, tt.reason) {
				t.Errorf("%s %s = %d %q; want %d %q", tt.method, tt.path, status, answer, tt.status, tt.reason)
			}
			if strings.Contains(answer, secret) {
				t.Errorf("the answer %q carries the credential", answer)
			}
			forwarded := api.APIRequests() - before
			switch {
			case tt.status != 200 && forwarded != 0:
				t.Errorf("%d requests forwarded; want none", forwarded)
			case tt.status == 200:
				r, ok := api.LastRequest()
				if forwarded != 1 || !ok || !bytes.Equal(r.Body, []byte(tt.body)) {
					t.Errorf("forwarded %d requests, the last %q; want the body byte for byte", forwarded, r.Body)
				}
			}
		})
	}
}

// TestNewRelayRotation follows a key rotation, as replicas and pages see
// it: JWEs of the first key pass; once the API rotates, a JWE of the new
// key, got by a page from another replica, passes at once; one of the
// previous key still passes; one of a key never served is refused, and not
// called cleartext.
func TestNewRelayRotation(t *testing.T) {
	api, post := relayed(t, nil)
	body := func(k *e2ee.Key) string { return `{"otp": "` + jweOf(t, k, "123456") + `"}` }
	first := api.Key()
	if status, answer := post("POST", "/2.0/users/me/connections/7", body(first), nil); status != 200 {
		t.Fatalf("the first key's JWE = %d %s; want 200", status, answer)
	}
	api.Rotate()
	second := api.Key()
	keyRequests := api.KeyRequests()
	if status, answer := post("POST", "/2.0/users/me/connections/7", body(second), nil); status != 200 {
		t.Errorf("the new key's JWE, right after the rotation = %d %s; want 200", status, answer)
	}
	if n := api.KeyRequests() - keyRequests; n != 1 {
		t.Errorf("%d key requests for the new kid; want 1, at once", n)
	}
	if status, answer := post("POST", "/2.0/users/me/connections/7", body(first), nil); status != 200 {
		t.Errorf("the previous key's JWE = %d %s; want 200, within MaxStale", status, answer)
	}
	status, answer := post("POST", "/2.0/users/me/connections/7", body(neverServed()), nil)
	if status != 400 || !strings.Contains(answer, "(a kid the key source does not know)") || strings.Contains(answer, "cleartext") {
		t.Errorf("a never-served key's JWE = %d %q; want 400, not called cleartext", status, answer)
	}
}

// TestNewRelayBaseURL relays to a gateway with a path prefix: the key is
// fetched below it and requests are forwarded below it.
func TestNewRelayBaseURL(t *testing.T) {
	api, post := relayed(t, &powens.Options{BaseURL: "https://egress.internal/powens"})
	status, answer := post("POST", "/2.0/users/me/connections/7", `{"otp": "`+jweOf(t, api.Key(), "123456")+`"}`, nil)
	if status != 200 {
		t.Fatalf("POST through the gateway = %d %s; want 200", status, answer)
	}
	r, _ := api.LastRequest()
	if r.Host != "egress.internal" || r.Path != "/powens/2.0/users/me/connections/7" || r.Decrypted["/otp"] != "123456" {
		t.Errorf("the API got %s %s, %v; want egress.internal/powens/2.0/users/me/connections/7 and the OTP", r.Host, r.Path, r.Decrypted)
	}
	if status, _ := post("POST", "/2.0/users/me/connections/7", `{"otp": "123456"}`, nil); status != 400 {
		t.Errorf("cleartext through the gateway = %d; want 400", status)
	}
}

// TestNewRelayConfigErrors checks that NewRelay returns configuration
// errors itself.
func TestNewRelayConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		domain string
		opts   *powens.Options
		reason string
	}{
		{"acme_prod", nil, "which a DNS label cannot have"},
		{"acme", &powens.Options{BaseURL: "http://egress.internal"}, "is http"},
	} {
		if relay, err := powens.NewRelay(tt.domain, tt.opts); err == nil || relay != nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("NewRelay(%q) = %v, %v; want an error saying %q", tt.domain, relay, err, tt.reason)
		}
	}
}
