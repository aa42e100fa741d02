package powens_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// backend is what a service builds once, at start-up, and shares: the
// client is safe for concurrent use, and so is the fetcher behind it.
type backend struct {
	client *http.Client
	keys   *e2ee.KeyFetcher
}

// newBackend builds the client with a key fetcher of its own, which it keeps
// open: whoever owns the backend closes it, once, at shutdown.
func newBackend(httpClient *http.Client) (*backend, error) {
	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		return nil, err
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: httpClient, Keys: keys})
	if err != nil {
		keys.Close()
		return nil, err
	}
	return &backend{client: client, keys: keys}, nil
}

// ready is the readiness check: 503 until the key can be had, and after the
// backend is closed.
func (b *backend) ready(w http.ResponseWriter, r *http.Request) {
	if st := b.keys.Status(); !st.Usable {
		http.Error(w, "the API's encryption key is unavailable", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Close stops the key fetcher: the readiness check goes red.
func (b *backend) Close() { b.keys.Close() }

// A readiness check: the service takes traffic once its key can be had,
// and stops when it can no longer be, or once the service is shut down. The
// key is fetched at start-up (warm), and the client is built once and shared.
func ExampleNewClient_readiness() {
	api := e2eetest.NewServer()
	defer api.Close()

	b, err := newBackend(api.Client())
	if err != nil {
		log.Fatal(err)
	}
	check := func() int {
		rec := httptest.NewRecorder()
		b.ready(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	fmt.Println("before the key:", check())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.keys.Key(ctx); err != nil { // warm the key at start-up
		log.Print("not ready yet: ", err)
	}
	fmt.Println("with the key:", check())
	b.Close()
	fmt.Println("after Close:", check())
	// Output:
	// before the key: 503
	// with the key: 204
	// after Close: 503
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

	// A fetcher of one's own, tuned: it may refresh the key at once after a
	// rejection (by default, at most every 30 seconds), as this example needs.
	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client(), MinRefreshInterval: time.Nanosecond})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()

	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient: api.Client(),
		Keys:       keys,
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

// A payment whose action is additionalInformationNeeded takes its field
// values in cleartext (the API's SubmitFieldValues request), on the same
// endpoint as the validation, whose fields it takes encrypted. The choice is
// made per request, with SubmitFieldValues; a body is never taken for one or
// the other by its shape. The test server refuses cleartext in strict mode,
// as it cannot know the payment's action: this test turns it off.
func ExampleSubmitFieldValues() {
	api := e2eetest.NewServer()
	defer api.Close()
	api.Strict(false)
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	post := func(ctx context.Context, body string) {
		req, err := http.NewRequestWithContext(ctx, "POST", "https://acme.biapi.pro/2.0/payments/42", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println("not sent:", errors.Is(err, e2ee.ErrNotSent))
			return
		}
		resp.Body.Close()
		sent, _ := api.LastRequest()
		fmt.Println("sent:", string(sent.Body[:min(len(sent.Body), 32)]))
	}

	ctx := context.Background()
	post(ctx, `{"fields": {"website": "par"}}`)                               // a validation: encrypted
	post(powens.SubmitFieldValues(ctx), `{"fields": {"sms_code": "123456"}}`) // as it is
	post(powens.SubmitFieldValues(ctx), `{"webview_url": "https://app.example/cb", "fields": {"website": "par"}}`)
	// Output:
	// sent: {"fields": {"website": "eyJhbGci
	// sent: {"fields": {"sms_code": "123456"
	// not sent: true
}

// A gateway with a path prefix in front of the API: BaseURL declares it,
// so that credential requests through it are encrypted and the key is
// fetched through it. Without it, they are refused (ExampleNewClient_anotherDomain).
func ExampleOptions_baseURL() {
	api := e2eetest.NewServer() // plays the gateway, and the API behind it
	defer api.Close()

	client, err := powens.NewClient("acme", &powens.Options{
		HTTPClient: api.Client(),
		BaseURL:    "https://egress.internal/powens", // the key: https://egress.internal/powens/2.0/publickey
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Post("https://egress.internal/powens/2.0/users/me/connections", "application/json",
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

// logBodies is a RoundTripper that logs request bodies, as a logging or
// tracing middleware (otelhttp.NewTransport, say) might.
type logBodies struct{ next http.RoundTripper }

func (l logBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		fmt.Printf("logged: %.40s...\n", body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return l.next.RoundTrip(req)
}

// Where logging, tracing and retrying RoundTrippers go: in the base client's
// Transport, under the encrypting one, where they see JWEs only. Wrapped
// around client.Transport, they would see every credential in cleartext.
func ExampleOptions_placement() {
	api := e2eetest.NewServer()
	defer api.Close()

	base := &http.Client{Transport: logBodies{api.Transport()}} // or otelhttp.NewTransport(...)
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: base})
	if err != nil {
		log.Fatal(err)
	}
	// Not: client.Transport = logBodies{client.Transport}, which logs the cleartext.
	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"password": "hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	// Output:
	// logged: {"password": "eyJhbGciOiJSU0EtT0FFUC0yNT...
}

// A relay for a user interface that encrypts the credentials itself: the
// API's key for the page, and the page's requests forwarded to the API once
// their credentials are checked to be JWEs of that key. Here the page forgot
// to encrypt: the relay refuses, and nothing reaches the API. In
// production, drop the e2eetest lines and serve mux from an http.Server
// with the same timeouts.
func ExampleNewRelay() {
	api := e2eetest.NewServer() // stands in for the API: test only
	defer api.Close()

	keys, err := e2ee.NewKeyFetcher("https://acme.biapi.pro/2.0/publickey", &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	relay, err := powens.NewRelay("acme", &powens.Options{HTTPClient: api.Client(), Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys)) // the key, for the page
	mux.Handle("/2.0/", relay)                               // the page's requests, checked
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 5 * time.Second // the relay reads bodies whole: bound slow clients
	srv.Config.ReadTimeout = 30 * time.Second
	srv.Start()
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", string(answer))
	fmt.Println("requests that reached the API:", api.APIRequests())
	// Output:
	// 400 request refused: e2ee: designated value in cleartext: /*, /* (request not sent: route "acme.biapi.pro/users/{user}/connections")
	// requests that reached the API: 0
}

// refusals is an slog.Handler that counts the client's refusals by reason,
// as a metrics counter would (an expvar.Map, a Prometheus CounterVec): wrap
// the Handler that the service logs with, and call it from Handle.
type refusals struct {
	mu       sync.Mutex
	byReason map[string]int
}

func (c *refusals) Enabled(context.Context, slog.Level) bool { return true }
func (c *refusals) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *refusals) WithGroup(string) slog.Handler            { return c }

func (c *refusals) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request refused" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			c.mu.Lock()
			c.byReason[a.Value.String()]++
			c.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// Refusals you can count: the client records each through Options.Logger,
// with a reason ("cleartext", "query", "body-shape", "key-unavailable",
// ...), so that a dashboard shows a rising rate of refusals (a rotation gone
// wrong, a front end sending cleartext) before users report it.
func ExampleOptions_logger() {
	api := e2eetest.NewServer()
	defer api.Close()

	counter := &refusals{byReason: map[string]int{}}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: api.Client(), Logger: slog.New(counter)})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range []struct{ url, body string }{
		{"https://acme.biapi.pro/2.0/users/me/connections", `{"id_connector": 40, "password": "hunter2"}`}, // sent, encrypted
		{"https://acme.biapi.pro/2.0/users/me/connections", `"{\"password\": \"hunter2\"}"`},               // stringified twice
		{"https://acme.biapi.pro/2.0/users/me/connections/7?otp=123456", `{}`},                             // a credential in the query
		{"https://acme.biapi.pro/2.0/users/me/connections/7?code=42", `{}`},
	} {
		if resp, err := client.Post(r.url, "application/json", strings.NewReader(r.body)); err == nil {
			resp.Body.Close()
		}
	}
	fmt.Println(counter.byReason)
	// Output:
	// map[body-shape:1 query:2]
}
