package e2ee_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/credseal/e2ee"
)

// A KeyFetcher feeding an Encryptor. The key endpoint is a local server here;
// in production it is the API's https key URL, such as
// https://{domain}.biapi.pro/2.0/publickey.
func ExampleKeyFetcher() {
	srv := keyEndpoint() // a local stand-in for the key endpoint
	defer srv.Close()

	// http is accepted on loopback only; any other key URL must be https.
	fetcher, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{Timeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer fetcher.Close()
	enc := e2ee.NewEncryptor(fetcher)

	// The first call fetches the key; the next ones use the cached key.
	for range 2 {
		jwe, err := enc.EncryptString(context.Background(), "hunter2")
		if err != nil {
			log.Fatal(err)
		}
		header, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwe, ".")[0])
		fmt.Println(string(header))
	}
	// Output:
	// {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ"}
	// {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ"}
}

// A key URL that is neither https nor on loopback is refused, before any
// request is made.
func ExampleNewKeyFetcher() {
	_, err := e2ee.NewKeyFetcher("http://acme.biapi.pro/2.0/publickey", nil)
	fmt.Println(err)
	// Output: e2ee: key URL "http://acme.biapi.pro/2.0/publickey" is not https (http is accepted on a loopback host only)
}

// A readiness check built on Status. The key is fetched once at start-up,
// so that the service is ready only once it can encrypt; from then on, the
// probe reads Status, which does no I/O and never waits for the key
// endpoint.
func ExampleKeyFetcher_Status() {
	srv := keyEndpoint() // a local stand-in for the key endpoint
	defer srv.Close()

	fetcher, err := e2ee.NewKeyFetcher(srv.URL, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer fetcher.Close()

	// At start-up: fetch the key, or do not start.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := fetcher.Key(ctx); err != nil {
		log.Fatalf("no encryption key: %v", err)
	}

	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := fetcher.Status()
		switch {
		case st.KeyID == "":
			http.Error(w, "no encryption key yet", http.StatusServiceUnavailable)
		case st.Err != nil: // the last good key is still served, for a while
			fmt.Fprintf(w, "ready: key %s; its last refresh failed: %v\n", st.KeyID, st.Err)
		default:
			fmt.Fprintf(w, "ready: key %s, valid for %v\n", st.KeyID, time.Until(st.Expires).Round(time.Hour))
		}
	})

	rec := httptest.NewRecorder()
	ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 ready: key E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ, valid for 1h0m0s
}

// Pinning the key: the fetcher accepts only a key whose RFC 7638 thumbprint
// is listed (`e2ee key` prints it in this form). A key endpoint, or a relay
// in front of it, that serves another key, even under the expected kid, fails
// the fetch. List the provider's next key before it rotates.
func ExampleFetcherConfig_thumbprints() {
	srv := keyEndpoint() // a local stand-in for the key endpoint
	defer srv.Close()

	for _, pins := range [][]string{
		{"E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ"}, // the served key's thumbprint
		{"KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc"}, // another key's
	} {
		fetcher, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{Thumbprints: pins})
		if err != nil {
			log.Fatal(err) // a malformed thumbprint
		}
		k, err := fetcher.Key(context.Background())
		var unsuitable *e2ee.UnsuitableKeyError
		switch {
		case errors.As(err, &unsuitable): // errors.Is(err, e2ee.ErrUnsuitableKey) holds too
			fmt.Println("refused:", unsuitable.Reason)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Println("pinned key:", k.ID)
		}
		fetcher.Close()
	}
	// Output:
	// pinned key: E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ
	// refused: key thumbprint E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ is not pinned (FetcherConfig.Thumbprints)
}

// keyEndpoint serves testdata/key.json, with a lifetime of 1 hour, on
// loopback, where http is accepted.
func keyEndpoint() *httptest.Server {
	jwk, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(jwk)
	}))
}
