// Command quickstart shows the end-to-end encryption of a connection's
// credentials, offline.
//
// It plays both sides: it generates a key pair and serves the public key as
// a JWK on loopback, as the API serves its own at /2.0/publickey; then, as
// the integrator, it fetches that key, encrypts the credentials of a
// connection-creation body, and prints the body as it would be sent. Last, as
// the API, it decrypts each value with the private key that only the API holds.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/credseal/e2ee"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("quickstart: ")
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// connection is a connection-creation body: the connector's ID stays clear,
// its field values are encrypted.
type connection struct {
	IDConnector int    `json:"id_connector"`
	Login       string `json:"login"`
	Password    string `json:"password"`
}

func run(out io.Writer) error {
	ctx := context.Background()

	// The API's side: a key pair, and the public half served on loopback.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	srv := httptest.NewServer(publicKeyHandler(&priv.PublicKey))
	defer srv.Close()

	// The integrator's side: fetch the key and encrypt the credentials.
	key, err := fetchKey(ctx, srv.URL+"/2.0/publickey")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "key %s, %d bits, from %s/2.0/publickey\n\n", key.ID, key.PublicKey.N.BitLen(), srv.URL)

	enc := e2ee.NewEncryptor(e2ee.StaticKey(key))
	body := connection{IDConnector: 40, Login: "john.doe", Password: "hunter2"}
	if body.Login, err = enc.EncryptString(ctx, body.Login); err != nil {
		return err
	}
	if body.Password, err = enc.EncryptString(ctx, body.Password); err != nil {
		return err
	}
	sent, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "POST /2.0/users/me/connections\n%s\n\n", sent)

	header, err := base64.RawURLEncoding.DecodeString(strings.Split(body.Password, ".")[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "protected header of each value: %s\n\n", header)

	// The API's side again: only the private key opens the values.
	for _, field := range []struct{ name, jwe string }{{"login", body.Login}, {"password", body.Password}} {
		plain, err := decrypt(field.jwe, priv)
		if err != nil {
			return fmt.Errorf("decrypting %s: %w", field.name, err)
		}
		fmt.Fprintf(out, "the API decrypts %s: %s\n", field.name, plain)
	}
	return nil
}

// publicKeyHandler serves pub as a JWK whose kid is its RFC 7638 thumbprint.
func publicKeyHandler(pub *rsa.PublicKey) http.Handler {
	key := &e2ee.Key{PublicKey: pub}
	kid, err := key.Thumbprint()
	if err != nil {
		panic(err)
	}
	key.ID = kid
	jwk, err := key.JWK()
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwk)
	})
}

// fetchKey gets and validates the JWK at url.
func fetchKey(ctx context.Context, url string) (*e2ee.Key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return nil, err
	}
	return e2ee.ParseKey(data)
}

// decrypt opens a JWE as the API does, accepting only RSA-OAEP-256 and A256GCM.
func decrypt(jwe string, priv *rsa.PrivateKey) (string, error) {
	obj, err := jose.ParseEncryptedCompact(jwe,
		[]jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return "", err
	}
	plain, err := obj.Decrypt(priv)
	return string(plain), err
}
