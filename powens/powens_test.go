package powens_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

func TestKeyURL(t *testing.T) {
	for _, tt := range []struct{ domain, want string }{
		{"acme", "https://acme.biapi.pro/2.0/publickey"},
		{"acme-sandbox", "https://acme-sandbox.biapi.pro/2.0/publickey"},
		{"ACME", "https://acme.biapi.pro/2.0/publickey"},
		{"acme.biapi.pro", "https://acme.biapi.pro/2.0/publickey"},
		{"ACME.BIAPI.PRO", "https://acme.biapi.pro/2.0/publickey"},
		{"Acme-Sandbox.Biapi.Pro", "https://acme-sandbox.biapi.pro/2.0/publickey"},
		{"a1", "https://a1.biapi.pro/2.0/publickey"},
		{"z0-9", "https://z0-9.biapi.pro/2.0/publickey"}, // the ends of each range a label may have
		{strings.Repeat("a", 63), "https://" + strings.Repeat("a", 63) + ".biapi.pro/2.0/publickey"},
	} {
		got, err := powens.KeyURL(tt.domain)
		if got != tt.want || err != nil {
			t.Errorf("KeyURL(%q) = %q, %v; want %q", tt.domain, got, err, tt.want)
		}
	}
}

// TestDomainErrorsShowNoToken checks that a domain given as a URL, or with
// user information or a query, is refused without showing what may be a
// token.
func TestDomainErrorsShowNoToken(t *testing.T) {
	for _, domain := range []string{
		"https://TOKEN@acme.biapi.pro", "https://user:TOKEN@acme.biapi.pro/2.0", "https://acme.biapi.pro/?key=TOKEN",
		"https://acme.biapi.pro#TOKEN", "TOKEN@acme", "user:TOKEN@acme", "acme?key=TOKEN", "acme#TOKEN",
	} {
		_, err := powens.NewClient(domain, nil)
		if err == nil || strings.Contains(err.Error(), "TOKEN") || !strings.Contains(err.Error(), "acme") {
			t.Errorf("NewClient(%q) = %v; want an error naming the domain without the token", domain, err)
		}
	}
	for _, domain := range []string{"?key=TOKEN", "#TOKEN"} { // nothing before the query or fragment
		if _, err := powens.NewClient(domain, nil); err == nil || strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("NewClient(%q) = %v; want an error without the token", domain, err)
		}
	}
}

func TestKeyURLRefusesHostileDomains(t *testing.T) {
	for _, tt := range []struct {
		domain string
		reason string // besides what to pass; "" for none in particular
	}{
		{"", "is empty"}, {"evil.com/x", ""}, {"a@b", ""}, {"a b", ""}, {"acme.", ""}, {".acme", ""},
		{"a..b", ""}, {strings.Repeat("a", 64), ""}, {"-acme", ""}, {"acme-", ""}, {"acme:443", ""},
		{"acme/", ""}, {"acme?x=1", ""}, {"acme#frag", ""}, {"ac%6de", ""}, {"äcme", ""},
		{"evil.com\\@acme", ""}, {"acme\n", ""}, {"127.0.0.1:80/x", ""}, {strings.Repeat("a.", 127) + "a", ""},
		// Mistakes: a URL, the host with a port, a path or a trailing dot,
		// another parent domain, several labels, an underscore, Unicode.
		{"https://acme.biapi.pro", "is a URL"},
		{"acme.biapi.pro:443", "has a port"},
		{"acme.biapi.pro/2.0", "has a path"},
		{"acme.biapi.pro.", ""},
		{"acme.biapi.pro.biapi.pro", "directly under biapi.pro"},
		{"acme.example.com", "directly under biapi.pro"},
		{"acme.biapi.com", "directly under biapi.pro"},
		{"eu.acme", "directly under biapi.pro"},
		{"biapi.pro", ""}, {".biapi.pro", ""},
		{"acme_prod", "'_', which a DNS label cannot have"},
		{"ａｃｍｅ", ""}, {"acme。biapi.pro", ""}, {"acme\x00", ""},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := powens.KeyURL(tt.domain)
			if err == nil || got != "" {
				t.Fatalf("KeyURL(%q) = %q, %v; want an error", tt.domain, got, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "powens: ") ||
				!strings.Contains(msg, `pass the domain name alone, e.g. "acme"`) || !strings.Contains(msg, tt.reason) ||
				strings.ContainsAny(msg, "\n\x00") {
				t.Errorf("KeyURL(%q) error = %q; want powens: ..., %q, what to pass, no control character", tt.domain, err, tt.reason)
			}
		})
	}
}

// recorder records the bodies of the requests that reach it.
type recorder struct {
	mu     sync.Mutex // guards bodies
	bodies map[string][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r.mu.Lock()
	r.bodies[req.URL.String()] = b
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}

func TestRoutes(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	key := &e2ee.Key{ID: fixture.Thumbprint(&priv.PublicKey), PublicKey: &priv.PublicKey}
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(e2ee.StaticKey(key)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{bodies: map[string][]byte{}}
	client := &http.Client{Transport: &e2ee.Transport{Base: rec, Routes: routes}}

	for _, tt := range []struct {
		name, method, url, body, want string
	}{
		{
			"connection creation", "POST",
			"https://acme.biapi.pro/2.0/users/me/connections",
			`{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "id_provider": 7, "id_bank": 8, "login": "john.doe", "password": "hunter2", "website": "par"}`,
			`{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "id_provider": 7, "id_bank": 8, "login": jwe("john.doe"), "password": jwe("hunter2"), "website": jwe("par")}`,
		},
		{
			"connection update with additional information", "POST",
			"https://acme.biapi.pro/2.0/users/12/connections/34",
			`{"otp":"123456","source":"directaccess","active":true,"expire":"2026-12-31 00:00:00","resume":true,"refresh_auth":false}`,
			`{"otp":jwe("123456"),"source":"directaccess","active":true,"expire":"2026-12-31 00:00:00","resume":true,"refresh_auth":false}`,
		},
		{
			"transfer update", "POST",
			"https://acme.biapi.pro/2.0/users/me/transfers/56",
			`{"id_account": 1, "amount": 12.50, "label": "Rent", "beneficiary_type": "recipient", "id_recipient": 2, "beneficiary_number": "FR76", "beneficiary_label": "Landlord", "validated": true, "sms": "987654"}`,
			`{"id_account": 1, "amount": 12.50, "label": "Rent", "beneficiary_type": "recipient", "id_recipient": 2, "beneficiary_number": "FR76", "beneficiary_label": "Landlord", "validated": true, "sms": jwe("987654")}`,
		},
		{
			"payment validation", "POST",
			"https://acme.biapi.pro/2.0/payments/78",
			`{"connector_uuid": "338178e6", "validate_mechanism": "webview", "fields": {"website": "par", "login": "john.doe", "password": "hunter2"}, "payer": {"identity": "John Doe"}, "webview_url": "https://example.org/cb", "validated": true}`,
			`{"connector_uuid": "338178e6", "validate_mechanism": "webview", "fields": {"website": jwe("par"), "login": jwe("john.doe"), "password": jwe("hunter2")}, "payer": {"identity": "John Doe"}, "webview_url": "https://example.org/cb", "validated": true}`,
		},
		{
			"recipient update", "POST",
			"https://acme.biapi.pro/2.0/users/me/accounts/3/recipients/9",
			`{"iban": "FR7630006000011234567890189", "label": "Landlord", "category": "rent", "background": true, "sms_code": "246810"}`,
			`{"iban": "FR7630006000011234567890189", "label": "Landlord", "category": "rent", "background": true, "sms_code": jwe("246810")}`,
		},
		{
			"connection creation, another version, documented query", "POST",
			"https://acme.biapi.pro/3.0/users/me/connections?source=openapi&expand=accounts",
			`{"id_connector": 40, "password": "hunter2"}`,
			`{"id_connector": 40, "password": jwe("hunter2")}`,
		},
		{
			"payment submitting field values is encrypted unless chosen", "POST",
			"https://acme.biapi.pro/2.0/payments/79",
			`{"fields": {"sms": "123456"}}`,
			`{"fields": {"sms": jwe("123456")}}`,
		},
		{
			"connection update with another method", "PUT",
			"https://acme.biapi.pro/2.0/users/me/connections/35",
			`{"password": "hunter2"}`,
			`{"password": jwe("hunter2")}`,
		},
		{
			"another path passes untouched", "POST",
			"https://acme.biapi.pro/2.0/users/me/accounts",
			`{"login": "john.doe", "password": "hunter2"}`,
			`{"login": "john.doe", "password": "hunter2"}`,
		},
		{
			"another host, another path, passes untouched", "POST",
			"https://other.biapi.pro/2.0/users/me/accounts",
			`{"login": "john.doe", "password": "hunter2"}`,
			`{"login": "john.doe", "password": "hunter2"}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rec.mu.Lock()
			sent := rec.bodies[tt.url]
			rec.mu.Unlock()
			got, headers, err := fixture.Open(sent, priv)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("sent, decrypted:\n%s\nwant:\n%s", got, tt.want)
			}
			for _, h := range headers {
				if h["kid"] != key.ID || h["alg"] != "RSA-OAEP-256" || h["enc"] != "A256GCM" || len(h) != 3 {
					t.Errorf("protected header %v", h)
				}
			}
		})
	}
}

func TestVerifyRoutes(t *testing.T) {
	routes, err := powens.VerifyRoutes("acme")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{bodies: map[string][]byte{}}
	tr := &e2ee.Transport{Base: rec, Routes: routes}
	req, err := http.NewRequest("POST", "https://acme.biapi.pro/2.0/users/me/connections",
		strings.NewReader(`{"id_connector": 40, "password": "hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "cleartext: /*") || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "password") {
		t.Errorf("RoundTrip error = %v; want a refusal naming /*, not the member or its value", err)
	}
	if len(rec.bodies) != 0 {
		t.Errorf("a cleartext body was sent")
	}
}

func TestRouteErrors(t *testing.T) {
	enc := e2ee.NewEncryptor(e2ee.StaticKey(nil))
	if _, err := powens.Routes("evil.com/x", enc); err == nil {
		t.Errorf("Routes(evil.com/x) succeeded")
	}
	if _, err := powens.Routes("acme", nil); err == nil {
		t.Errorf("Routes with a nil Encryptor succeeded")
	}
	if _, err := powens.VerifyRoutes("evil.com/x"); err == nil {
		t.Errorf("VerifyRoutes(evil.com/x) succeeded")
	}
	if f := powens.Fields("account-list"); f != nil {
		t.Errorf("Fields(account-list) = %q; want nil, an unknown request", f)
	}
	for _, r := range powens.Requests() {
		if len(powens.Fields(r)) == 0 {
			t.Errorf("Fields(%s) is empty", r)
		}
	}
	f := powens.Fields(powens.ConnectionCreate)
	f[0] = "/changed"
	if powens.Fields(powens.ConnectionCreate)[0] != "/*" {
		t.Errorf("Fields returns the package's own slice")
	}
}

func TestRoutesEncryptNewConnectorFields(t *testing.T) {
	// A connector field the package has never heard of is encrypted.
	priv := fixture.Private(fixture.RSA2048A)
	key := &e2ee.Key{ID: "k", PublicKey: &priv.PublicKey}
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(e2ee.StaticKey(key)))
	if err != nil {
		t.Fatal(err)
	}
	p := routes[0].Payload
	out, err := p.Encrypt(context.Background(), []byte(`{"id_connector": 1, "brand_new_secret": "s3cr3t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("s3cr3t")) {
		t.Errorf("an unknown connector field left in cleartext: %s", out)
	}
}

// updateFields rewrites ../testdata/powens-fields.json from Fields.
var updateFields = flag.Bool("update-fields", false, "rewrite ../testdata/powens-fields.json from Fields")

// TestFieldsFile keeps ../testdata/powens-fields.json equal to Fields: the
// tests that cannot import this package (the root package's own, e2ee.js's)
// read the deny-lists from it, so that they live once.
func TestFieldsFile(t *testing.T) {
	const file = "../testdata/powens-fields.json"
	want := map[string][]string{}
	for _, r := range powens.Requests() {
		want[string(r)] = powens.Fields(r)
	}
	if *updateFields {
		data, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v; want %v (go test ./powens -run TestFieldsFile -update-fields)", file, got, want)
	}
}
