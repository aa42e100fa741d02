package demo_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/powens"
)

// post posts body to url and returns the status code and the reply.
func post(t *testing.T, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(reply)
}

// TestBackendRelaysOnlyEncryptedBodies is the backend's half without a
// browser: a body encrypted with the key it serves is forwarded byte for
// byte; a cleartext, form or unparsable one is refused with 400 and nothing
// is forwarded.
func TestBackendRelaysOnlyEncryptedBodies(t *testing.T) {
	d, srv := startDemo(t)
	url := srv.URL + "/2.0/users/me/connections"
	cleartext := []byte(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)

	for _, tt := range []struct {
		name, contentType string
		body              []byte
		reason            string
	}{
		{"cleartext", "application/json", cleartext, "designated value in cleartext: /*, /*"},
		{"form", "application/x-www-form-urlencoded", []byte("login=john.doe&password=hunter2"), "request refused"},
		{"not JSON", "application/json", []byte(`{"login": "john.doe"`), "request refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, reply := post(t, url, tt.contentType, tt.body)
			if status != http.StatusBadRequest || !strings.Contains(reply, tt.reason) || strings.Contains(reply, "hunter2") {
				t.Errorf("POST %s body = %d %q; want 400 %q, without the password", tt.name, status, reply, tt.reason)
			}
			if n := d.API.APIRequests(); n != 0 {
				t.Errorf("the API received %d requests; want 0", n)
			}
		})
	}

	t.Run("encrypted with the key it serves", func(t *testing.T) {
		keys, err := e2ee.NewKeyFetcher(srv.URL+"/e2ee/publickey", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer keys.Close()
		p, err := e2ee.NewPayload(e2ee.NewEncryptor(keys), powens.Fields(powens.ConnectionCreate)...)
		if err != nil {
			t.Fatal(err)
		}
		body, err := p.Encrypt(context.Background(), cleartext)
		if err != nil {
			t.Fatal(err)
		}
		if status, reply := post(t, url, "application/json", body); status != http.StatusOK {
			t.Fatalf("POST encrypted body = %d %q; want 200", status, reply)
		}
		got, ok := d.API.LastRequest()
		if !ok || !bytes.Equal(got.Body, body) || got.Decrypted["/login"] != "john.doe" || got.Decrypted["/password"] != "hunter2" {
			t.Errorf("the API received %q (decrypted %v); want the encrypted body byte for byte", got.Body, got.Decrypted)
		}
	})
}
