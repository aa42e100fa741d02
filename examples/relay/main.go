// Command relay shows, offline, an intermediate service between a user
// interface and the API, when the user interface encrypts the credentials
// itself.
//
// The relay serves the API's public key to its user interface (KeyHandler)
// and forwards the requests it receives to the API with powens.NewRelay: a
// body whose credentials are JWEs of the API's key goes on byte for byte,
// and a body with a credential in cleartext is refused (400) and never
// forwarded. The relay never holds a cleartext credential,
// and never could decrypt one.
//
// An e2eetest server on loopback plays the API; a Go client plays the user
// interface, encrypting with the key the relay serves.
//
//	go run ./examples/relay
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

const domain = "acme"

func main() {
	log.SetFlags(0)
	log.SetPrefix("relay: ")
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// newRelay returns the relay's handler: the API's key at GET /e2ee/publickey,
// and the requests under /2.0/ forwarded to the API through httpClient by
// powens.NewRelay, which checks their credentials' JWEs with keys and
// refuses (400) any credential in cleartext.
func newRelay(keys e2ee.KeySource, httpClient *http.Client) (http.Handler, error) {
	relay, err := powens.NewRelay(domain, &powens.Options{HTTPClient: httpClient, Keys: keys})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys))
	mux.Handle("/2.0/", relay)
	return mux, nil
}

func run(ctx context.Context, out io.Writer) error {
	api := e2eetest.NewServer() // the API, on loopback
	defer api.Close()

	// The relay: the API's key, to serve, and VerifyOnly routes, to check.
	keyURL, err := powens.KeyURL(domain)
	if err != nil {
		return err
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		return err
	}
	defer keys.Close()
	handler, err := newRelay(keys, api.Client())
	if err != nil {
		return err
	}
	relay := httptest.NewUnstartedServer(handler)
	// A relay reads each body whole before forwarding it: bound the time a
	// slow client may take, so that it cannot hold a connection open.
	relay.Config.ReadHeaderTimeout = 5 * time.Second
	relay.Config.ReadTimeout = 30 * time.Second
	relay.Start()
	defer relay.Close()

	// The user interface: encrypt with the key the relay serves, then post.
	uiKeys, err := e2ee.NewKeyFetcher(relay.URL+"/e2ee/publickey", nil)
	if err != nil {
		return err
	}
	defer uiKeys.Close()
	fields, err := e2ee.NewPayload(e2ee.NewEncryptor(uiKeys), powens.Fields(powens.ConnectionCreate)...)
	if err != nil {
		return err
	}
	cleartext := []byte(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)
	encrypted, err := fields.Encrypt(ctx, cleartext)
	if err != nil {
		return err
	}

	status, _, err := post(ctx, relay.URL+"/2.0/users/me/connections", encrypted)
	if err != nil {
		return err
	}
	sent, _ := api.LastRequest()
	fmt.Fprintf(out, "encrypted body:       relay answers %d, the API received %d request(s)\n", status, api.APIRequests())
	fmt.Fprintf(out, "                      forwarded unchanged: %v\n", bytes.Equal(sent.Body, encrypted))
	fmt.Fprintf(out, "                      the API decrypts: %s\n", sent.Opened)

	status, reply, err := post(ctx, relay.URL+"/2.0/users/me/connections", cleartext)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cleartext body:       relay answers %d: %s", status, reply)
	fmt.Fprintf(out, "                      the API received %d request(s)\n", api.APIRequests())
	return nil
}

// post sends body to url and returns the response's status and body.
func post(ctx context.Context, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(reply), err
}
