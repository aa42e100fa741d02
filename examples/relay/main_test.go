package main

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"encrypted body:       relay answers 200, the API received 1 request(s)\n",
		"forwarded unchanged: true\n",
		`the API decrypts: {"id_connector": 40, "login": "john.doe", "password": "hunter2"}`,
		"cleartext body:       relay answers 400: request refused: e2ee: designated value in cleartext",
		"/*, /* (request not sent: route \"acme.biapi.pro/users/{user}/connections\")\n" +
			"                      the API received 1 request(s)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// relayFixture starts an API stand-in and a relay in front of it.
func relayFixture(t *testing.T) (*e2eetest.Server, *httptest.Server) {
	t.Helper()
	api := e2eetest.NewServer()
	t.Cleanup(api.Close)
	keys, err := e2ee.NewKeyFetcher(api.URL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	handler, err := newRelay(keys, api.Client())
	if err != nil {
		t.Fatal(err)
	}
	relay := httptest.NewServer(handler)
	t.Cleanup(relay.Close)
	return api, relay
}

func TestRelayRefusesCleartext(t *testing.T) {
	api, relay := relayFixture(t)
	const secret = "canary-S3cr3t-4f1d"
	for _, tt := range []struct{ name, path, body, contentType string }{
		{"connection creation", "/2.0/users/me/connections", `{"id_connector": 40, "password": "` + secret + `"}`, ""},
		{"connection update", "/2.0/users/me/connections/7", `{"otp": "` + secret + `"}`, ""},
		{"transfer update", "/2.0/users/me/transfers/8", `{"id_account": 1, "code": "` + secret + `"}`, ""},
		{"payment validation", "/2.0/payments/9", `{"fields": {"website": "` + secret + `"}}`, ""},
		{"number in a credential field", "/2.0/users/me/connections", `{"id_connector": 40, "pin": 1234}`, ""},
		{"path in capitals", "/2.0/USERS/me/Connections", `{"id_connector": 40, "password": "` + secret + `"}`, ""},
		{"form body", "/2.0/users/me/connections", `password=` + secret, "application/x-www-form-urlencoded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(relay.URL+tt.path, cmp.Or(tt.contentType, "application/json"), strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("relay answered %d; want 400", resp.StatusCode)
			}
			if bytes.Contains(reply, []byte(secret)) {
				t.Errorf("the relay's answer carries the credential: %s", reply)
			}
			if n := api.APIRequests(); n != 0 {
				t.Errorf("%d requests reached the API; want none", n)
			}
		})
	}
}

func TestRelayForwardsEncryptedBodies(t *testing.T) {
	api, relay := relayFixture(t)
	uiKeys, err := e2ee.NewKeyFetcher(relay.URL+"/e2ee/publickey", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer uiKeys.Close()
	p, err := e2ee.NewPayload(e2ee.NewEncryptor(uiKeys), powens.Fields(powens.PaymentValidation)...)
	if err != nil {
		t.Fatal(err)
	}
	body, err := p.Encrypt(context.Background(), []byte(`{"validated": true, "fields": {"website": "par", "password": "hunter2"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(relay.URL+"/2.0/payments/9", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sent, ok := api.LastRequest()
	if resp.StatusCode != 200 || !ok {
		t.Fatalf("relay answered %d, API received %v; want 200 and the request", resp.StatusCode, ok)
	}
	if !bytes.Equal(sent.Body, body) || sent.Host != "acme.biapi.pro" || sent.Path != "/2.0/payments/9" {
		t.Errorf("forwarded %s%s %q; want the body unchanged to acme.biapi.pro/2.0/payments/9", sent.Host, sent.Path, sent.Body)
	}
	if sent.Decrypted["/fields/password"] != "hunter2" {
		t.Errorf("the API decrypted %v", sent.Decrypted)
	}
}

func TestRelayServesOnlyTheKey(t *testing.T) {
	api, relay := relayFixture(t)
	resp, err := http.Get(relay.URL + "/e2ee/publickey")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	k, err := e2ee.ParseKey(data)
	if err != nil || k.ID != api.Key().ID {
		t.Errorf("relay served %v, %v; want the API's key %s", k, err, api.Key().ID)
	}
	resp, err = http.Post(relay.URL+"/e2ee/publickey", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the key path = %d; want 405", resp.StatusCode)
	}
}
