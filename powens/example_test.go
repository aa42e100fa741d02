package powens_test

import (
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// The integration in a backend that forwards credentials to the API. Here
// an e2eetest server stands in for https://acme.biapi.pro, so the example
// runs offline; in production, drop the two e2eetest lines and the
// HTTPClient and Base fields.
func Example() {
	api := e2eetest.NewServer() // stands in for the API: test only
	defer api.Close()

	url, _ := powens.KeyURL("acme")
	keys, _ := e2ee.NewKeyFetcher(url, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	defer keys.Close()
	routes, _ := powens.Routes("acme", e2ee.NewEncryptor(keys))
	client := &http.Client{Transport: &e2ee.Transport{Base: api.Transport(), Routes: routes}}

	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()

	sent, _ := api.LastRequest()
	fmt.Println("cleartext on the wire:", strings.Contains(string(sent.Body), "hunter2"))
	fmt.Println("the API reads:", sent.Opened)
	// Output:
	// cleartext on the wire: false
	// the API reads: {"id_connector": 40, "login": "john.doe", "password": "hunter2"}
}

// A key-rejection predicate, for an integrator who knows how the API answers
// a value encrypted with a retired key. The provider does not document it:
// the status and code below are this example's assumptions, as answered by
// the test server.
func ExampleRoutes_keyRejected() {
	api := e2eetest.NewServer()
	defer api.Close()
	api.RejectRetiredKeys(http.StatusBadRequest, `{"code":"invalidKey"}`)

	url, _ := powens.KeyURL("acme")
	keys, _ := e2ee.NewKeyFetcher(url, &e2ee.FetcherConfig{HTTPClient: api.Client(), MinRefreshInterval: 1})
	defer keys.Close()
	routes, _ := powens.Routes("acme", e2ee.NewEncryptor(keys))
	client := &http.Client{Transport: &e2ee.Transport{
		Base:   api.Transport(),
		Routes: routes,
		KeyRejected: func(r *http.Response) bool {
			return r.StatusCode == http.StatusBadRequest // what the test server answers
		},
	}}

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
