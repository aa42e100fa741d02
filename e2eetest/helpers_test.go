package e2eetest

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// newServer returns a Server closed when the test ends.
func newServer(t *testing.T) *Server {
	t.Helper()
	srv := NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// fixtureKey returns the embedded fixture key name with its thumbprint kid.
func fixtureKey(name string) *e2ee.Key {
	pub := fixture.Public(name)
	return &e2ee.Key{ID: fixture.Thumbprint(pub), PublicKey: pub}
}

// encrypt returns the JWE of plaintext made with key.
func encrypt(t *testing.T, key *e2ee.Key, plaintext string) string {
	t.Helper()
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(key)).EncryptString(context.Background(), plaintext)
	if err != nil {
		t.Fatalf("EncryptString: %v", err)
	}
	return jwe
}

// do sends req with client and returns the response with its body read.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// fetchKey fetches and parses the key served at url.
func fetchKey(t *testing.T, client *http.Client, url string) *e2ee.Key {
	t.Helper()
	resp, body := do(t, client, http.MethodGet, url, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d; want 200", url, resp.StatusCode)
	}
	key, err := e2ee.ParseKey([]byte(body))
	if err != nil {
		t.Fatalf("ParseKey(GET %s) = %v", url, err)
	}
	return key
}

// waitFor polls cond until it holds, and fails the test when it does not
// within 10 seconds: a wait that cannot hang the test run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("waited 10s for %s", what)
		case <-tick.C:
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newClient returns the integration a test of the kit stands in for: a
// powens client for the domain acme whose requests, key fetches included,
// reach srv. Its key fetcher may refresh at any time, so that a rotation
// shows at once.
func newClient(t *testing.T, srv *Server, keyRejected func(*http.Response) bool) *http.Client {
	t.Helper()
	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: srv.Client(), MinRefreshInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient:  srv.Client(),
		Keys:        keys,
		KeyRejected: keyRejected,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}
