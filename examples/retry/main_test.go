package main

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// TestRun checks the two outcomes of the retry policy: a request refused
// for want of a key is retried until the key endpoint is back; one refused
// for its body is tried once, and nothing of it is sent.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"key endpoint down once: 2 attempts, error: <nil>\n",
		"body refused:           1 attempt, not sent: true, retried: false\n",
		"requests that reached the API: 1\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDefaultPolicyRetriesRefusals shows why checkRetry is needed: with
// go-retryablehttp's default policy, a request refused for its body is
// tried again and again, though no retry can change the outcome.
func TestDefaultPolicyRetriesRefusals(t *testing.T) {
	api := e2eetest.NewServer()
	defer api.Close()
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		check retryablehttp.CheckRetry
		want  int
	}{
		{"default policy", retryablehttp.DefaultRetryPolicy, 4},
		{"checkRetry", checkRetry, 1},
	} {
		retry := retryablehttp.NewClient()
		retry.HTTPClient, retry.CheckRetry, retry.Logger = client, tt.check, nil
		retry.RetryMax, retry.RetryWaitMin, retry.RetryWaitMax = 3, time.Millisecond, time.Millisecond
		attempts := 0
		retry.RequestLogHook = func(retryablehttp.Logger, *http.Request, int) { attempts++ }
		_, err := retry.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
			strings.NewReader(`{"login": "john.doe", "pin": 1234}`))
		if !errors.Is(err, e2ee.ErrNotSent) || attempts != tt.want {
			t.Errorf("%s: %d attempts, error %v; want %d and ErrNotSent", tt.name, attempts, err, tt.want)
		}
	}
	if n := api.APIRequests(); n != 0 {
		t.Errorf("%d requests reached the API; want none", n)
	}
}
