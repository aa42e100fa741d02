// Command retry shows, offline, a retry policy for requests that the
// encrypting client refused: go-retryablehttp retries a request refused
// because the key could not be had (the key endpoint was down), and does not
// retry one refused for its body, which no retry would change.
//
// An e2eetest server on loopback plays the API and its key endpoint.
//
// Run it from this directory (it is a module of its own, so that the SDK's
// go.mod does not carry go-retryablehttp):
//
//	cd examples/retry && go run .
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("retry: ")
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// checkRetry retries what go-retryablehttp's default policy retries, except
// requests that the encrypting Transport refused for good: refused
// (ErrNotSent) for a reason other than a missing key (ErrKeyUnavailable),
// such as a body it cannot encrypt or a host it has no route for.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, e2ee.ErrNotSent) && !errors.Is(err, e2ee.ErrKeyUnavailable) {
		return false, err
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

func run(out io.Writer) error {
	api := e2eetest.NewServer()
	defer api.Close()
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		return err
	}

	retry := retryablehttp.NewClient()
	retry.HTTPClient = client
	retry.CheckRetry = checkRetry
	retry.RetryMax = 3
	retry.RetryWaitMin, retry.RetryWaitMax = 1200*time.Millisecond, 2*time.Second // past the key fetcher's first backoff
	retry.Logger = nil

	attempts := 0
	retry.RequestLogHook = func(retryablehttp.Logger, *http.Request, int) { attempts++ }
	post := func(body string) error {
		attempts = 0
		resp, err := retry.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	api.FailNext(1, http.StatusServiceUnavailable, "maintenance") // the first key fetch fails
	err = post(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)
	fmt.Fprintf(out, "key endpoint down once: %d attempts, error: %v\n", attempts, err)

	err = post(`{"id_connector": 40, "login": "john.doe", "pin": 1234}`)
	fmt.Fprintf(out, "body refused:           %d attempt, not sent: %v, retried: %v\n",
		attempts, errors.Is(err, e2ee.ErrNotSent), attempts > 1)
	fmt.Fprintf(out, "requests that reached the API: %d\n", api.APIRequests())
	return nil
}
