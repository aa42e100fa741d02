package e2eetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee"
)

func TestFail(t *testing.T) {
	for _, tt := range []struct {
		name       string
		inject     func(*Server)
		wantStatus []int  // of three GETs
		wantBody   string // of the failures
		wantType   string // of the failures
	}{
		{"Fail", func(s *Server) { s.Fail(503, "down for maintenance") },
			[]int{503, 503, 503}, "down for maintenance", "text/plain; charset=utf-8"},
		{"FailNext", func(s *Server) { s.FailNext(2, 500, `{"error":"boom"}`) },
			[]int{500, 500, 200}, `{"error":"boom"}`, "application/json"},
		{"a body that is no key", func(s *Server) { s.Fail(200, `{"kty":"EC"}`) },
			[]int{200, 200, 200}, `{"kty":"EC"}`, "application/json"},
		{"FailNext replaces Fail", func(s *Server) { s.Fail(503, ""); s.FailNext(1, 429, "slow down") },
			[]int{429, 200, 200}, "slow down", "text/plain; charset=utf-8"},
		{"FailNext(0) ends it", func(s *Server) { s.Fail(503, ""); s.FailNext(0, 503, "") },
			[]int{200, 200, 200}, "", ""},
		{"Recover ends it", func(s *Server) { s.Fail(503, ""); s.Recover() },
			[]int{200, 200, 200}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			tt.inject(srv)
			for i, want := range tt.wantStatus {
				resp, body := do(t, srv.Client(), http.MethodGet, srv.URL, "", nil)
				failed := tt.wantBody != "" && i < len(tt.wantStatus) && (want != 200 || tt.name == "a body that is no key")
				switch {
				case resp.StatusCode != want:
					t.Errorf("GET %d: status %d; want %d", i, resp.StatusCode, want)
				case failed && (body != tt.wantBody || resp.Header.Get("Content-Type") != tt.wantType):
					t.Errorf("GET %d: %q (%s); want %q (%s)", i, body, resp.Header.Get("Content-Type"), tt.wantBody, tt.wantType)
				case failed:
					if _, err := e2ee.ParseKey([]byte(body)); err == nil {
						t.Errorf("GET %d: the failure's body parses as a key", i)
					}
				default:
					if _, err := e2ee.ParseKey([]byte(body)); err != nil {
						t.Errorf("GET %d: status 200 but ParseKey = %v", i, err)
					}
				}
			}
			if got := srv.KeyRequests(); got != len(tt.wantStatus) {
				t.Errorf("KeyRequests() = %d; want %d, failures included", got, len(tt.wantStatus))
			}
			srv.Recover()
			fetchKey(t, srv.Client(), srv.URL)
		})
	}
}

func TestFailWithFetcher(t *testing.T) {
	srv := newServer(t)
	srv.Fail(http.StatusServiceUnavailable, "down")
	keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	_, err = keys.Key(context.Background())
	var fe *e2ee.FetchError
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusServiceUnavailable || string(fe.Body) != "down" {
		t.Errorf("Key() error = %v; want a FetchError with 503 and the body", err)
	}
}

func TestBadStatusPanics(t *testing.T) {
	srv := newServer(t)
	for name, call := range map[string]func(){
		"Fail(99)":                 func() { srv.Fail(99, "") },
		"Fail(600)":                func() { srv.Fail(600, "") },
		"FailNext(1, 0)":           func() { srv.FailNext(1, 0, "") },
		"Respond(1000)":            func() { srv.Respond(1000, "") },
		"RejectRetiredKeys(-1)":    func() { srv.RejectRetiredKeys(-1, "") },
		"RejectRetiredKeys(101)":   func() { srv.RejectRetiredKeys(101, "") },
		"FailNext(0, 0) checks it": func() { srv.FailNext(0, 0, "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if v := recover(); v == nil || !strings.HasPrefix(fmt.Sprint(v), "e2eetest: ") {
					t.Errorf("%s: panic %v; want one starting with e2eetest:", name, v)
				}
			}()
			call()
		})
	}
	fetchKey(t, srv.Client(), srv.URL) // nothing was injected
}

func TestDelay(t *testing.T) {
	t.Run("client gives up", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET with a 100ms deadline: status %d; want an error", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GET with a 100ms deadline: %v; want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GET with a 100ms deadline took %v", d)
		}
		// The handler ends with the client's request, not at Close.
		waitFor(t, "the delayed handler to end after its client gave up", func() bool { return srv.waiting.Load() == 0 })
	})
	t.Run("answers late", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(150 * time.Millisecond)
		start := time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("GET answered after %v; want at least 150ms", d)
		}
		srv.Recover()
		start = time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET after Recover answered after %v", d)
		}
	})
	t.Run("delays failures", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(100 * time.Millisecond)
		srv.FailNext(1, 503, "")
		start := time.Now()
		resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, "", nil)
		if d := time.Since(start); resp.StatusCode != 503 || d < 100*time.Millisecond {
			t.Errorf("GET = %d after %v; want 503 after at least 100ms", resp.StatusCode, d)
		}
		srv.Delay(0)
		start = time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET after Delay(0) answered after %v", d)
		}
	})
	t.Run("Recover releases held requests", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(time.Minute)
		srv.Fail(503, "down")
		type result struct {
			status int
			err    error
		}
		done := make(chan result, 2)
		for range 2 {
			go func() {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					done <- result{0, err}
					return
				}
				resp.Body.Close()
				done <- result{resp.StatusCode, nil}
			}()
		}
		waitFor(t, "Delay to hold both requests", func() bool { return srv.waiting.Load() == 2 })
		start := time.Now()
		srv.Recover()
		for range 2 {
			select {
			case r := <-done:
				if r.err != nil || r.status != 200 {
					t.Errorf("held GET after Recover = %d, %v; want 200 with the key", r.status, r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the held requests were not released by Recover")
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("held requests answered %v after Recover; want at once", d)
		}
	})
	t.Run("Close does not wait for the delay", func(t *testing.T) {
		srv := NewServer()
		defer srv.Close()
		srv.Delay(time.Minute)
		errc := make(chan error, 1)
		go func() {
			resp, err := srv.Client().Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the delayed request to reach the server", func() bool { return srv.waiting.Load() == 1 })
		start := time.Now()
		srv.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Close took %v with a delayed request in flight", d)
		}
		select {
		case err := <-errc:
			if err == nil {
				t.Errorf("the delayed request succeeded after Close; want an error")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the delayed request did not end after Close")
		}
	})
}
