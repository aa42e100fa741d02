package e2ee_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// TestIntegrationRotationAndOutage runs the whole integration, as
// powens.NewClient puts it together (routes and Transport with KeyRejected)
// around a KeyFetcher passed as Options.Keys, against an e2eetest stand-in
// through a key outage, two rotations and a hanging key endpoint.
func TestIntegrationRotationAndOutage(t *testing.T) {
	api := e2eetest.NewServer()
	defer api.Close()
	api.RejectRetiredKeys(http.StatusBadRequest, `{"code":"badKey"}`)

	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		t.Fatal(err)
	}
	// A fetcher of the test's own: it may refresh at once after a rejection.
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client(), MinRefreshInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient:  api.Client(),
		Keys:        keys,
		KeyRejected: func(r *http.Response) bool { return r.StatusCode == http.StatusBadRequest },
	})
	if err != nil {
		t.Fatal(err)
	}
	post := func(ctx context.Context, otp string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "POST", "https://acme.biapi.pro/2.0/users/me/connections/7",
			strings.NewReader(`{"otp": "`+otp+`", "resume": true}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	lastOTP := func() string {
		t.Helper()
		r, ok := api.LastRequest()
		if !ok {
			t.Fatal("the API received nothing")
		}
		if strings.Contains(string(r.Body), "11111") || strings.Contains(string(r.Body), "22222") {
			t.Errorf("a credential reached the API in cleartext")
		}
		fields, err := api.DecryptFields(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := api.Open(r.Body)
		if err != nil || !strings.Contains(opened, `"resume": true`) {
			t.Errorf("Open = %q, %v", opened, err)
		}
		return fields["/otp"]
	}

	// 1. The first request fetches the key.
	if got := post(context.Background(), "111111"); got != 200 {
		t.Fatalf("first request: %d", got)
	}
	if got := lastOTP(); got != "111111" {
		t.Errorf("the API decrypted %q; want 111111", got)
	}
	if api.KeyRequests() != 1 || api.APIRequests() != 1 {
		t.Errorf("%d key and %d API requests; want 1 and 1", api.KeyRequests(), api.APIRequests())
	}

	// 2. The key endpoint goes down: the cached key keeps working.
	api.Fail(http.StatusServiceUnavailable, "maintenance")
	if got := post(context.Background(), "222222"); got != 200 || lastOTP() != "222222" {
		t.Errorf("during a key outage: status %d; want 200 with the cached key", got)
	}
	if api.KeyRequests() != 1 {
		t.Errorf("the cached key was fetched again during the outage")
	}

	// 3. The endpoint is back and the API rotates: the rejection makes the
	// Transport refresh and resend with the new key.
	api.Recover()
	api.Rotate()
	before := api.APIRequests()
	if got := post(context.Background(), "444444"); got != 200 || lastOTP() != "444444" {
		t.Errorf("after recovery: status %d; want 200", got)
	}
	if n := api.APIRequests() - before; n != 2 {
		t.Errorf("after recovery: %d API requests; want 2 (rejected, then resent)", n)
	}
	r, _ := api.LastRequest()
	if r.KeyIDs["/otp"] != api.Key().ID {
		t.Errorf("resent with kid %s; want the new %s", r.KeyIDs["/otp"], api.Key().ID)
	}

	// 4. Another rotation while the endpoint hangs: the request's deadline
	// bounds the refresh, and the caller gets the API's rejection.
	api.Rotate()
	api.Delay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if got := post(ctx, "555555"); got != http.StatusBadRequest {
		t.Errorf("rotated, endpoint hanging: status %d; want the API's 400", got)
	}
	api.Recover()

	// Every value the API received, old key or new, decrypts.
	for _, req := range api.Requests() {
		for ptr, kid := range req.KeyIDs {
			if _, ok := req.Decrypted[ptr]; !ok {
				t.Errorf("the JWE at %s (kid %s) does not decrypt", ptr, kid)
			}
		}
	}
}
