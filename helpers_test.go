package e2ee

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/credseal/e2ee/internal/fixture"
)

// canary is a credential that must never appear in an error.
const canary = "canary-S3cr3t-4f1d"

// Fixture JWKs served by the tests' key endpoints.
var (
	jwkA = fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "kid-a", "use": "enc"})
	jwkB = fixture.JWK(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b", "use": "enc"})
	jwkC = fixture.JWK(fixture.Public(fixture.RSA2048C), map[string]any{"kid": "kid-c", "use": "enc"})
)

// memKeyURL is the URL of every in-memory key endpoint.
const memKeyURL = "https://keys.test/2.0/publickey"

// keyServer is a key endpoint whose handler can be swapped, and which counts
// requests and records their headers. It is either in memory (newKeyServer),
// reached only through its client, or on a loopback httptest server
// (newLoopbackKeyServer).
type keyServer struct {
	URL      string
	client   *http.Client // reaches the endpoint; nil for a loopback one: any client does
	requests atomic.Int64
	mu       sync.Mutex // guards handler and headers
	handler  http.HandlerFunc
	headers  []http.Header
}

// newKeyServer returns an in-memory key endpoint at memKeyURL. Its handler
// runs in the goroutine of the fetch that calls it, so that a test in a
// synctest bubble controls all of its time: a handler that waits on a
// channel or on the request's context is durably blocked.
func newKeyServer(h http.HandlerFunc) *keyServer {
	s := &keyServer{URL: memKeyURL, handler: h}
	s.client = &http.Client{Transport: roundTripFunc(s.roundTrip)}
	return s
}

// newLoopbackKeyServer returns a key endpoint on a loopback httptest server,
// for tests of what crosses a network: redirects, TLS, proxies, the
// fetcher's own client.
func newLoopbackKeyServer(t *testing.T, h http.HandlerFunc) *keyServer {
	t.Helper()
	s := &keyServer{handler: h}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *keyServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.handler
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	s.requests.Add(1)
	h(w, r)
}

// roundTrip serves r in memory. Like a network transport, it returns the
// request context's error, not a response, once that context is done.
func (s *keyServer) roundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	s.serve(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func (s *keyServer) set(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func (s *keyServer) count() int { return int(s.requests.Load()) }

// header returns the headers of request i, counting from 0.
func (s *keyServer) header(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[i]
}

// fetcher returns a KeyFetcher for s's URL that reaches s (through cfg's
// HTTPClient when it has one), as newTestFetcher does.
func (s *keyServer) fetcher(t *testing.T, cfg *FetcherConfig) *KeyFetcher {
	t.Helper()
	var c FetcherConfig
	if cfg != nil {
		c = *cfg
	}
	if c.HTTPClient == nil {
		c.HTTPClient = s.client
	}
	return newTestFetcher(t, s.URL, &c)
}

// newTestFetcher returns a KeyFetcher for url with jitter off. It is closed
// at cleanup, before any server created earlier.
func newTestFetcher(t *testing.T, url string, cfg *FetcherConfig) *KeyFetcher {
	t.Helper()
	f, err := NewKeyFetcher(url, cfg)
	if err != nil {
		t.Fatalf("NewKeyFetcher(%q) = %v", url, err)
	}
	f.jitter = func(d time.Duration) time.Duration { return d }
	t.Cleanup(f.Close)
	return f
}

// serveJWK returns a handler that serves body with the headers given as
// name, value pairs.
func serveJWK(body []byte, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/jwk+json")
		w.Write(body)
	}
}

// answer returns a handler that answers code with body.
func answer(code int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// hang is a handler that answers nothing until the client goes away.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// blocking returns a handler that waits until release is closed, then runs h;
// it gives up when the client goes away.
func blocking(release <-chan struct{}, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			h(w, r)
		case <-r.Context().Done():
		}
	}
}

// releaser returns a channel for blocking and a function that closes it
// once; the function also runs at cleanup, before the server closes.
func releaser(t *testing.T) (chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return ch, release
}

// settleFetcher waits for the fetcher's background refresh and fetches to
// end. Only call it when no other goroutine is calling the fetcher.
func settleFetcher(f *KeyFetcher) {
	f.wg.Wait()
	f.flights.Wait()
}

// sleepUntil sleeps until d after start: in a synctest bubble, it moves the
// fake clock there once every other goroutine is blocked.
func sleepUntil(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
}

// waitUntil polls cond, failing the test when it stays false for 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustKey(t *testing.T, f *KeyFetcher) *Key {
	t.Helper()
	k, err := f.Key(context.Background())
	if err != nil {
		t.Fatalf("Key() = %v; want a key", err)
	}
	return k
}

// wantKey fails the test unless Key returns the key with kid.
func wantKey(t *testing.T, f *KeyFetcher, kid string) *Key {
	t.Helper()
	k := mustKey(t, f)
	if k.ID != kid {
		t.Fatalf("Key() = kid %q; want %q", k.ID, kid)
	}
	return k
}

func wantRequests(t *testing.T, s *keyServer, want int) {
	t.Helper()
	if got := s.count(); got != want {
		t.Fatalf("requests = %d; want %d", got, want)
	}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// logBuffer is an io.Writer safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wantError fails the test unless err is an error of this package that
// says reason: not nil, matching is when is is set, its message starting
// with "e2ee: " and having it once, with no control character and no part of
// the canary in it or in anything it wraps. call names what returned err.
func wantError(t testing.TB, call string, err, is error, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s = nil error; want one saying %q", call, reason)
		return
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "e2ee: ") || strings.Count(msg, "e2ee: ") != 1 || !strings.Contains(msg, reason) {
		t.Errorf("%s error = %q; want e2ee: once, then %q", call, msg, reason)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s error = %v; want errors.Is %v", call, err, is)
	}
	if strings.ContainsFunc(msg, unicode.IsControl) {
		t.Errorf("%s error carries a control character: %q", call, msg)
	}
	for _, text := range errorTexts(err) {
		if strings.Contains(text, canary[:8]) {
			t.Errorf("%s error carries the credential: %q", call, text)
		}
	}
}

// startConcurrently starts n goroutines running call(i), waits until all of
// them have started, and returns a function that waits until they are done.
func startConcurrently(n int, call func(i int)) (wait func()) {
	var started, done sync.WaitGroup
	for i := range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			call(i)
		}()
	}
	started.Wait()
	return done.Wait
}
