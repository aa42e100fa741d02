package e2ee_test

import (
	"context"
	"encoding/base64"
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
	jwk, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(jwk)
	}))
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
