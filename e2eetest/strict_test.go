package e2eetest

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
)

func TestCleartext(t *testing.T) {
	jwe := encrypt(t, fixtureKey(fixture.RSA2048A), "hunter2")
	for _, tt := range []struct {
		method, path, body string
		want               []string
	}{
		{"POST", "/2.0/users/me/connections", `{"id_connector":40,"login":"john","password":"` + jwe + `"}`, []string{"/login"}},
		{"POST", "/2.0/users/me/connections", `{"id_connector":40,"login":"` + jwe + `","password":null}`, nil},
		{"POST", "/2.0/users/me/connections", `{"id_connector":"40","source":"x","pin":1234,"list":["a"],"obj":{"a":"b"}}`,
			[]string{"/pin", "/list", "/obj"}},
		{"PUT", "/2.0/users/42/connections/7", `{"otp":"123456","resume":true}`, []string{"/otp"}},
		{"POST", "/2.0/users/me/transfers/3", `{"amount":10,"validated":true,"password":"x"}`, []string{"/password"}},
		{"POST", "/2.0/users/me/accounts/1/recipients/2", `{"label":"rent","code":"x"}`, []string{"/code"}},
		{"POST", "/2.0/payments/p1", `{"validated":true,"payer":{"name":"x"},"fields":{"website":"x","token":"` + jwe + `"}}`,
			[]string{"/fields/website"}},
		{"POST", "/2.0//Users/ME/./connections/", `{"login":"john"}`, []string{"/login"}},
		{"POST", "/powens/3.0/users/me/connections.json", `{"login":"john"}`, []string{"/login"}},
		{"POST", "/2.0/users/me/accounts", `{"password":"hunter2"}`, nil},
		{"POST", "/2.0/payments", `{"fields":{"website":"x"}}`, nil},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := &http.Request{Method: tt.method, Host: "acme.biapi.pro", URL: &url.URL{Path: tt.path}, Header: http.Header{}}
			var got []string
			if route, _ := verdict(r, []byte(tt.body)); route != nil {
				got = cleartext(route.Payload, []byte(tt.body))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("cleartext(%s %s, %s) = %q; want %q", tt.method, tt.path, tt.body, got, tt.want)
			}
		})
	}
}

// TestStrictRefusesEveryShape sends a credential in cleartext in each of the
// request shapes that an e2ee.Transport refuses to send or encrypts: the
// stand-in, which decides with the same Transport, refuses each with 400,
// records why, and echoes neither the credential nor a member name.
func TestStrictRefusesEveryShape(t *testing.T) {
	const (
		secret = "canary-S3cr3t-4f1d"
		name   = "hunter2Canary77" // a member name that could be a password
		plain  = `{"id_connector": 40, "login": "john", "password": "` + secret + `"}`
	)
	for _, tt := range []struct {
		name, url, body string
		header          http.Header
		cleartext       bool // Request.Cleartext lists the body's credentials
		is              error
	}{
		{"gateway prefix", "https://egress.internal/powens/2.0/users/me/connections", plain, nil, true, e2ee.ErrCleartext},
		{"API host in the path", "https://proxy.example/acme.biapi.pro/2.0/users/me/connections", plain, nil, true, e2ee.ErrCleartext},
		{"another version", "https://acme.biapi.pro/3.0/users/me/connections", plain, nil, true, e2ee.ErrCleartext},
		{"a minor version", "https://acme.biapi.pro/2.1/users/me/connections/42", plain, nil, true, e2ee.ErrCleartext},
		{"no version", "https://acme.biapi.pro/users/me/connections", plain, nil, true, e2ee.ErrCleartext},
		{"trailing dot", "https://acme.biapi.pro/2.0/users/me/connections.", plain, nil, true, e2ee.ErrCleartext},
		{"trailing space", "https://acme.biapi.pro/2.0/users/me/connections%20", plain, nil, true, e2ee.ErrCleartext},
		{"format suffix", "https://acme.biapi.pro/2.0/users/me/connections.json", plain, nil, true, e2ee.ErrCleartext},
		{";param on the last segment", "https://acme.biapi.pro/2.0/users/me/connections;v=1", plain, nil, true, e2ee.ErrCleartext},
		{"%5C for a slash", "https://acme.biapi.pro/2.0/users/me%5Cconnections", plain, nil, true, e2ee.ErrCleartext},
		{"recipient update", "https://acme.biapi.pro/2.0/users/me/accounts/1/recipients/2", `{"label": "rent", "code": "` + secret + `"}`, nil, true, e2ee.ErrCleartext},
		{"recipient update under another owner", "https://acme.biapi.pro/2.0/users/me/recipients/2", `{"code": "` + secret + `"}`, nil, true, e2ee.ErrCleartext},
		{"transfer update under an account", "https://acme.biapi.pro/2.0/users/me/accounts/1/transfers/2", `{"code": "` + secret + `"}`, nil, true, e2ee.ErrCleartext},
		{"a query written into the path", "https://acme.biapi.pro/2.0/users/me/connections%3Fsource=openapi", plain, nil, true, e2ee.ErrCleartext},
		{"a dot segment after another resource", "https://acme.biapi.pro/2.0/users/me/connections/payments/..", plain, nil, false, e2ee.ErrNotSent},
		{"query string", "https://acme.biapi.pro/2.0/users/me/connections/42?password=" + secret, "", nil, false, e2ee.ErrCleartext},
		{"query string beside a body", "https://acme.biapi.pro/2.0/users/me/connections/42?source=x&password=" + secret, `{}`, nil, false, e2ee.ErrCleartext},
		{"stringified body", "https://acme.biapi.pro/2.0/users/me/connections", `"{\"password\": \"` + secret + `\"}"`, nil, false, e2ee.ErrBodyShape},
		{"body that is a number", "https://acme.biapi.pro/2.0/users/me/connections", `1234`, nil, false, e2ee.ErrBodyShape},
		{"body that is true", "https://acme.biapi.pro/2.0/users/me/connections", `true`, nil, false, e2ee.ErrBodyShape},
		{"body that is null", "https://acme.biapi.pro/2.0/users/me/connections", `null`, nil, false, e2ee.ErrBodyShape},
		{"body that is an array", "https://acme.biapi.pro/2.0/users/me/connections", `["` + secret + `"]`, nil, false, e2ee.ErrBodyShape},
		{"payment fields stringified", "https://acme.biapi.pro/2.0/payments/9", `{"fields": "{\"website\": \"` + secret + `\"}"}`, nil, false, e2ee.ErrBodyShape},
		{"payment fields an array", "https://acme.biapi.pro/2.0/payments/9", `{"fields": ["` + secret + `"]}`, nil, false, e2ee.ErrBodyShape},
		{"payment fields a number", "https://acme.biapi.pro/2.0/payments/9", `{"fields": 1234}`, nil, false, e2ee.ErrBodyShape},
		{"form", "https://acme.biapi.pro/2.0/users/me/connections", "login=john&password=" + secret, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false, e2ee.ErrNotJSON},
		{"compressed", "https://acme.biapi.pro/2.0/users/me/connections", plain, http.Header{"Content-Encoding": {"br"}}, false, e2ee.ErrNotJSON},
		{"member name like a password", "https://acme.biapi.pro/2.0/users/me/connections", `{"` + name + `": 5}`, nil, true, e2ee.ErrCleartext},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			resp, answer := do(t, srv.Client(), http.MethodPost, tt.url, tt.body, tt.header)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("POST %s = %d %s; want 400", tt.url, resp.StatusCode, answer)
			}
			if strings.Contains(answer, secret) || strings.Contains(answer, name) || strings.Contains(answer, "password") {
				t.Errorf("the answer %q echoes the body", answer)
			}
			r, ok := srv.LastRequest()
			if !ok {
				t.Fatal("no request recorded")
			}
			if !errors.Is(r.Err, e2ee.ErrNotSent) || !errors.Is(r.Err, tt.is) || strings.Contains(r.Err.Error(), secret) {
				t.Errorf("recorded Err = %v; want one wrapping ErrNotSent and %v, without the credential", r.Err, tt.is)
			}
			if tt.cleartext && len(r.Cleartext) == 0 {
				t.Errorf("recorded Cleartext is empty; want the body's credentials listed")
			}
		})
	}
}
