package e2ee

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credseal/e2ee/internal/fixture"
)

func TestNewKeyFetcherDoesNoIO(t *testing.T) {
	t.Parallel()
	srv := newLoopbackKeyServer(t, serveJWK(jwkA))
	var calls atomic.Int64
	counting := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
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

func TestKeyFetcherWarmKeyDoesNotWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		release, unblock := releaser(t)
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, &FetcherConfig{Timeout: time.Hour}) // the refresh hangs for 49 min
		a := wantKey(t, f, "kid-a")

		srv.set(blocking(release, serveJWK(jwkB)))
		sleepUntil(start, time.Minute)
		refreshed := make(chan *Key, 1)
		go func() {
			k, _ := f.Refresh(context.Background())
			refreshed <- k
		}()
		synctest.Wait()
		wantRequests(t, srv, 2)

		// While that request hangs, Key answers at once, in and out of the
		// refresh-ahead window (DefaultTTL 1 h: the window opens at 45 min).
		for _, at := range []time.Duration{time.Minute, 50 * time.Minute} {
			sleepUntil(start, at)
			before := time.Now()
			for range 1000 {
				if k, err := f.Key(context.Background()); err != nil || k != a {
					t.Fatalf("Key() at %v = %v, %v; want kid-a", at, k, err)
				}
			}
			if got := time.Since(before); got != 0 {
				t.Fatalf("Key() at %v waited %v for the fetch in flight", at, got)
			}
		}
		wantRequests(t, srv, 2)
		unblock()
		if k := <-refreshed; k == nil || k.ID != "kid-b" {
			t.Fatalf("Refresh() = %v; want kid-b", k)
		}
	})
}

func TestKeyFetcherWarmKeyTakesNoLock(t *testing.T) {
	t.Parallel()
	f := newKeyServer(serveJWK(jwkA)).fetcher(t, nil)
	a := wantKey(t, f, "kid-a")

	f.mu.Lock()
	defer f.mu.Unlock()
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
		t.Errorf("Key() blocked on the lock held by a writer")
	}
}

func TestKeyFetcherRefreshAhead(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		release, unblock := releaser(t)
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=3600"))
		f := srv.fetcher(t, nil)
		a := wantKey(t, f, "kid-a")

		sleepUntil(start, 45*time.Minute-time.Second) // before the last quarter
		wantKey(t, f, "kid-a")
		settleFetcher(f)
		wantRequests(t, srv, 1)

		srv.set(blocking(release, serveJWK(jwkB, "Cache-Control", "max-age=3600")))
		sleepUntil(start, 50*time.Minute)
		const n = 50
		keys := make([]*Key, n)
		errs := make([]error, n)
		startConcurrently(n, func(i int) { keys[i], errs[i] = f.Key(context.Background()) })()
		for i := range n {
			if errs[i] != nil || keys[i] != a {
				t.Fatalf("Key() #%d in the refresh-ahead window = %v, %v; want the cached kid-a", i, keys[i], errs[i])
			}
		}
		synctest.Wait()
		wantRequests(t, srv, 2) // one background refresh for 50 callers
		wantKey(t, f, "kid-a")  // still cached while the refresh is in flight
		unblock()
		settleFetcher(f)
		wantRequests(t, srv, 2)
		b := wantKey(t, f, "kid-b")
		if got, want := f.Status().Expires, start.Add(50*time.Minute+time.Hour); !got.Equal(want) {
			t.Errorf("expiry after the refresh = %v; want %v", got, want)
		}
		if b == a {
			t.Errorf("Key() after the refresh = the old key")
		}
	})
}

func TestKeyFetcherStaleIfError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newKeyServer(serveJWK(jwkA)) // DefaultTTL: 1 h
		f := srv.fetcher(t, &FetcherConfig{MaxStale: 2 * time.Hour})
		a := wantKey(t, f, "kid-a")

		srv.set(answer(http.StatusServiceUnavailable, "maintenance"))
		for _, at := range []time.Duration{time.Hour, time.Hour + time.Second, 90 * time.Minute, 3*time.Hour - time.Second} {
			sleepUntil(start, at)
			if k, err := f.Key(context.Background()); err != nil || k != a {
				t.Fatalf("Key() at %v, fetches failing = %v, %v; want the stale kid-a", at, k, err)
			}
			settleFetcher(f)
		}
		if failing := srv.count() - 1; failing < 4 {
			t.Errorf("requests while failing = %d; want at least one per call", failing)
		}

		sleepUntil(start, 3*time.Hour) // expiry + MaxStale
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
		time.Sleep(time.Minute)
		wantKey(t, f, "kid-b")
	})
}

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
		{"duplicate use member", "", []byte(`{"use":"sig",` + strings.TrimPrefix(string(jwkB), "{")), `duplicate member name "use"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				srv := newKeyServer(serveJWK(jwkA))
				f := srv.fetcher(t, &FetcherConfig{KeyID: tt.keyID})
				a := wantKey(t, f, "kid-a")

				srv.set(serveJWK(tt.body))
				sleepUntil(start, time.Minute)
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
				sleepUntil(start, 90*time.Minute) // expired: fetches fail, the stale key is served
				if k := mustKey(t, f); k != a {
					t.Errorf("Key() past expiry = %v; want the stale kid-a", k)
				}
				settleFetcher(f)
				sleepUntil(start, 26*time.Hour) // past expiry + MaxStale
				_, err = f.Key(context.Background())
				if !errors.Is(err, ErrKeyStale) || !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("Key() past MaxStale = %v; want ErrKeyStale and ErrUnsuitableKey saying %q", err, tt.reason)
				}
			})
		})
	}
}

func TestKeyFetcherKeyIDPicksFromSet(t *testing.T) {
	t.Parallel()
	set := fixture.Set(
		fixture.JWKMembers(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b", "alg": "RSA-OAEP-256"}),
		fixture.JWKMembers(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "kid-a"}),
	)
	srv := newKeyServer(serveJWK(set))
	for _, tt := range []struct{ pin, want string }{{"", "kid-b"}, {"kid-a", "kid-a"}} {
		f := srv.fetcher(t, &FetcherConfig{KeyID: tt.pin})
		if k := mustKey(t, f); k.ID != tt.want {
			t.Errorf("Key() with KeyID %q = kid %q; want %q", tt.pin, k.ID, tt.want)
		}
	}
}

func TestKeyFetcherBackoffBoundsRequests(t *testing.T) {
	t.Parallel()
	keyIsA := func(f *KeyFetcher) error {
		if k, err := f.Key(context.Background()); err != nil || k.ID != "kid-a" {
			return fmt.Errorf("Key() = %v, %v; want the cached kid-a", k, err)
		}
		return nil
	}
	tests := []struct {
		name string
		warm time.Duration // when set, the key is fetched, then the clock moved this far
		call func(f *KeyFetcher) error
	}{
		{"cold Key", 0, func(f *KeyFetcher) error {
			if _, err := f.Key(context.Background()); err == nil {
				return errors.New("Key() = nil error; want the fetch error")
			}
			return nil
		}},
		{"expired Key", time.Hour, keyIsA},
		{"Key in the refresh-ahead window", 50 * time.Minute, keyIsA},
		{"Refresh", time.Minute, func(f *KeyFetcher) error {
			if _, err := f.Refresh(context.Background()); err == nil {
				return errors.New("Refresh() = nil error; want the fetch error")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				srv := newKeyServer(serveJWK(jwkA))
				f := srv.fetcher(t, nil)
				f.jitter = equalJitter // the real, random jitter
				if tt.warm != 0 {
					wantKey(t, f, "kid-a")
					time.Sleep(tt.warm)
				}
				before := srv.count()
				srv.set(answer(http.StatusInternalServerError, "boom"))

				// 3 s of callers in a loop, a call every millisecond.
				for range 3000 {
					if err := tt.call(f); err != nil {
						t.Fatal(err)
					}
					settleFetcher(f)
					time.Sleep(time.Millisecond)
				}
				got := srv.count() - before
				t.Logf("%s: a failing endpoint hammered for 3 s got %d requests", tt.name, got)
				if got > 10 || got < 2 {
					t.Errorf("requests in 3 s = %d; want 2 to 10", got)
				}
			})
		})
	}
}

func TestKeyFetcherBackoffConcurrentCallers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(answer(http.StatusBadGateway, "boom"))
		f := srv.fetcher(t, nil)
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
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%d concurrent callers every 10 ms for 3 s made %d requests", callers, srv.count())
		if got := srv.count(); got > 10 || got < 2 {
			t.Errorf("requests in 3 s = %d; want 2 to 10", got)
		}
	})
}

func TestKeyFetcherBackoffSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(start time.Time) http.HandlerFunc
		want    []time.Duration // gaps between requests
	}{
		{"exponential, capped at 1 min", func(time.Time) http.HandlerFunc { return answer(503, "") }, []time.Duration{
			1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
			32 * time.Second, time.Minute, time.Minute, time.Minute}},
		{"Retry-After seconds", func(time.Time) http.HandlerFunc { return answer(429, "", "Retry-After", "30") }, []time.Duration{
			30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second,
			32 * time.Second, time.Minute}},
		{"Retry-After capped at 1 min", func(time.Time) http.HandlerFunc { return answer(503, "", "Retry-After", "3600") }, []time.Duration{
			time.Minute, time.Minute, time.Minute}},
		{"Retry-After date", func(start time.Time) http.HandlerFunc {
			return answer(503, "", "Retry-After", start.Add(20*time.Second).Format(http.TimeFormat))
		}, []time.Duration{20 * time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var times []time.Time
				h := tt.handler(time.Now())
				srv := newKeyServer(func(w http.ResponseWriter, r *http.Request) {
					times = append(times, time.Now()) // fetches never overlap here
					h(w, r)
				})
				f := srv.fetcher(t, nil)
				for srv.count() <= len(tt.want) {
					f.Key(context.Background())
					time.Sleep(100 * time.Millisecond)
				}
				for i, want := range tt.want {
					if got := times[i+1].Sub(times[i]); got != want {
						t.Errorf("gap before request %d = %v; want %v", i+2, got, want)
					}
				}
			})
		})
	}
}

func TestKeyFetcherBackoffResetsOnSuccess(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(answer(503, ""))
		f := srv.fetcher(t, &FetcherConfig{MinRefreshInterval: time.Second})
		for range 4 { // failures: backoff 1 s, 2 s, 4 s, 8 s
			f.Key(context.Background())
			time.Sleep(time.Minute)
		}
		srv.set(serveJWK(jwkA))
		wantKey(t, f, "kid-a")
		srv.set(answer(503, ""))
		time.Sleep(time.Minute)
		if _, err := f.Refresh(context.Background()); err == nil {
			t.Fatal("Refresh() = nil error; want the 503")
		}
		if got := time.Until(f.state.Load().retryAt); got != initialBackoff {
			t.Errorf("backoff after a success then a failure = %v; want %v", got, initialBackoff)
		}
	})
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

func TestKeyFetcherRefresh(t *testing.T) {
	t.Parallel()

	t.Run("1000 concurrent calls make 1 request", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			release, unblock := releaser(t)
			srv := newKeyServer(serveJWK(jwkA))
			f := srv.fetcher(t, nil)
			wantKey(t, f, "kid-a")
			srv.set(blocking(release, serveJWK(jwkB)))
			time.Sleep(time.Minute)

			const n = 1000
			keys := make([]*Key, n)
			errs := make([]error, n)
			wait := startConcurrently(n, func(i int) { keys[i], errs[i] = f.Refresh(context.Background()) })
			synctest.Wait()
			unblock()
			wait()
			wantRequests(t, srv, 2)
			for i := range n {
				if errs[i] != nil || keys[i] != keys[0] || keys[i].ID != "kid-b" {
					t.Fatalf("Refresh() #%d = %v, %v; want the same kid-b key as #0", i, keys[i], errs[i])
				}
			}
			wantKey(t, f, "kid-b")
		})
	})

	t.Run("rate-limited by MinRefreshInterval", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			cfg      *FetcherConfig
			interval time.Duration
		}{{nil, 30 * time.Second}, {&FetcherConfig{MinRefreshInterval: 5 * time.Minute}, 5 * time.Minute}} {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				srv := newKeyServer(serveJWK(jwkA))
				f := srv.fetcher(t, tt.cfg)
				a := wantKey(t, f, "kid-a")
				srv.set(serveJWK(jwkB))
				sleepUntil(start, tt.interval-time.Nanosecond)
				for range 100 {
					if k, err := f.Refresh(context.Background()); err != nil || k != a {
						t.Fatalf("Refresh() within %v = %v, %v; want the cached kid-a", tt.interval, k, err)
					}
				}
				wantRequests(t, srv, 1)
				sleepUntil(start, tt.interval)
				if k, err := f.Refresh(context.Background()); err != nil || k.ID != "kid-b" {
					t.Fatalf("Refresh() after %v = %v, %v; want kid-b", tt.interval, k, err)
				}
				wantRequests(t, srv, 2)
			})
		}
	})

	t.Run("a new kid replaces the old one atomically", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv := newKeyServer(serveJWK(jwkA))
			f := srv.fetcher(t, nil)
			wantKey(t, f, "kid-a")
			srv.set(serveJWK(jwkB))
			time.Sleep(time.Minute)

			var stop atomic.Bool
			errs := make([]error, 8)
			wait := startConcurrently(8, func(i int) {
				seenB := false
				for !stop.Load() {
					k, err := f.Key(context.Background())
					switch {
					case err != nil || k == nil:
						errs[i] = fmt.Errorf("Key() during rotation = %v, %v; want a key", k, err)
						return
					case k.ID == "kid-b":
						seenB = true
					case k.ID != "kid-a" || seenB:
						errs[i] = fmt.Errorf("Key() during rotation = %s after kid-b; want kid-b from then on", k.ID)
						return
					}
					runtime.Gosched()
				}
			})
			k, err := f.Refresh(context.Background())
			if err != nil || k.ID != "kid-b" {
				t.Errorf("Refresh() = %v, %v; want kid-b", k, err)
			}
			if got := mustKey(t, f); got != k {
				t.Errorf("Key() right after Refresh() = %v; want %v", got, k)
			}
			stop.Store(true)
			wait()
			if err := errors.Join(errs...); err != nil {
				t.Error(err)
			}
		})
	})

	t.Run("failure keeps the key for Key", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv := newKeyServer(serveJWK(jwkA))
			f := srv.fetcher(t, nil)
			a := wantKey(t, f, "kid-a")
			srv.set(answer(502, "bad gateway"))
			time.Sleep(time.Minute)
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
	})

	t.Run("cold", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, nil)
		if k, err := f.Refresh(context.Background()); err != nil || k.ID != "kid-a" {
			t.Fatalf("Refresh() on a cold fetcher = %v, %v; want kid-a", k, err)
		}
		wantKey(t, f, "kid-a")
		wantRequests(t, srv, 1)
	})
}

func TestKeyFetcherLogs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		srv := newKeyServer(serveJWK(jwkA, "ETag", `"v1"`))
		const secret = "Bearer token-" + canary
		f := srv.fetcher(t, &FetcherConfig{Logger: logger, Header: http.Header{"Authorization": {secret}}})

		wantKey(t, f, "kid-a")
		for _, h := range []http.HandlerFunc{
			answer(http.StatusServiceUnavailable, "body-"+canary),
			answer(http.StatusNotModified, ""),
			serveJWK(jwkB),
			serveJWK(fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "kid-small"})),
		} {
			srv.set(h)
			time.Sleep(time.Minute)
			f.Refresh(context.Background())
		}

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
			{"level": "DEBUG", "msg": "key fetched", "url": srv.URL, "status": 200.0, "kid": "kid-a"},
			{"level": "WARN", "msg": "key fetch failed", "url": srv.URL, "status": 503.0, "cached_kid": "kid-a",
				"error": "e2ee: key endpoint " + srv.URL + " returned 503 Service Unavailable"},
			{"level": "DEBUG", "msg": "key not modified", "url": srv.URL, "status": 304.0, "kid": "kid-a"},
			{"level": "DEBUG", "msg": "key fetched", "url": srv.URL, "status": 200.0, "kid": "kid-b"},
			{"level": "INFO", "msg": "key changed", "url": srv.URL, "old_kid": "kid-a", "new_kid": "kid-b"},
			{"level": "WARN", "msg": "key fetch failed", "url": srv.URL, "status": 200.0, "cached_kid": "kid-b"},
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
			if w["status"] != nil && w["msg"] != "key changed" {
				if _, ok := events[i]["duration"]; !ok {
					t.Errorf("event %d (%s) has no duration", i, w["msg"])
				}
			}
		}
		if msg, _ := events[5]["error"].(string); !strings.Contains(msg, "modulus has 1024 bits") {
			t.Errorf("log of an ineligible key says %q; want why it was refused", msg)
		}
		out := logs.String()
		for _, leak := range []string{canary, fixture.B64(fixture.Public(fixture.RSA2048A).N.Bytes())[:32], `"keys"`, "Authorization", "e2ee: key fetch"} {
			if strings.Contains(out, leak) {
				t.Errorf("logs contain %q; want no body contents, request headers or message prefix:\n%s", leak, out)
			}
		}
	})
}

func TestKeyFetcherStatus(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=600"))
		f := srv.fetcher(t, nil)

		if st := f.Status(); st != (KeyStatus{}) {
			t.Errorf("Status() before any fetch = %+v; want the zero KeyStatus", st)
		}
		wantKey(t, f, "kid-a")
		st := f.Status()
		if st.KeyID != "kid-a" || !st.Fetched.Equal(start) || !st.Expires.Equal(start.Add(10*time.Minute)) || st.Err != nil {
			t.Errorf("Status() after a good fetch = %+v; want kid-a, fetched %v, expiring %v, no error",
				st, start, start.Add(10*time.Minute))
		}

		srv.set(answer(503, ""))
		time.Sleep(time.Minute)
		_, refreshErr := f.Refresh(context.Background())
		st = f.Status()
		if st.KeyID != "kid-a" || !st.Fetched.Equal(start) || st.Err == nil || st.Err != refreshErr {
			t.Errorf("Status() after a failed refresh = %+v; want kid-a, fetched %v, and the refresh's error %v",
				st, start, refreshErr)
		}

		requests := srv.count()
		for range 100 {
			f.Status()
		}
		wantRequests(t, srv, requests)

		srv.set(serveJWK(jwkB))
		time.Sleep(time.Minute)
		wantKey(t, f, "kid-a") // still fresh
		if _, err := f.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := f.Status(); st.KeyID != "kid-b" || st.Err != nil || !st.Fetched.Equal(time.Now()) {
			t.Errorf("Status() after a good refresh = %+v; want kid-b, fetched now, no error", st)
		}
	})
}

// TestKeyFetcherStatusUsable checks Usable and StaleUntil, what a
// readiness check reads: false before a key, true while the key is served
// (past its expiry too, while fetches fail, up to MaxStale), false after, and
// false once the fetcher is closed, whose Err then wraps ErrFetcherClosed.
func TestKeyFetcherStatusUsable(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=600"))
		f := srv.fetcher(t, &FetcherConfig{MaxStale: time.Hour})
		if st := f.Status(); st.Usable {
			t.Errorf("Status() before any fetch = %+v; want not usable", st)
		}
		wantKey(t, f, "kid-a")
		if st := f.Status(); !st.Usable || !st.StaleUntil.Equal(start.Add(70*time.Minute)) {
			t.Errorf("Status() after a good fetch = %+v; want usable until %v", st, start.Add(70*time.Minute))
		}
		srv.set(answer(503, ""))
		time.Sleep(30 * time.Minute) // expired; fetches fail; the key is still served
		if _, err := f.Key(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := f.Status(); !st.Usable || st.Err == nil {
			t.Errorf("Status() within MaxStale = %+v; want usable, with the fetch's error", st)
		}
		time.Sleep(41 * time.Minute) // past MaxStale
		if st := f.Status(); st.Usable {
			t.Errorf("Status() past MaxStale = %+v; want not usable", st)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=600"))
		f := srv.fetcher(t, nil)
		wantKey(t, f, "kid-a")
		f.Close()
		if st := f.Status(); st.Usable || !errors.Is(st.Err, ErrFetcherClosed) || st.KeyID != "kid-a" {
			t.Errorf("Status() after Close = %+v; want not usable, Err wrapping ErrFetcherClosed, kid-a", st)
		}
	})
}

// TestKeyFetcherKeyByID checks what a kid-checking relay asks: the current
// key by its kid; a key served before a rotation, while it may still be in
// use; a kid never seen, which makes the fetcher fetch at once, whatever
// MinRefreshInterval, at most once a second, concurrent callers sharing it;
// and nil for a kid that the endpoint does not serve either.
func TestKeyFetcherKeyByID(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=600"))
		f := srv.fetcher(t, &FetcherConfig{MaxStale: time.Hour, MinRefreshInterval: time.Hour})
		ctx := context.Background()
		byID := func(kid string) *Key {
			t.Helper()
			k, err := f.KeyByID(ctx, kid)
			if err != nil {
				t.Fatalf("KeyByID(%s) = %v", kid, err)
			}
			return k
		}
		if k := byID("kid-a"); k == nil || k.ID != "kid-a" {
			t.Fatalf("KeyByID(kid-a) = %v; want the current key", k)
		}
		wantRequests(t, srv, 1)

		// The endpoint rotates; a page got kid-b from another replica.
		srv.set(serveJWK(jwkB, "Cache-Control", "max-age=600"))
		time.Sleep(time.Second)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if k, err := f.KeyByID(ctx, "kid-b"); err != nil || k == nil || k.ID != "kid-b" {
					t.Errorf("KeyByID(kid-b) = %v, %v; want kid-b, fetched at once", k, err)
				}
			})
		}
		wg.Wait()
		wantRequests(t, srv, 2) // one fetch, shared
		if k := byID("kid-a"); k == nil || k.ID != "kid-a" {
			t.Errorf("KeyByID(kid-a) after the rotation = %v; want the previous key, still taken", k)
		}
		if k := byID("kid-unknown"); k != nil {
			t.Errorf("KeyByID(kid-unknown) = %v; want nil", k)
		}
		wantRequests(t, srv, 2) // within a second of the last such fetch: none
		time.Sleep(time.Second)
		if k := byID("kid-unknown"); k != nil {
			t.Errorf("KeyByID(kid-unknown) = %v; want nil", k)
		}
		wantRequests(t, srv, 3) // a second later: one more
		if k, _ := f.Key(ctx); k.ID != "kid-b" {
			t.Errorf("Key() = %v; want kid-b", k)
		}

		// The previous key is taken until MaxStale past its expiry.
		time.Sleep(69 * time.Minute)
		if k := byID("kid-a"); k == nil {
			t.Errorf("KeyByID(kid-a) 69 min after its fetch = nil; want it within MaxStale past its expiry")
		}
		time.Sleep(2 * time.Minute)
		if k := byID("kid-a"); k != nil {
			t.Errorf("KeyByID(kid-a) 71 min after its fetch = %v; want nil, past MaxStale", k)
		}
	})
}

// TestKeyFetcherKeyByIDBacksOff checks that an unknown kid starts no fetch
// while the fetcher backs off after a failed one.
func TestKeyFetcherKeyByIDBacksOff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=600"))
		f := srv.fetcher(t, &FetcherConfig{MinRefreshInterval: time.Nanosecond})
		wantKey(t, f, "kid-a")
		srv.set(answer(503, ""))
		time.Sleep(time.Second)
		if _, err := f.Refresh(context.Background()); err == nil {
			t.Fatal("Refresh succeeded; want the 503")
		}
		requests := srv.count()
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			if k, err := f.KeyByID(context.Background(), "kid-b"); k != nil || err != nil {
				t.Errorf("KeyByID(kid-b) = %v, %v; want nil, nil", k, err)
			}
		}
		wantRequests(t, srv, requests)
	})
}

func TestKeyFetcherClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var inFlight atomic.Int64
		srv := newKeyServer(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") == "" {
				serveJWK(jwkA, "Cache-Control", "max-age=3600", "ETag", `"v1"`)(w, r)
				return
			}
			inFlight.Add(1)
			defer inFlight.Add(-1)
			hang(w, r) // refreshes hang
		})
		f := srv.fetcher(t, nil)
		a := wantKey(t, f, "kid-a")
		time.Sleep(50 * time.Minute) // into the refresh-ahead window
		if k := mustKey(t, f); k != a {
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
		f := newKeyServer(hang).fetcher(t, nil)
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

// TestKeyFetcherNoGoroutineLeak checks that the fetcher's goroutines end:
// between fetches, and after Close with a fetch in flight, whose handler
// only a cancelled request releases. It uses the fetcher's own client over
// loopback, whose connections must not outlive a fetch either.
//
// It counts the goroutines that carry the test's profiler label, which
// every goroutine started from the test inherits (the server's, started
// before, do not), so that goroutines of other tests, starting or ending,
// neither hide a leak nor fake one.
func TestKeyFetcherNoGoroutineLeak(t *testing.T) {
	srv := newLoopbackKeyServer(t, serveJWK(jwkA))
	label := "leak-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	pprof.Do(context.Background(), pprof.Labels("test", label), func(context.Context) {
		f := newTestFetcher(t, srv.URL, &FetcherConfig{MinRefreshInterval: time.Nanosecond, HedgeDelay: time.Millisecond})
		before := labelledGoroutines(label) // this one
		settled := func(when string) {
			t.Helper()
			waitUntil(t, "the fetcher's goroutines to end "+when, func() bool { return labelledGoroutines(label) == before })
		}

		wantKey(t, f, "kid-a")
		settled("between fetches")

		srv.set(blocking(make(chan struct{}), serveJWK(jwkB))) // never released
		refreshed := make(chan error, 1)
		go func() {
			_, err := f.Refresh(context.Background())
			refreshed <- err
		}()
		waitUntil(t, "the refresh", func() bool { return srv.count() == 2 })
		if n := labelledGoroutines(label); n <= before {
			t.Fatalf("%d goroutines with the label during a refresh; want more than %d: the count sees none", n, before)
		}
		closed := make(chan struct{})
		go func() { f.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("Close() with a fetch in flight has not returned in 10 s; want it to cancel the fetch at once")
		}
		if err := <-refreshed; !errors.Is(err, ErrFetcherClosed) {
			t.Errorf("Refresh() during Close() = %v; want ErrFetcherClosed", err)
		}
		settled("after Close()")
	})
}

// labelledGoroutines returns how many goroutines carry the profiler label
// test=label.
func labelledGoroutines(label string) int {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	n, count := 0, 0
	want := fmt.Sprintf(`"test":%q`, label)
	for line := range strings.Lines(buf.String()) {
		if c, _, ok := strings.Cut(line, " @ "); ok {
			count, _ = strconv.Atoi(c)
		} else if strings.HasPrefix(line, "# labels:") && strings.Contains(line, want) {
			n += count
		}
	}
	return n
}

func BenchmarkKeyFetcherWarm(b *testing.B) {
	f, err := NewKeyFetcher(memKeyURL, &FetcherConfig{
		HTTPClient: newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=86400")).client,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	if _, err := f.Key(ctx); err != nil {
		b.Fatal(err)
	}
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

// slowHandler is a slog.Handler that takes a second to write each record,
// as a handler over a slow writer does, and keeps the messages.
type slowHandler struct {
	mu   *sync.Mutex // guards msgs
	msgs *[]string
}

func (h slowHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h slowHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h slowHandler) WithGroup(string) slog.Handler            { return h }
func (h slowHandler) Handle(_ context.Context, r slog.Record) error {
	time.Sleep(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}

// TestKeyFetcherLogsBeforeReleasing: a caller that waited for a fetch finds
// the fetch in the log when Key returns, however slow the Logger.
func TestKeyFetcherLogsBeforeReleasing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var msgs []string
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, &FetcherConfig{Logger: slog.New(slowHandler{&mu, &msgs})})
		wantKey(t, f, "kid-a")
		mu.Lock()
		got := slices.Clone(msgs)
		mu.Unlock()
		if len(got) != 1 || got[0] != "key fetched" {
			t.Errorf("log when Key returned = %q; want the fetch, \"key fetched\"", got)
		}
		srv.set(answer(503, ""))
		time.Sleep(time.Minute)
		if _, err := f.Refresh(context.Background()); err == nil {
			t.Fatal("Refresh() = nil error; want the 503")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(msgs) != 2 || msgs[1] != "key fetch failed" {
			t.Errorf("log when Refresh returned = %q; want the failure too", msgs)
		}
	})
}
