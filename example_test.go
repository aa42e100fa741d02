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
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// The API's public key, as GET /2.0/publickey serves it. Here a fixture in
// the provider's shape: 4096 bits, use enc, alg RSA-OAEP, a thumbprint kid.
func ExampleParseKey() {
	data, err := os.ReadFile("testdata/provider-key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.ID)
	fmt.Println(key.PublicKey.N.BitLen(), "bits")
	// Output:
	// KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc
	// 4096 bits
}

func ExampleEncryptor() {
	data, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	enc := e2ee.NewEncryptor(e2ee.StaticKey(key))

	jwe, err := enc.EncryptString(context.Background(), "hunter2")
	if err != nil {
		log.Fatal(err)
	}
	// Five base64url parts; the first is the protected header.
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwe, ".")[0])
	fmt.Println(string(header))
	fmt.Println(e2ee.IsJWE(jwe))
	// Output:
	// {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ"}
	// true
}

func ExampleIsJWE() {
	fmt.Println(e2ee.IsJWE("hunter2"))
	fmt.Println(e2ee.IsJWE("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")) // a JWS
	// Output:
	// false
	// false
}

func ExampleStaticKey() {
	// A key under 2048 bits, or without a kid, is refused when used.
	src := e2ee.StaticKey(&e2ee.Key{ID: ""})
	_, err := src.Key(context.Background())
	fmt.Println(err)
	// Output: e2ee: key not eligible: kid is empty
}

// A Payload designates fields with JSON Pointers, "*" wildcards and "!"
// exclusions: here, every member but the structural one.
func ExamplePayload() {
	data, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	p, err := e2ee.NewPayload(e2ee.NewEncryptor(e2ee.StaticKey(key)), "/*", "!/id_connector")
	if err != nil {
		log.Fatal(err)
	}

	body := []byte(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)
	fmt.Println(p.Check(body))
	out, err := p.Encrypt(context.Background(), body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Check(out))
	fmt.Println(strings.HasPrefix(string(out), `{"id_connector": 40, "login": "eyJ`))
	// Output:
	// e2ee: designated value in cleartext: /*, /*
	// <nil>
	// true
}

// A Transport encrypts the requests its routes designate before they leave
// the process. The e2eetest server stands in for the API.
func ExampleTransport() {
	api := e2eetest.NewServer()
	defer api.Close()
	keys, err := e2ee.NewKeyFetcher(api.URL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	connection, err := e2ee.NewPayload(e2ee.NewEncryptor(keys), "/login", "/password")
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{
		Base:   api.Transport(),
		Routes: []e2ee.Route{{Pattern: "POST /2.0/users/{user}/connections", Payload: connection}},
	}}

	resp, err := client.Post(api.URL+"/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	sent, _ := api.LastRequest()
	fmt.Println(sent.Decrypted["/login"], sent.Decrypted["/password"])
	fmt.Println(strings.Contains(string(sent.Body), "hunter2"))
	// Output:
	// john.doe hunter2
	// false
}

// A service that relays bodies its user interface already encrypted checks
// them instead: a body with a credential in cleartext is refused, and
// nothing is sent.
func ExampleRoute_verifyOnly() {
	api := e2eetest.NewServer()
	defer api.Close()
	fields, err := e2ee.NewPayload(nil, "/*", "!/id_connector") // checking needs no key
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{
		Base:   api.Transport(),
		Routes: []e2ee.Route{{Pattern: "POST /2.0/users/{user}/connections", Payload: fields, VerifyOnly: true}},
	}}

	_, err = client.Post(api.URL+"/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "password": "hunter2"}`))
	fmt.Println(errors.Is(err, e2ee.ErrCleartext))
	fmt.Println(api.APIRequests(), "requests reached the API")
	// Output:
	// true
	// 0 requests reached the API
}

// KeyHandler relays the API's key to a user interface, which encrypts
// before anything reaches the backend.
func ExampleKeyHandler() {
	data, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(e2ee.StaticKey(key))) // a KeyFetcher in production

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/e2ee/publickey", nil))
	served, err := e2ee.ParseKey(rec.Body.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Code, rec.Header().Get("Cache-Control"))
	fmt.Println(served.ID == key.ID)
	// Output:
	// 200 public, max-age=300
	// true
}

// Validate reports at start-up the configuration mistakes that would make a
// Transport refuse every request, such as a pattern that cannot match as
// written.
func ExampleTransport_Validate() {
	fields, err := e2ee.NewPayload(nil, "/*")
	if err != nil {
		log.Fatal(err)
	}
	t := &e2ee.Transport{Routes: []e2ee.Route{
		{Pattern: "POST 2.0/users/{user}/connections", Payload: fields, VerifyOnly: true},
	}}
	fmt.Println(t.Validate())
	// Output:
	// e2ee: Transport route "POST 2.0/users/{user}/connections": "2.0" is not a host name with a dot, localhost or an IPv4 address (a pattern's path starts with "/")
}

// A refused request was not sent, so it may be retried; whether a retry can
// succeed depends on the cause. Only a missing key (the key endpoint down or
// slow) may pass on its own; a body or a configuration that was refused
// needs a change first. A retry policy, such as go-retryablehttp's
// CheckRetry, can tell them apart with errors.Is.
func ExampleErrNotSent() {
	retryable := func(err error) bool {
		if errors.Is(err, e2ee.ErrNotSent) {
			return errors.Is(err, e2ee.ErrKeyUnavailable)
		}
		return err != nil // nothing refused: the usual transport errors
	}

	api := e2eetest.NewServer()
	defer api.Close()
	keys, err := e2ee.NewKeyFetcher(api.URL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	fields, err := e2ee.NewPayload(e2ee.NewEncryptor(keys), "/*")
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{
		Base:   api.Transport(),
		Routes: []e2ee.Route{{Pattern: "POST /2.0/users/{user}/connections", Payload: fields}},
	}}
	post := func(body string) error {
		resp, err := client.Post(api.URL+"/2.0/users/me/connections", "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	err = post(`{"pin": 1234}`) // a number where a credential string belongs
	fmt.Println("body refused:", errors.Is(err, e2ee.ErrNotSent), "retry:", retryable(err))
	api.Fail(http.StatusServiceUnavailable, "maintenance")
	err = post(`{"password": "hunter2"}`)
	fmt.Println("key unavailable:", errors.Is(err, e2ee.ErrNotSent), "retry:", retryable(err))
	// Output:
	// body refused: true retry: false
	// key unavailable: true retry: true
}

// A KeyFetcher tuned with a FetcherConfig and handed to powens.NewClient as
// Options.Keys: the client encrypts with that fetcher's key, which its owner
// fetches at start-up (so that the service starts only once it can
// encrypt) and closes at shutdown. An e2eetest server stands in for the API.
func ExampleFetcherConfig() {
	api := e2eetest.NewServer() // stands in for the API: test only
	defer api.Close()

	keyURL, err := powens.KeyURL("acme") // https://acme.biapi.pro/2.0/publickey
	if err != nil {
		log.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{
		HTTPClient: api.Client(),
		Timeout:    5 * time.Second, // one fetch, 10 s by default
		MaxStale:   time.Hour,       // the last good key, while fetches fail, 24 h by default
	})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	if _, err := keys.Key(context.Background()); err != nil { // at start-up: fetch the key, or do not start
		log.Fatal(err)
	}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), Keys: keys})
	if err != nil {
		log.Fatal(err)
	}

	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	sent, _ := api.LastRequest()
	fmt.Println("the API reads:", sent.Opened)
	fmt.Println(api.KeyRequests(), "key request")
	// Output:
	// the API reads: {"id_connector": 40, "login": "john.doe", "password": "hunter2"}
	// 1 key request
}
