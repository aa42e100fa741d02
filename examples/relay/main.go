// Command relay shows, offline, an intermediate service between a user
// interface and the API, when the user interface encrypts the credentials
// itself.
//
// The relay serves the API's public key to its user interface (KeyHandler)
// and forwards the requests it receives to the API through an e2ee.Transport
// with VerifyOnly routes: a body whose credentials are already encrypted goes
// on byte for byte, and a body with a credential in cleartext is refused
// (400) and never forwarded. The relay never holds a cleartext credential,
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
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"

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
// and every other request forwarded to upstream through base, refused when
// routes find a credential in cleartext.
func newRelay(keys e2ee.KeySource, upstream *url.URL, base http.RoundTripper, routes []e2ee.Route) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
		},
		Transport: &e2ee.Transport{Base: base, Routes: routes},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case errors.Is(err, e2ee.ErrCleartext) || errors.Is(err, e2ee.ErrNotString):
				// The error names the fields, never their values.
				http.Error(w, "credentials must be encrypted: "+err.Error(), http.StatusBadRequest)
			case errors.Is(err, e2ee.ErrNotJSON) || errors.Is(err, e2ee.ErrBodyShape) || errors.Is(err, e2ee.ErrTooManyValues):
				http.Error(w, "request refused: "+err.Error(), http.StatusBadRequest)
			default:
				http.Error(w, "bad gateway", http.StatusBadGateway)
			}
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/e2ee/publickey", e2ee.KeyHandler(keys))
	mux.Handle("/", proxy)
	return mux
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
	routes, err := powens.VerifyRoutes(domain)
	if err != nil {
		return err
	}
	upstream := &url.URL{Scheme: "https", Host: domain + ".biapi.pro"}
	relay := httptest.NewServer(newRelay(keys, upstream, api.Transport(), routes))
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
