package e2ee

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credseal/e2ee/internal/fixture"
)

// Fixture JWKs served by the tests' key endpoints.
var (
	jwkA = fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "kid-a", "use": "enc"})
	jwkB = fixture.JWK(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b", "use": "enc"})
	jwkC = fixture.JWK(fixture.Public(fixture.RSA2048C), map[string]any{"kid": "kid-c", "use": "enc"})
)

// manualClock is a clock for a KeyFetcher's now field that moves only when
// told to.
type manualClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

// clockStart is when every manualClock starts.
var clockStart = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to d after clockStart.
func (c *manualClock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = clockStart.Add(d)
}

// keyServer is an httptest server whose handler can be swapped, and which
// counts requests and records their headers.
type keyServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex // guards handler and headers
	handler  http.HandlerFunc
	headers  []http.Header
}

func newKeyServer(t *testing.T, h http.HandlerFunc) *keyServer {
	t.Helper()
	s := &keyServer{handler: h}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
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

// newTestFetcher returns a KeyFetcher for url on a manual clock, with
// jitter off. It is closed at cleanup, before the server that was created
// first.
func newTestFetcher(t *testing.T, url string, cfg *FetcherConfig) (*KeyFetcher, *manualClock) {
	t.Helper()
	f, err := NewKeyFetcher(url, cfg)
	if err != nil {
		t.Fatalf("NewKeyFetcher(%q) = %v", url, err)
	}
	clk := &manualClock{t: clockStart}
	f.now = clk.Now
	f.jitter = func(d time.Duration) time.Duration { return d }
	t.Cleanup(f.Close)
	return f, clk
}

// settleFetcher waits for the fetcher's background refresh and fetches to
// end. Only call it when no other goroutine is calling the fetcher.
func settleFetcher(f *KeyFetcher) { f.wg.Wait() }

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

// fetchRoundTrip is an in-memory http.RoundTripper, for synctest bubbles.
type fetchRoundTrip func(*http.Request) (*http.Response, error)

func (f fetchRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// jwkResponse is a 200 response to r that carries body.
func jwkResponse(r *http.Request, body []byte, headers ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/jwk+json"}}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}
}

// Item 1: no I/O in the constructor, https only (http on loopback), redirects.

func TestNewKeyFetcherURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://acme.biapi.pro/2.0/publickey", true},
		{"HTTPS://acme.biapi.pro/2.0/publickey", true},
		{"https://10.0.0.1:8443/key", true},
		{"http://localhost/key", true},
		{"http://LocalHost:8080/key", true},
		{"http://127.0.0.1:8080/key", true},
		{"http://127.10.20.30/key", true},
		{"http://[::1]:8080/key", true},
		{"http://acme.biapi.pro/2.0/publickey", false},
		{"http://10.0.0.1/key", false},
		{"http://0.0.0.0/key", false},
		{"http://[::]/key", false},
		{"http://localhost.attacker.example/key", false},
		{"http://127.0.0.1.nip.io/key", false},
		{"ftp://localhost/key", false},
		{"file:///etc/key.json", false},
		{"https:///key", false},
		{"acme.biapi.pro/2.0/publickey", false},
		{"https://acme.biapi.pro/%zz", false},
		{"https://user:" + canary + "@acme.biapi.pro/%zz", false},
		{"http://user:" + canary + "@acme.biapi.pro/key", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			f, err := NewKeyFetcher(tt.url, nil)
			if f != nil {
				defer f.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("NewKeyFetcher(%q) = %v; want ok = %v", tt.url, err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "e2ee: ") {
				t.Errorf("NewKeyFetcher(%q) = %q; want the prefix \"e2ee: \"", tt.url, err)
			}
			if err != nil && strings.Contains(err.Error(), canary) {
				t.Errorf("NewKeyFetcher(%q) = %q; want the URL's password redacted", tt.url, err)
			}
		})
	}
}

func TestNewKeyFetcherConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  FetcherConfig
		want string
	}{
		{"negative Timeout", FetcherConfig{Timeout: -time.Second}, "Timeout is negative"},
		{"negative MaxBodyBytes", FetcherConfig{MaxBodyBytes: -1}, "MaxBodyBytes is negative"},
		{"negative MaxStale", FetcherConfig{MaxStale: -time.Second}, "MaxStale is negative"},
		{"MinTTL above MaxTTL", FetcherConfig{MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, "MinTTL (2h0m0s) exceeds MaxTTL (1h0m0s)"},
		{"MinTTL above the default MaxTTL", FetcherConfig{MinTTL: 48 * time.Hour}, "exceeds MaxTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewKeyFetcher("https://keys.example/key", &tt.cfg)
			if err == nil {
				f.Close()
				t.Fatalf("NewKeyFetcher(%+v) = nil error; want %q", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "e2ee: ") {
				t.Errorf("NewKeyFetcher error = %q; want it to contain %q", err, tt.want)
			}
		})
	}

	f, err := NewKeyFetcher("https://keys.example/key", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defaults := []struct {
		name      string
		got, want any
	}{
		{"Timeout", f.timeout, 10 * time.Second},
		{"MaxBodyBytes", f.maxBody, int64(256 << 10)},
		{"DefaultTTL", f.defaultTTL, time.Hour},
		{"MinTTL", f.minTTL, time.Minute},
		{"MaxTTL", f.maxTTL, 24 * time.Hour},
		{"MaxStale", f.maxStale, 24 * time.Hour},
		{"MinRefreshInterval", f.minRefresh, 30 * time.Second},
	}
	for _, d := range defaults {
		if d.got != d.want {
			t.Errorf("default %s = %v; want %v", d.name, d.got, d.want)
		}
	}
}

func TestNewKeyFetcherDoesNoIO(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, serveJWK(jwkA))
	var calls atomic.Int64
	counting := &http.Client{Transport: fetchRoundTrip(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	for _, cfg := range []*FetcherConfig{nil, {HTTPClient: counting}} {
		f, err := NewKeyFetcher(srv.URL, cfg)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if got := srv.count() + int(calls.Load()); got != 0 {
		t.Errorf("NewKeyFetcher made %d requests; want 0", got)
	}
}

func TestKeyFetcherRedirects(t *testing.T) {
	t.Parallel()
	other := newKeyServer(t, serveJWK(jwkB))
	srv := newKeyServer(t, nil)
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	mux := http.NewServeMux()
	mux.Handle("/key", serveJWK(jwkA))
	mux.Handle("/r1", redirect("/key"))
	mux.Handle("/r2", redirect("/r1"))
	mux.Handle("/r3", redirect("/r2"))
	mux.Handle("/r4", redirect("/r3"))
	mux.Handle("/elsewhere", redirect(other.URL+"/key"))
	mux.Handle("/other-port", redirect("http://127.0.0.1:1/key"))
	mux.Handle("/other-name", redirect(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/key"))
	srv.set(mux.ServeHTTP)

	tlsMux := http.NewServeMux()
	tlsMux.Handle("/key", serveJWK(jwkA))
	tlsMux.Handle("/r1", redirect("/key"))
	tlsMux.HandleFunc("/downgrade", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/key", http.StatusFound)
	})
	tlsSrv := httptest.NewTLSServer(tlsMux)
	t.Cleanup(tlsSrv.Close)

	var userChecks atomic.Int64
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	permissive := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		userChecks.Add(1)
		return nil
	}}
	strict := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the user's CheckRedirect says no")
	}}
	tests := []struct {
		name   string
		url    string
		client *http.Client
		want   string // error substring; "" for success
	}{
		{"no redirect", srv.URL + "/key", nil, ""},
		{"same host", srv.URL + "/r1", nil, ""},
		{"3 redirects", srv.URL + "/r3", nil, ""},
		{"4 redirects", srv.URL + "/r4", nil, "redirected more than 3 times"},
		{"another host", srv.URL + "/elsewhere", nil, "redirect to another host"},
		{"another port", srv.URL + "/other-port", nil, "redirect to another host"},
		{"another host name", srv.URL + "/other-name", nil, "redirect to another host"},
		{"https to http", tlsSrv.URL + "/downgrade", tlsSrv.Client(), "not https"},
		{"https, same host", tlsSrv.URL + "/r1", tlsSrv.Client(), ""},
		{"another host, permissive user client", srv.URL + "/elsewhere", permissive, "redirect to another host"},
		{"4 redirects, permissive user client", srv.URL + "/r4", permissive, "redirected more than 3 times"},
		{"user's CheckRedirect still applies", srv.URL + "/r1", strict, "the user's CheckRedirect says no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFetcher(t, tt.url, &FetcherConfig{HTTPClient: tt.client})
			k, err := f.Key(context.Background())
			if tt.want == "" {
				if err != nil || k.ID != "kid-a" {
					t.Fatalf("Key() = %v, %v; want kid-a", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Key() = %v, %v; want an error containing %q", k, err, tt.want)
			}
		})
	}
	if got := other.count(); got != 0 {
		t.Errorf("the other host got %d requests; want 0", got)
	}
	if got := userChecks.Load(); got == 0 {
		t.Errorf("the user's CheckRedirect was never called; want it consulted after the fetcher's rules")
	}
}

// Item 2: concurrent cold callers share one request and its outcome.

func TestKeyFetcherColdConcurrent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr bool
	}{
		{"key", serveJWK(jwkA), false},
		{"error", answer(http.StatusServiceUnavailable, "down"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release, unblock := releaser(t)
			srv := newKeyServer(t, blocking(release, tt.handler))
			f, _ := newTestFetcher(t, srv.URL, nil)

			const n = 100
			keys := make([]*Key, n)
			errs := make([]error, n)
			wait := startConcurrently(n, func(i int) { keys[i], errs[i] = f.Key(context.Background()) })
			waitUntil(t, "the first request", func() bool { return srv.count() > 0 })
			time.Sleep(50 * time.Millisecond) // the other callers join, or send requests of their own
			unblock()
			wait()

			t.Logf("%d concurrent cold Key calls made %d request(s)", n, srv.count())
			wantRequests(t, srv, 1)
			for i := range n {
				if tt.wantErr {
					var fe *FetchError
					if !errors.As(errs[i], &fe) || fe.StatusCode != http.StatusServiceUnavailable {
						t.Fatalf("Key() #%d = %v; want a *FetchError with status 503", i, errs[i])
					}
					if errs[i] != errs[0] {
						t.Fatalf("Key() #%d = %v; want the same error as #0, %v", i, errs[i], errs[0])
					}
					continue
				}
				if errs[i] != nil || keys[i] != keys[0] || keys[i].ID != "kid-a" {
					t.Fatalf("Key() #%d = %v, %v; want the same kid-a key as #0", i, keys[i], errs[i])
				}
			}
		})
	}
}

// A caller that decided to fetch on a state that has since been replaced
// shares the newer outcome instead of sending a request of its own: this is
// what keeps the count at 1 when a caller arrives just as a fetch ends.
func TestKeyFetcherSharesNewerOutcome(t *testing.T) {
	t.Parallel()
	t.Run("key", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, serveJWK(jwkA))
		f, _ := newTestFetcher(t, srv.URL, nil)
		cold := f.state.Load()
		a := wantKey(t, f, "kid-a")
		if k, err := f.fetchKey(context.Background(), cold); err != nil || k != a {
			t.Errorf("Key() on a replaced cold state = %v, %v; want %v", k, err, a)
		}
		if s, err := f.fetch(context.Background(), cold.seq); err != nil || s.key != a {
			t.Errorf("fetch(replaced state) = %v; want %v", err, a)
		}
		wantRequests(t, srv, 1)
	})
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, answer(503, ""))
		f, _ := newTestFetcher(t, srv.URL, nil)
		cold := f.state.Load()
		_, want := f.Key(context.Background())
		if _, err := f.fetchKey(context.Background(), cold); err == nil || err != want {
			t.Errorf("Key() on a replaced cold state = %v; want the same error, %v", err, want)
		}
		wantRequests(t, srv, 1)
	})
}

// Item 3: a warm Key is a memory read.

func TestKeyFetcherWarmKeyDoesNotWait(t *testing.T) {
	t.Parallel()
	release, unblock := releaser(t)
	srv := newKeyServer(t, serveJWK(jwkA))
	f, clk := newTestFetcher(t, srv.URL, nil)
	a := wantKey(t, f, "kid-a")

	srv.set(blocking(release, serveJWK(jwkB)))
	clk.Advance(time.Minute)
	refreshed := make(chan *Key, 1)
	go func() {
		k, _ := f.Refresh(context.Background())
		refreshed <- k
	}()
	waitUntil(t, "the refresh request", func() bool { return srv.count() == 2 })

	// While that request hangs, Key answers at once, in and out of the
	// refresh-ahead window (DefaultTTL 1 h: the window opens at 45 min).
	for _, at := range []time.Duration{time.Minute, 50 * time.Minute} {
		clk.Set(at)
		done := make(chan error, 1)
		go func() {
			for range 1000 {
				if k, err := f.Key(context.Background()); err != nil || k != a {
					done <- fmt.Errorf("Key() = %v, %v; want kid-a", k, err)
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Key() at %v waited for the fetch in flight", at)
		}
	}
	wantRequests(t, srv, 2)
	unblock()
	if k := <-refreshed; k == nil || k.ID != "kid-b" {
		t.Fatalf("Refresh() = %v; want kid-b", k)
	}
}

func TestKeyFetcherWarmKeyTakesNoLock(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, serveJWK(jwkA))
	f, _ := newTestFetcher(t, srv.URL, nil)
	a := wantKey(t, f, "kid-a")

	f.mu.Lock()
	f.wmu.Lock()
	done := make(chan *Key)
	go func() {
		k, _ := f.Key(context.Background())
		done <- k
	}()
	select {
	case k := <-done:
		if k != a {
			t.Errorf("Key() = %v; want %v", k, a)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Key() blocked on a lock held by a writer")
	}
	f.wmu.Unlock()
	f.mu.Unlock()
}

// Item 4: a caller whose ctx ends leaves; the fetch goes on for the others.

func TestKeyFetcherCallerContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release, unblock := releaser(t)
			srv := newKeyServer(t, blocking(release, serveJWK(jwkA)))
			f, _ := newTestFetcher(t, srv.URL, nil)

			cancels := make(chan context.CancelFunc, 1)
			first := make(chan error, 1)
			go func() {
				ctx, cancel := tt.ctx()
				cancels <- cancel
				_, err := f.Key(ctx) // this caller starts the fetch
				first <- err
			}()
			cancel := <-cancels
			defer cancel()
			waitUntil(t, "the request", func() bool { return srv.count() == 1 })
			type result struct {
				k   *Key
				err error
			}
			second := make(chan result, 1)
			go func() {
				k, err := f.Key(context.Background())
				second <- result{k, err}
			}()

			if tt.want == context.Canceled {
				cancel()
			}
			select {
			case err := <-first:
				if !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), "e2ee: ") {
					t.Errorf("Key(done ctx) = %v; want an e2ee error wrapping %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Key(done ctx) did not return while the fetch hangs")
			}

			unblock()
			if r := <-second; r.err != nil || r.k.ID != "kid-a" {
				t.Errorf("Key() of the other caller = %v, %v; want kid-a", r.k, r.err)
			}
			wantRequests(t, srv, 1)
			wantKey(t, f, "kid-a")
			wantRequests(t, srv, 1)
		})
	}
}

// Item 5: every fetch has its own deadline.

func TestKeyFetcherTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client *http.Client
	}{
		{"fetcher's own client", nil},
		{"user's client without a timeout", &http.Client{Transport: &http.Transport{}}},
		{"user's client with a longer timeout", &http.Client{Transport: &http.Transport{}, Timeout: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.client != nil {
				defer tt.client.CloseIdleConnections()
			}
			srv := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
			const timeout = 100 * time.Millisecond
			f, clk := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: tt.client, Timeout: timeout})

			start := time.Now()
			_, err := f.Key(context.Background())
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Key() = %v; want an error wrapping context.DeadlineExceeded", err)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Key() returned after %v; want about the %v Timeout", elapsed, timeout)
			}

			// The hung endpoint does not wedge the next fetch.
			srv.set(serveJWK(jwkA))
			clk.Advance(initialBackoff)
			wantKey(t, f, "kid-a")
			wantRequests(t, srv, 2)
		})
	}
}

func TestKeyFetcherDefaultTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hang := fetchRoundTrip(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		f, err := NewKeyFetcher("https://keys.example/key", &FetcherConfig{HTTPClient: &http.Client{Transport: hang}})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		_, err = f.Key(context.Background())
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("Key() on a hung endpoint returned after %v; want the default Timeout, 10s", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Key() = %v; want an error wrapping context.DeadlineExceeded", err)
		}
	})
}

// Item 6: size limit, status errors, malformed bodies.

// byteCounter is a RoundTripper that counts the body bytes its caller reads.
type byteCounter struct {
	base http.RoundTripper
	read atomic.Int64
}

func (c *byteCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		resp.Body = &countedBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

type countedBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestKeyFetcherResponseErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2000)
	padded := append(bytes.Clone(jwkA), bytes.Repeat([]byte(" "), 2048-len(jwkA))...)
	stream := func(w http.ResponseWriter, r *http.Request) { // 8 MiB, chunked
		w.Write([]byte(`{"kty":"RSA","kid":"`))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 128 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		max      int64
		is       error
		status   int    // of the *FetchError; 0 for none
		body     string // of the *FetchError
		contains string
	}{
		{"body over MaxBodyBytes, with Content-Length", serveJWK([]byte(long)), 1024, ErrResponseTooLarge, 0, "", "more than 1024 bytes"},
		{"body over MaxBodyBytes, chunked", stream, 1024, ErrResponseTooLarge, 0, "", "more than 1024 bytes"},
		{"body over the default 256 KiB", stream, 0, ErrResponseTooLarge, 0, "", "more than 262144 bytes"},
		{"body of exactly MaxBodyBytes", serveJWK(padded), 2048, nil, 0, "", ""},
		{"503 with a long body", answer(503, long), 0, nil, 503, long[:512], "returned 503 Service Unavailable"},
		{"404 with a short body", answer(404, "no such key"), 0, nil, 404, "no such key", `404 Not Found: "no such key"`},
		{"500 with no body", answer(500, ""), 0, nil, 500, "", "returned 500 Internal Server Error"},
		{"304 to an unconditional request", answer(304, ""), 0, nil, 304, "", "returned 304"},
		{"malformed JSON", serveJWK([]byte(`{"kty":"RSA",`)), 0, nil, 0, "", "key is not a JSON object"},
		{"HTML page", serveJWK([]byte("<html><body>Login</body></html>")), 0, nil, 0, "", "key is not a JSON object"},
		{"empty body", serveJWK(nil), 0, nil, 0, "", "key is not a JSON object"},
		{"JSON array", serveJWK([]byte(`[]`)), 0, nil, 0, "", "key is not a JSON object"},
		{"not a key", serveJWK([]byte(`{"hello":"world"}`)), 0, ErrUnsuitableKey, 0, "", "kty is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, tt.handler)
			f, _ := newTestFetcher(t, srv.URL, &FetcherConfig{MaxBodyBytes: tt.max})
			k, err := f.Key(context.Background())
			if tt.contains == "" {
				if err != nil || k.ID != "kid-a" {
					t.Fatalf("Key() = %v, %v; want kid-a", k, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Key() = %v; want an error", k)
			}
			if !strings.HasPrefix(err.Error(), "e2ee: ") || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Key() = %q; want an e2ee error containing %q", err, tt.contains)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Key() = %v; want an error wrapping %v", err, tt.is)
			}
			var fe *FetchError
			if got := errors.As(err, &fe); got != (tt.status != 0) {
				t.Fatalf("errors.As(%v, *FetchError) = %v; want %v", err, got, tt.status != 0)
			}
			if fe != nil {
				if fe.StatusCode != tt.status || string(fe.Body) != tt.body || fe.URL != srv.URL {
					t.Errorf("FetchError = {%q, %d, %q}; want {%q, %d, %q}",
						fe.URL, fe.StatusCode, fe.Body, srv.URL, tt.status, tt.body)
				}
			}
		})
	}
}

func TestKeyFetcherReadsAtMostLimit(t *testing.T) {
	t.Parallel()
	const limit = 1000
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		maxRead  int64
		wantRead int64 // -1: any up to maxRead
	}{
		{"chunked, endless", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte(" "), 32<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, limit + 1, -1},
		{"Content-Length over the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000000")
			chunk := bytes.Repeat([]byte(" "), 32<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, tt.handler)
			counter := &byteCounter{base: &http.Transport{}}
			defer counter.base.(*http.Transport).CloseIdleConnections()
			f, _ := newTestFetcher(t, srv.URL, &FetcherConfig{MaxBodyBytes: limit, HTTPClient: &http.Client{Transport: counter}})
			if _, err := f.Key(context.Background()); !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("Key() = %v; want ErrResponseTooLarge", err)
			}
			if got := counter.read.Load(); got > tt.maxRead || (tt.wantRead >= 0 && got != tt.wantRead) {
				t.Errorf("the fetcher read %d body bytes; want at most %d (limit+1)", got, tt.maxRead)
			}
		})
	}
}

// Item 7: the TTL.

func TestKeyFetcherTTL(t *testing.T) {
	t.Parallel()
	date := clockStart.Format(http.TimeFormat)
	in := func(d time.Duration) string { return clockStart.Add(d).Format(http.TimeFormat) }
	custom := &FetcherConfig{MinTTL: 5 * time.Minute, MaxTTL: 2 * time.Hour, DefaultTTL: 30 * time.Minute}
	tests := []struct {
		name    string
		cfg     *FetcherConfig
		headers []string
		want    time.Duration
	}{
		{"no caching headers", nil, nil, time.Hour},
		{"Cache-Control without max-age", nil, []string{"Cache-Control", "public"}, time.Hour},
		{"max-age", nil, []string{"Cache-Control", "max-age=600"}, 10 * time.Minute},
		{"max-age among directives, quoted", nil, []string{"Cache-Control", `public, MAX-AGE="300", must-revalidate`}, 5 * time.Minute},
		{"max-age less Age", nil, []string{"Cache-Control", "max-age=600", "Age", "100"}, 500 * time.Second},
		{"max-age under MinTTL", nil, []string{"Cache-Control", "max-age=10"}, time.Minute},
		{"Age over max-age", nil, []string{"Cache-Control", "max-age=600", "Age", "1000"}, time.Minute},
		{"max-age over MaxTTL", nil, []string{"Cache-Control", "max-age=172800"}, 24 * time.Hour},
		{"max-age overflowing", nil, []string{"Cache-Control", "max-age=99999999999999999999"}, 24 * time.Hour},
		{"invalid max-age", nil, []string{"Cache-Control", "max-age=soon"}, time.Minute},
		{"invalid Age ignored", nil, []string{"Cache-Control", "max-age=600", "Age", "-5"}, 10 * time.Minute},
		{"Expires less Date", nil, []string{"Expires", in(2 * time.Hour), "Date", date}, 2 * time.Hour},
		{"Expires less Date and Age", nil, []string{"Expires", in(2 * time.Hour), "Date", date, "Age", "600"}, 110 * time.Minute},
		{"Expires, Date from a skewed server clock", nil, []string{"Expires", in(5 * time.Hour), "Date", in(3 * time.Hour)}, 2 * time.Hour},
		{"Expires in the past", nil, []string{"Expires", in(-time.Hour), "Date", date}, time.Minute},
		{"invalid Expires", nil, []string{"Expires", "0", "Date", date}, time.Minute},
		{"max-age beats Expires", nil, []string{"Cache-Control", "max-age=600", "Expires", in(2 * time.Hour), "Date", date}, 10 * time.Minute},
		{"no-store", nil, []string{"Cache-Control", "no-store"}, time.Minute},
		{"no-cache", nil, []string{"Cache-Control", "no-cache"}, time.Minute},
		{"no-cache beats max-age", nil, []string{"Cache-Control", "max-age=600, no-cache"}, time.Minute},
		{"no-store beats Expires", nil, []string{"Cache-Control", "no-store", "Expires", in(2 * time.Hour), "Date", date}, time.Minute},
		{"custom DefaultTTL", custom, nil, 30 * time.Minute},
		{"custom MinTTL", custom, []string{"Cache-Control", "max-age=60"}, 5 * time.Minute},
		{"custom MaxTTL", custom, []string{"Cache-Control", "max-age=86400"}, 2 * time.Hour},
		{"custom MinTTL for no-store", custom, []string{"Cache-Control", "no-store"}, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			headers := append([]string{"Date", date}, tt.headers...)
			srv := newKeyServer(t, serveJWK(jwkA, headers...))
			f, clk := newTestFetcher(t, srv.URL, tt.cfg)
			wantKey(t, f, "kid-a")
			s := f.state.Load()
			if got := s.expires.Sub(clockStart); got != tt.want {
				t.Errorf("TTL with headers %q = %v; want %v", tt.headers, got, tt.want)
			}

			// No request before the refresh-ahead window; one once expired.
			clk.Set(tt.want * 3 / 4)
			clk.Advance(-time.Nanosecond)
			wantKey(t, f, "kid-a")
			settleFetcher(f)
			wantRequests(t, srv, 1)
			clk.Set(tt.want)
			wantKey(t, f, "kid-a")
			wantRequests(t, srv, 2)
		})
	}
}

// Item 8: refresh ahead of expiry.

func TestKeyFetcherRefreshAhead(t *testing.T) {
	t.Parallel()
	release, unblock := releaser(t)
	srv := newKeyServer(t, serveJWK(jwkA, "Cache-Control", "max-age=3600"))
	f, clk := newTestFetcher(t, srv.URL, nil)
	a := wantKey(t, f, "kid-a")

	clk.Set(45*time.Minute - time.Second) // before the last quarter
	wantKey(t, f, "kid-a")
	settleFetcher(f)
	wantRequests(t, srv, 1)

	srv.set(blocking(release, serveJWK(jwkB, "Cache-Control", "max-age=3600")))
	clk.Set(50 * time.Minute)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if k, err := f.Key(context.Background()); err != nil || k != a {
				errs <- fmt.Errorf("Key() = %v, %v; want the cached kid-a at once", k, err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Key() in the refresh-ahead window waited for the refresh")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitUntil(t, "the background refresh", func() bool { return srv.count() == 2 })
	wantKey(t, f, "kid-a") // still cached while the refresh is in flight

	unblock()
	settleFetcher(f)
	wantRequests(t, srv, 2)
	b := wantKey(t, f, "kid-b")
	if got, want := f.state.Load().expires, clockStart.Add(50*time.Minute+time.Hour); !got.Equal(want) {
		t.Errorf("expiry after the refresh = %v; want %v", got, want)
	}
	if b == a {
		t.Errorf("Key() after the refresh = the old key")
	}
}

// Item 9: stale-if-error, within MaxStale.

func TestKeyFetcherStaleIfError(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, serveJWK(jwkA)) // DefaultTTL: 1 h
	f, clk := newTestFetcher(t, srv.URL, &FetcherConfig{MaxStale: 2 * time.Hour})
	a := wantKey(t, f, "kid-a")

	srv.set(answer(http.StatusServiceUnavailable, "maintenance"))
	for _, at := range []time.Duration{time.Hour, time.Hour + time.Second, 90 * time.Minute, 3*time.Hour - time.Second} {
		clk.Set(at)
		if k, err := f.Key(context.Background()); err != nil || k != a {
			t.Fatalf("Key() at %v, fetches failing = %v, %v; want the stale kid-a", at, k, err)
		}
		settleFetcher(f)
	}
	failing := srv.count()
	if failing < 4 {
		t.Errorf("requests while failing = %d; want at least one per call", failing-1)
	}

	clk.Set(3 * time.Hour) // expiry + MaxStale
	_, err := f.Key(context.Background())
	var fe *FetchError
	if !errors.Is(err, ErrKeyStale) || !errors.As(err, &fe) || fe.StatusCode != 503 {
		t.Fatalf("Key() past MaxStale = %v; want ErrKeyStale wrapping the 503 *FetchError", err)
	}
	if !strings.Contains(err.Error(), `"kid-a"`) {
		t.Errorf("Key() past MaxStale = %q; want it to name kid-a", err)
	}
	// In backoff: no request, the same verdict.
	requests := srv.count()
	if _, err := f.Key(context.Background()); !errors.Is(err, ErrKeyStale) {
		t.Errorf("Key() past MaxStale, backing off = %v; want ErrKeyStale", err)
	}
	wantRequests(t, srv, requests)

	// The endpoint recovers.
	srv.set(serveJWK(jwkB))
	clk.Advance(time.Minute)
	wantKey(t, f, "kid-b")
}

// Item 10: an ineligible key is a failed fetch.

func TestKeyFetcherIneligibleRotation(t *testing.T) {
	t.Parallel()
	pubB := fixture.Public(fixture.RSA2048B)
	signing := fixture.JWKMembers(pubB, map[string]any{"kid": "kid-sig", "use": "sig", "alg": "RS256"})
	priv := fixture.Private(fixture.RSA2048B)
	tests := []struct {
		name   string
		keyID  string
		body   []byte
		reason string
	}{
		{"1024-bit key", "", fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "kid-small"}), "modulus has 1024 bits, need at least 2048"},
		{"signing key", "", fixture.JWK(pubB, map[string]any{"kid": "kid-sig", "use": "sig"}), `use is "sig", want "enc"`},
		{"RSA1_5 key", "", fixture.JWK(pubB, map[string]any{"kid": "kid-15", "alg": "RSA1_5"}), `alg is "RSA1_5"`},
		{"set with no encryption key", "", fixture.Set(signing), `no eligible key in JWK Set: key 0 (kid "kid-sig"): use is "sig"`},
		{"private key", "", fixture.JWK(pubB, map[string]any{"kid": "kid-priv", "d": fixture.B64(priv.D.Bytes())}), "private members (d)"},
		{"kid other than KeyID", "kid-a", jwkB, `kid "kid-b" is not the pinned kid "kid-a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, serveJWK(jwkA))
			f, clk := newTestFetcher(t, srv.URL, &FetcherConfig{KeyID: tt.keyID})
			a := wantKey(t, f, "kid-a")

			srv.set(serveJWK(tt.body))
			clk.Set(time.Minute)
			k, err := f.Refresh(context.Background())
			if err == nil || !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Refresh() = %v, %v; want ErrUnsuitableKey saying %q", k, err, tt.reason)
			}
			if strings.Contains(err.Error(), fixture.B64(priv.D.Bytes())[:16]) {
				t.Errorf("Refresh() error contains private key material")
			}
			if k := mustKey(t, f); k != a {
				t.Errorf("Key() = %v; want the last good kid-a", k)
			}
			clk.Set(90 * time.Minute) // expired: fetches fail, the stale key is served
			if k := mustKey(t, f); k != a {
				t.Errorf("Key() past expiry = %v; want the stale kid-a", k)
			}
			settleFetcher(f)
			clk.Set(26 * time.Hour) // past expiry + MaxStale
			_, err = f.Key(context.Background())
			if !errors.Is(err, ErrKeyStale) || !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Key() past MaxStale = %v; want ErrKeyStale and ErrUnsuitableKey saying %q", err, tt.reason)
			}
		})
	}
}

func TestKeyFetcherKeyIDPicksFromSet(t *testing.T) {
	t.Parallel()
	set := fixture.Set(
		fixture.JWKMembers(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b", "alg": "RSA-OAEP-256"}),
		fixture.JWKMembers(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "kid-a"}),
	)
	srv := newKeyServer(t, serveJWK(set))
	for _, tt := range []struct{ pin, want string }{{"", "kid-b"}, {"kid-a", "kid-a"}} {
		f, _ := newTestFetcher(t, srv.URL, &FetcherConfig{KeyID: tt.pin})
		if k := mustKey(t, f); k.ID != tt.want {
			t.Errorf("Key() with KeyID %q = kid %q; want %q", tt.pin, k.ID, tt.want)
		}
	}
}

// Item 11: backoff.

func TestKeyFetcherBackoffBoundsRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, srv *keyServer, f *KeyFetcher, clk *manualClock)
		call  func(f *KeyFetcher) error
	}{
		{"cold Key", nil, func(f *KeyFetcher) error {
			_, err := f.Key(context.Background())
			if err == nil {
				return errors.New("Key() = nil error; want the fetch error")
			}
			return nil
		}},
		{"expired Key", func(t *testing.T, srv *keyServer, f *KeyFetcher, clk *manualClock) {
			wantKey(t, f, "kid-a")
			clk.Set(time.Hour)
		}, keyIsA},
		{"Key in the refresh-ahead window", func(t *testing.T, srv *keyServer, f *KeyFetcher, clk *manualClock) {
			wantKey(t, f, "kid-a")
			clk.Set(50 * time.Minute)
		}, keyIsA},
		{"Refresh", func(t *testing.T, srv *keyServer, f *KeyFetcher, clk *manualClock) {
			wantKey(t, f, "kid-a")
			clk.Set(time.Minute)
		}, func(f *KeyFetcher) error {
			_, err := f.Refresh(context.Background())
			if err == nil {
				return errors.New("Refresh() = nil error; want the fetch error")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, serveJWK(jwkA))
			f, clk := newTestFetcher(t, srv.URL, nil)
			f.jitter = equalJitter // the real, random jitter
			if tt.setup != nil {
				tt.setup(t, srv, f, clk)
			}
			before := srv.count()
			srv.set(answer(http.StatusInternalServerError, "boom"))

			// 3 s of callers in a loop, a call every millisecond.
			for range 3000 {
				if err := tt.call(f); err != nil {
					t.Fatal(err)
				}
				settleFetcher(f)
				clk.Advance(time.Millisecond)
			}
			got := srv.count() - before
			t.Logf("%s: a failing endpoint hammered for 3 s got %d requests", tt.name, got)
			if got > 10 || got < 2 {
				t.Errorf("requests in 3 s = %d; want 2 to 10", got)
			}
		})
	}
}

func keyIsA(f *KeyFetcher) error {
	if k, err := f.Key(context.Background()); err != nil || k.ID != "kid-a" {
		return fmt.Errorf("Key() = %v, %v; want the cached kid-a", k, err)
	}
	return nil
}

func TestKeyFetcherBackoffConcurrentCallers(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, answer(http.StatusBadGateway, "boom"))
	f, clk := newTestFetcher(t, srv.URL, nil)
	f.jitter = equalJitter
	const callers = 8
	for range 300 { // 3 s, in 10 ms steps, each with callers calling at once
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				if _, err := f.Key(context.Background()); err == nil {
					t.Error("Key() = nil error; want the fetch error")
				}
			})
		}
		wg.Wait()
		clk.Advance(10 * time.Millisecond)
	}
	t.Logf("%d concurrent callers every 10 ms for 3 s made %d requests", callers, srv.count())
	if got := srv.count(); got > 10 || got < 2 {
		t.Errorf("requests in 3 s = %d; want 2 to 10", got)
	}
}

func TestKeyFetcherBackoffSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    []time.Duration // gaps between requests
	}{
		{"exponential, capped at 1 min", answer(503, ""), []time.Duration{
			1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
			32 * time.Second, time.Minute, time.Minute, time.Minute}},
		{"Retry-After seconds", answer(429, "", "Retry-After", "30"), []time.Duration{
			30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second,
			32 * time.Second, time.Minute}},
		{"Retry-After capped at 1 min", answer(503, "", "Retry-After", "3600"), []time.Duration{
			time.Minute, time.Minute, time.Minute}},
		{"Retry-After date", answer(503, "", "Retry-After", clockStart.Add(20*time.Second).Format(http.TimeFormat)),
			[]time.Duration{20 * time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, nil)
			f, clk := newTestFetcher(t, srv.URL, nil)
			var (
				mu    sync.Mutex // guards times
				times []time.Time
			)
			srv.set(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, clk.Now())
				mu.Unlock()
				tt.handler(w, r)
			})
			for srv.count() <= len(tt.want) {
				f.Key(context.Background())
				clk.Advance(100 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, want := range tt.want {
				if got := times[i+1].Sub(times[i]); got != want {
					t.Errorf("gap before request %d = %v; want %v", i+2, got, want)
				}
			}
		})
	}
}

func TestKeyFetcherBackoffResetsOnSuccess(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, answer(503, ""))
	f, clk := newTestFetcher(t, srv.URL, &FetcherConfig{MinRefreshInterval: time.Second})
	for range 4 { // failures: backoff 1 s, 2 s, 4 s, 8 s
		f.Key(context.Background())
		clk.Advance(time.Minute)
	}
	srv.set(serveJWK(jwkA))
	wantKey(t, f, "kid-a")
	srv.set(answer(503, ""))
	clk.Advance(time.Minute)
	if _, err := f.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh() = nil error; want the 503")
	}
	if got, want := f.state.Load().retryAt.Sub(clk.Now()), initialBackoff; got != want {
		t.Errorf("backoff after a success then a failure = %v; want %v", got, want)
	}
}

func TestEqualJitter(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := equalJitter(time.Second)
		if d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("equalJitter(1s) = %v; want within [500ms, 1s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("equalJitter(1s) gave %d distinct values in 1000 calls; want random ones", len(seen))
	}
}

// Item 12: Refresh.

func TestKeyFetcherRefresh(t *testing.T) {
	t.Parallel()

	t.Run("1000 concurrent calls make 1 request", func(t *testing.T) {
		t.Parallel()
		release, unblock := releaser(t)
		srv := newKeyServer(t, serveJWK(jwkA))
		f, clk := newTestFetcher(t, srv.URL, nil)
		wantKey(t, f, "kid-a")
		srv.set(blocking(release, serveJWK(jwkB)))
		clk.Set(time.Minute)

		const n = 1000
		keys := make([]*Key, n)
		errs := make([]error, n)
		wait := startConcurrently(n, func(i int) { keys[i], errs[i] = f.Refresh(context.Background()) })
		waitUntil(t, "the refresh request", func() bool { return srv.count() > 1 })
		time.Sleep(50 * time.Millisecond)
		unblock()
		wait()
		t.Logf("%d concurrent Refresh calls made %d request(s)", n, srv.count()-1)
		wantRequests(t, srv, 2)
		for i := range n {
			if errs[i] != nil || keys[i] != keys[0] || keys[i].ID != "kid-b" {
				t.Fatalf("Refresh() #%d = %v, %v; want the same kid-b key as #0", i, keys[i], errs[i])
			}
		}
		wantKey(t, f, "kid-b")
	})

	t.Run("rate-limited by MinRefreshInterval", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			cfg      *FetcherConfig
			interval time.Duration
		}{{nil, 30 * time.Second}, {&FetcherConfig{MinRefreshInterval: 5 * time.Minute}, 5 * time.Minute}} {
			srv := newKeyServer(t, serveJWK(jwkA))
			f, clk := newTestFetcher(t, srv.URL, tt.cfg)
			a := wantKey(t, f, "kid-a")
			srv.set(serveJWK(jwkB))
			clk.Set(tt.interval - time.Nanosecond)
			for range 100 {
				if k, err := f.Refresh(context.Background()); err != nil || k != a {
					t.Fatalf("Refresh() within %v = %v, %v; want the cached kid-a", tt.interval, k, err)
				}
			}
			wantRequests(t, srv, 1)
			clk.Set(tt.interval)
			if k, err := f.Refresh(context.Background()); err != nil || k.ID != "kid-b" {
				t.Fatalf("Refresh() after %v = %v, %v; want kid-b", tt.interval, k, err)
			}
			wantRequests(t, srv, 2)
		}
	})

	t.Run("a new kid replaces the old one atomically", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, serveJWK(jwkA))
		f, clk := newTestFetcher(t, srv.URL, nil)
		wantKey(t, f, "kid-a")
		srv.set(serveJWK(jwkB))
		clk.Set(time.Minute)

		var (
			stop atomic.Bool
			wg   sync.WaitGroup
		)
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				seenB := false
				for !stop.Load() {
					k, err := f.Key(context.Background())
					switch {
					case err != nil || k == nil:
						errs <- fmt.Errorf("Key() during rotation = %v, %v; want a key", k, err)
						return
					case k.ID == "kid-b":
						seenB = true
					case k.ID != "kid-a" || seenB:
						errs <- fmt.Errorf("Key() during rotation = %s after kid-b; want kid-b from then on", k.ID)
						return
					}
				}
			})
		}
		time.Sleep(10 * time.Millisecond)
		k, err := f.Refresh(context.Background())
		if err != nil || k.ID != "kid-b" {
			t.Errorf("Refresh() = %v, %v; want kid-b", k, err)
		}
		if got := mustKey(t, f); got != k {
			t.Errorf("Key() right after Refresh() = %v; want %v", got, k)
		}
		time.Sleep(10 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("an older response never overwrites a newer one", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			slow http.HandlerFunc // the response to the older request
		}{
			{"older key", serveJWK(jwkC)},
			{"older failure", answer(503, "")},
		} {
			t.Run(tt.name, func(t *testing.T) {
				release, unblock := releaser(t)
				var first atomic.Bool
				entered := make(chan struct{})
				srv := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
					if first.CompareAndSwap(false, true) {
						close(entered)
						blocking(release, tt.slow)(w, r)
						return
					}
					serveJWK(jwkB)(w, r)
				})
				f, _ := newTestFetcher(t, srv.URL, nil)

				// Two fetches overlap, which the shared fetch never does on
				// its own: the older one is slower.
				older := make(chan error, 1)
				go func() {
					_, err := f.fetchOnce(context.Background())
					older <- err
				}()
				<-entered
				if s, err := f.fetchOnce(context.Background()); err != nil || s.key.ID != "kid-b" {
					t.Fatalf("newer fetch = %v; want kid-b", err)
				}
				unblock()
				<-older
				if s := f.state.Load(); s.key.ID != "kid-b" || s.err != nil || !s.retryAt.IsZero() {
					t.Errorf("state after the older response = kid %s, err %v, retryAt %v; want kid-b, no error, no backoff",
						s.key.ID, s.err, s.retryAt)
				}
				wantKey(t, f, "kid-b")
			})
		}
	})

	t.Run("failure keeps the key for Key", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, serveJWK(jwkA))
		f, clk := newTestFetcher(t, srv.URL, nil)
		a := wantKey(t, f, "kid-a")
		srv.set(answer(502, "bad gateway"))
		clk.Set(time.Minute)
		var fe *FetchError
		if k, err := f.Refresh(context.Background()); k != nil || !errors.As(err, &fe) || fe.StatusCode != 502 {
			t.Fatalf("Refresh() = %v, %v; want nil and a 502 *FetchError", k, err)
		}
		if k := mustKey(t, f); k != a {
			t.Errorf("Key() after a failed Refresh = %v; want kid-a", k)
		}
		// Backing off: no request, the last error.
		if _, err := f.Refresh(context.Background()); !errors.As(err, &fe) {
			t.Errorf("Refresh() backing off = %v; want the 502 *FetchError", err)
		}
		wantRequests(t, srv, 2)
	})

	t.Run("cold", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, serveJWK(jwkA))
		f, _ := newTestFetcher(t, srv.URL, nil)
		if k, err := f.Refresh(context.Background()); err != nil || k.ID != "kid-a" {
			t.Fatalf("Refresh() on a cold fetcher = %v, %v; want kid-a", k, err)
		}
		wantKey(t, f, "kid-a")
		wantRequests(t, srv, 1)
	})
}

// Item 13: conditional requests.

func TestKeyFetcherConditional(t *testing.T) {
	t.Parallel()
	const lastModified = "Tue, 03 Mar 2026 10:00:00 GMT"
	tests := []struct {
		name       string
		validators []string // on the 200
		notMod     []string // headers of the 304
		inm, ims   string   // expected If-None-Match, If-Modified-Since
		ttl        time.Duration
	}{
		{"ETag, 304 with max-age", []string{"ETag", `"v1"`}, []string{"Cache-Control", "max-age=7200"}, `"v1"`, "", 2 * time.Hour},
		{"ETag and Last-Modified, 304 with no caching headers", []string{"ETag", `W/"v1"`, "Last-Modified", lastModified}, nil, `W/"v1"`, lastModified, 30 * time.Minute},
		{"Last-Modified only", []string{"Last-Modified", lastModified}, []string{"Cache-Control", "max-age=600"}, "", lastModified, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newKeyServer(t, nil)
			srv.set(func(w http.ResponseWriter, r *http.Request) {
				if srv.count() > 1 {
					answer(http.StatusNotModified, "", tt.notMod...)(w, r)
					return
				}
				serveJWK(jwkA, append([]string{"Cache-Control", "max-age=1800"}, tt.validators...)...)(w, r)
			})
			f, clk := newTestFetcher(t, srv.URL, nil)
			a := wantKey(t, f, "kid-a")
			if h := srv.header(0); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
				t.Errorf("first request has validators %q, %q; want none", h.Get("If-None-Match"), h.Get("If-Modified-Since"))
			}

			for i, call := range []func() (*Key, error){
				func() (*Key, error) { return f.Key(context.Background()) },     // expired
				func() (*Key, error) { return f.Refresh(context.Background()) }, // forced
			} {
				at := clk.Now().Sub(clockStart) + f.state.Load().ttl
				clk.Set(at)
				if k, err := call(); err != nil || k != a {
					t.Fatalf("call %d after a 304 = %v, %v; want the same kid-a key", i, k, err)
				}
				wantRequests(t, srv, i+2)
				h := srv.header(i + 1)
				if got := h.Get("If-None-Match"); got != tt.inm {
					t.Errorf("If-None-Match = %q; want %q", got, tt.inm)
				}
				if got := h.Get("If-Modified-Since"); got != tt.ims {
					t.Errorf("If-Modified-Since = %q; want %q", got, tt.ims)
				}
				if got, want := f.state.Load().expires, clockStart.Add(at+tt.ttl); !got.Equal(want) {
					t.Errorf("expiry after the 304 = %v; want %v (the TTL extended by %v)", got, want, tt.ttl)
				}
			}
		})
	}
}

// Item 14: the user's client and headers.

func TestKeyFetcherUserClient(t *testing.T) {
	t.Parallel()

	t.Run("TLS client and Authorization header", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+canary || r.Header.Get("X-Tenant") != "acme" {
				answer(http.StatusUnauthorized, "who are you")(w, r)
				return
			}
			serveJWK(jwkA)(w, r)
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the fetcher's own client refuses
		srv.StartTLS()
		defer srv.Close()
		header := http.Header{"Authorization": {"Bearer " + canary}, "X-Tenant": {"acme"}}
		client := srv.Client()

		f, _ := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: client, Header: header})
		wantKey(t, f, "kid-a")
		if client.CheckRedirect != nil {
			t.Errorf("the user's http.Client was modified: CheckRedirect set")
		}

		f, _ = newTestFetcher(t, srv.URL, &FetcherConfig{Header: header})
		if _, err := f.Key(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Key() without the user's client = %v; want a certificate error", err)
		}
		f, _ = newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: client})
		var fe *FetchError
		if _, err := f.Key(context.Background()); !errors.As(err, &fe) || fe.StatusCode != 401 {
			t.Errorf("Key() without Header = %v; want a 401 *FetchError", err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		var target atomic.Value
		proxy := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
			target.Store(r.URL.String()) // a proxy gets the absolute URL
			serveJWK(jwkA)(w, r)
		})
		proxyURL, _ := url.Parse(proxy.URL)
		tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer tr.CloseIdleConnections()
		f, _ := newTestFetcher(t, "http://127.0.0.1:9/2.0/publickey", &FetcherConfig{HTTPClient: &http.Client{Transport: tr}})
		wantKey(t, f, "kid-a")
		if got := target.Load(); got != "http://127.0.0.1:9/2.0/publickey" {
			t.Errorf("the proxy was asked for %v; want the key URL", got)
		}
	})

	t.Run("cookie jar", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("session"); err != nil || c.Value != "s1" {
				answer(http.StatusForbidden, "")(w, r)
				return
			}
			serveJWK(jwkA)(w, r)
		})
		jar, _ := cookiejar.New(nil)
		u, _ := url.Parse(srv.URL)
		jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "s1"}})
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		f, _ := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: &http.Client{Transport: tr, Jar: jar}})
		wantKey(t, f, "kid-a")
	})
}

// Item 15: the Logger.

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

func TestKeyFetcherLogs(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newKeyServer(t, serveJWK(jwkA, "ETag", `"v1"`))
	const secret = "Bearer token-" + canary
	f, clk := newTestFetcher(t, srv.URL, &FetcherConfig{Logger: logger, Header: http.Header{"Authorization": {secret}}})

	wantKey(t, f, "kid-a")
	srv.set(answer(http.StatusServiceUnavailable, "body-"+canary))
	clk.Set(time.Minute)
	f.Refresh(context.Background())
	srv.set(answer(http.StatusNotModified, ""))
	clk.Set(2 * time.Minute)
	f.Refresh(context.Background())
	srv.set(serveJWK(jwkB))
	clk.Set(3 * time.Minute)
	f.Refresh(context.Background())
	srv.set(serveJWK(fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "kid-small"})))
	clk.Set(4 * time.Minute)
	f.Refresh(context.Background())

	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	want := []map[string]any{
		{"level": "DEBUG", "msg": "e2ee: key fetched", "url": srv.URL, "status": 200.0, "kid": "kid-a"},
		{"level": "WARN", "msg": "e2ee: key fetch failed", "url": srv.URL, "status": 503.0, "cached_kid": "kid-a",
			"error": "e2ee: key endpoint " + srv.URL + " returned 503 Service Unavailable"},
		{"level": "DEBUG", "msg": "e2ee: key not modified", "url": srv.URL, "status": 304.0, "kid": "kid-a"},
		{"level": "DEBUG", "msg": "e2ee: key fetched", "url": srv.URL, "status": 200.0, "kid": "kid-b"},
		{"level": "INFO", "msg": "e2ee: key changed", "url": srv.URL, "old_kid": "kid-a", "new_kid": "kid-b"},
		{"level": "WARN", "msg": "e2ee: key fetch failed", "url": srv.URL, "status": 200.0, "cached_kid": "kid-b"},
	}
	if len(events) != len(want) {
		t.Fatalf("got %d log events; want %d:\n%s", len(events), len(want), logs.String())
	}
	for i, w := range want {
		for k, v := range w {
			if events[i][k] != v {
				t.Errorf("event %d: %s = %v; want %v", i, k, events[i][k], v)
			}
		}
		if w["status"] != nil && w["msg"] != "e2ee: key changed" {
			if _, ok := events[i]["duration"]; !ok {
				t.Errorf("event %d (%s) has no duration", i, w["msg"])
			}
		}
	}
	if msg, _ := events[5]["error"].(string); !strings.Contains(msg, "modulus has 1024 bits") {
		t.Errorf("log of an ineligible key says %q; want why it was refused", msg)
	}
	out := logs.String()
	for _, leak := range []string{canary, fixture.B64(fixture.Public(fixture.RSA2048A).N.Bytes())[:32], `"keys"`, "Authorization"} {
		if strings.Contains(out, leak) {
			t.Errorf("logs contain %q; want no body contents or request headers:\n%s", leak, out)
		}
	}
}

// Item 16: Close.

func TestKeyFetcherClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var inFlight atomic.Int64
		rt := fetchRoundTrip(func(r *http.Request) (*http.Response, error) {
			if r.Header.Get("If-None-Match") == "" {
				return jwkResponse(r, jwkA, "Cache-Control", "max-age=3600", "ETag", `"v1"`), nil
			}
			inFlight.Add(1)
			defer inFlight.Add(-1)
			<-r.Context().Done() // refreshes hang
			return nil, r.Context().Err()
		})
		f, err := NewKeyFetcher("https://keys.example/key", &FetcherConfig{HTTPClient: &http.Client{Transport: rt}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.Key(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Minute) // into the refresh-ahead window
		if k, _ := f.Key(context.Background()); k != a {
			t.Fatalf("Key() = %v; want kid-a", k)
		}
		synctest.Wait()
		if got := inFlight.Load(); got != 1 {
			t.Fatalf("background refreshes in flight = %d; want 1", got)
		}

		start := time.Now()
		f.Close()
		if got := time.Since(start); got != 0 {
			t.Errorf("Close() took %v of fake time; want it to cancel the refresh, not wait for its timeout", got)
		}
		if got := inFlight.Load(); got != 0 {
			t.Errorf("requests in flight after Close() = %d; want 0", got)
		}
		if k, err := f.Key(context.Background()); !errors.Is(err, ErrFetcherClosed) {
			t.Errorf("Key() after Close() = %v, %v; want ErrFetcherClosed", k, err)
		}
		if k, err := f.Refresh(context.Background()); !errors.Is(err, ErrFetcherClosed) {
			t.Errorf("Refresh() after Close() = %v, %v; want ErrFetcherClosed", k, err)
		}
		f.Close() // idempotent
		// synctest.Test fails if a goroutine of the bubble is left blocked.
	})
}

func TestKeyFetcherCloseReleasesWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rt := fetchRoundTrip(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		f, err := NewKeyFetcher("https://keys.example/key", &FetcherConfig{HTTPClient: &http.Client{Transport: rt}})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := f.Key(context.Background())
				errs <- err
			}()
		}
		synctest.Wait()
		start := time.Now()
		f.Close()
		for range 3 {
			if err := <-errs; !errors.Is(err, ErrFetcherClosed) {
				t.Errorf("Key() waiting when Close() is called = %v; want ErrFetcherClosed", err)
			}
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("waiters were released after %v; want at once", got)
		}
	})
}

// TestKeyFetcherNoGoroutineLeak is not parallel: it counts goroutines.
func TestKeyFetcherNoGoroutineLeak(t *testing.T) {
	release, _ := releaser(t)
	srv := newKeyServer(t, serveJWK(jwkA))
	before := runtime.NumGoroutine()
	settled := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines %s: %d; want at most %d, as before\n%s",
					when, runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond)
		}
	}

	f, clk := newTestFetcher(t, srv.URL, nil) // the fetcher's own client
	wantKey(t, f, "kid-a")
	settled("between fetches")

	srv.set(blocking(release, serveJWK(jwkB)))
	clk.Set(50 * time.Minute)
	wantKey(t, f, "kid-a") // starts a background refresh, which hangs
	waitUntil(t, "the background refresh", func() bool { return srv.count() == 2 })
	start := time.Now()
	f.Close()
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Close() took %v; want it to cancel the fetch in flight at once", elapsed)
	}
	settled("after Close()")
}

func TestFetchErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *FetchError
		want string
	}{
		{&FetchError{URL: "https://k.example/key", StatusCode: 503}, "e2ee: key endpoint https://k.example/key returned 503 Service Unavailable"},
		{&FetchError{URL: "https://k.example/key", StatusCode: 418, Body: []byte("short\nand stout")}, `e2ee: key endpoint https://k.example/key returned 418 I'm a teapot: "short\nand stout"`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}

func TestKeyFetcherRedactsURLPassword(t *testing.T) {
	t.Parallel()
	srv := newKeyServer(t, answer(500, ""))
	u := strings.Replace(srv.URL, "http://", "http://user:"+canary+"@", 1)
	f, _ := newTestFetcher(t, u, nil)
	_, err := f.Key(context.Background())
	if err == nil || strings.Contains(err.Error(), canary) {
		t.Errorf("Key() = %v; want an error without the URL's password", err)
	}
}

func BenchmarkKeyFetcherWarm(b *testing.B) {
	srv := httptest.NewServer(serveJWK(jwkA, "Cache-Control", "max-age=86400"))
	defer srv.Close()
	f, err := NewKeyFetcher(srv.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	if _, err := f.Key(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Key(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.Key(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestKeyFetcherKeepsTheSameKeyValue refetches an unchanged key: Key and
// Refresh give the same *Key as before, so that users' caches keyed on it
// (the Encryptor's among them) stay valid.
func TestKeyFetcherKeepsTheSameKeyValue(t *testing.T) {
	srv := newKeyServer(t, serveJWK(jwkA))
	f, clk := newTestFetcher(t, srv.URL, nil)
	first := wantKey(t, f, "kid-a")
	clk.Set(time.Minute)
	again, err := f.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if srv.count() != 2 {
		t.Fatalf("%d requests; want 2", srv.count())
	}
	if again != first {
		t.Errorf("Refresh of an unchanged key gave a new *Key")
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
