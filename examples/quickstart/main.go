// Command quickstart shows, offline, a backend sending a connection's
// credentials to the API end-to-end encrypted.
//
// An e2eetest server on loopback plays the API: it serves a fixture public
// key at https://acme.biapi.pro/2.0/publickey and stands in for the API's
// other endpoints, decrypting what it receives with the private key that, in
// production, only the API holds. The backend's code is the real integration:
// the client of powens.NewClient, which fetches the domain's key and encrypts
// the credentials of the requests that package powens designates. The kit's
// client reaches the stand-in whatever host a request names, as if DNS
// pointed acme.biapi.pro at it.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("quickstart: ")
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const (
	domain = "acme"
	// body is a connection-creation request: the connector's ID stays
	// clear, the values of its fields are credentials.
	body = `{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`
)

func run(ctx context.Context, out io.Writer) error {
	api := e2eetest.NewServer() // the API, on loopback
	defer api.Close()

	// The backend: one client that fetches the domain's key and encrypts
	// what powens designates. In production, pass nil Options.
	client, err := powens.NewClient(domain, &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		return err
	}

	url := "https://" + domain + ".biapi.pro/2.0/users/me/connections"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()

	keyURL, err := powens.KeyURL(domain)
	if err != nil {
		return err
	}
	key := api.Key() // the key the API served to the client
	sent, ok := api.LastRequest()
	if !ok {
		return fmt.Errorf("the API received nothing")
	}
	fmt.Fprintf(out, "the API here is a local stand-in (e2eetest, on %s), with a test key: nothing leaves this machine\n\n", api.URL)
	fmt.Fprintf(out, "key:  %s, kid %s, %d bits (served by the stand-in)\n\n", keyURL, key.ID, key.PublicKey.N.BitLen())
	fmt.Fprintf(out, "the backend sends:\n%s\n%s\n\n", body, "  ↓")
	fmt.Fprintf(out, "%s %s (%s, from the stand-in)\n%s\n\n", sent.Method, url, resp.Status, indent(sent.Body))

	if header, err := protectedHeader(sent.Body); err == nil {
		fmt.Fprintf(out, "protected header of each value: %s\n\n", header)
	}
	fmt.Fprintf(out, "the API decrypts (here, the stand-in, with the test key's private half):\n%s\n", sent.Opened)
	return nil
}

// indent returns a JSON body indented for reading; long strings stay whole.
func indent(body []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return string(body)
	}
	return buf.String()
}

// protectedHeader returns the decoded protected header of the body's
// password, a compact JWE.
func protectedHeader(body []byte) (string, error) {
	var doc struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", err
	}
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(doc.Password, ".")[0])
	return string(h), err
}
