package powens_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// The integration in a backend that forwards credentials to the API: one
// call, every error checked. Here an e2eetest server stands in for
// https://acme.biapi.pro, so the example runs offline; in production, drop
// the two e2eetest lines and the Options (or pass your own HTTPClient).
func Example() {
	api := e2eetest.NewServer() // stands in for the API: test only
	defer api.Close()

	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err) // a configuration mistake: nothing can be sent
	}
	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	if err != nil {
		log.Fatal(err) // with errors.Is(err, e2ee.ErrNotSent), nothing was sent
	}
	resp.Body.Close()

	sent, _ := api.LastRequest()
	fmt.Println("cleartext on the wire:", strings.Contains(string(sent.Body), "hunter2"))
	fmt.Println("the API reads:", sent.Opened)
	// Output:
	// cleartext on the wire: false
	// the API reads: {"id_connector": 40, "login": "john.doe", "password": "hunter2"}
}

// A client set up for one domain refuses to send credentials to another
// domain's encrypted endpoints: it was not given that domain's routes.
func ExampleNewClient_anotherDomain() {
	api := e2eetest.NewServer()
	defer api.Close()

	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Post("https://acme-sandbox.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	fmt.Println("not sent:", errors.Is(err, e2ee.ErrNotSent))
	fmt.Println("requests that reached the API:", api.APIRequests())
	// Output:
	// not sent: true
	// requests that reached the API: 0
}

// A readiness check: fetch the key before serving, so that a deployment
// whose key endpoint cannot be reached does not take traffic, and share that
// fetcher with the client.
func ExampleNewClient_readiness() {
	api := e2eetest.NewServer()
	defer api.Close()

	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := keys.Key(ctx); err != nil {
		log.Fatal("not ready: ", err)
	}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	_ = client // serve requests with client
	fmt.Println("ready; key requests made:", api.KeyRequests())
	// Output:
	// ready; key requests made: 1
}

// The parts that NewClient puts together, for an integration that needs
// them apart: the key URL, a key fetcher, the routes and the Transport.
func ExampleRoutes() {
	api := e2eetest.NewServer()
	defer api.Close()

	keyURL, err := powens.KeyURL("acme") // https://acme.biapi.pro/2.0/publickey
	if err != nil {
		log.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(keys))
	if err != nil {
		log.Fatal(err)
	}
	t := &e2ee.Transport{Base: api.Transport(), Routes: routes}
	if err := t.Validate(); err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: t}

	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections/7", "application/json",
		strings.NewReader(`{"otp": "123456"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	sent, _ := api.LastRequest()
	fmt.Println("the API reads:", sent.Opened)
	// Output:
	// the API reads: {"otp": "123456"}
}

// A key-rejection predicate, for an integrator who knows how the API answers
// a value encrypted with a retired key. The provider does not document it:
// the status below is this example's assumption, as answered by the test
// server.
func ExampleOptions_keyRejected() {
	api := e2eetest.NewServer()
	defer api.Close()
	api.RejectRetiredKeys(http.StatusBadRequest, `{"code":"invalidKey"}`)

	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient: api.Client(),
		Fetcher:    &e2ee.FetcherConfig{MinRefreshInterval: 1},
		KeyRejected: func(r *http.Response) bool {
			return r.StatusCode == http.StatusBadRequest // what the test server answers
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	post := func() {
		resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections/7", "application/json",
			strings.NewReader(`{"otp": "123456"}`))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	post()       // fetches the key
	api.Rotate() // the API moves to a new key; the fetcher still has the old one
	post()       // rejected, refreshed, sent again with the new key
	fmt.Println(api.APIRequests(), "requests reached the API")
	// Output:
	// 200
	// 200
	// 3 requests reached the API
}
