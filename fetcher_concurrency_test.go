package e2ee

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

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
			synctest.Test(t, func(t *testing.T) {
				release, unblock := releaser(t)
				srv := newKeyServer(blocking(release, tt.handler))
				f := srv.fetcher(t, nil)

				const n = 100
				keys := make([]*Key, n)
				errs := make([]error, n)
				wait := startConcurrently(n, func(i int) { keys[i], errs[i] = f.Key(context.Background()) })
				synctest.Wait() // every caller waits for the fetch in flight
				unblock()
				wait()

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
		})
	}
}

// TestKeyFetcherColdBurst sends 1000 concurrent cold callers to a prompt
// endpoint over loopback: they share one request, and no hedge starts.
func TestKeyFetcherColdBurst(t *testing.T) {
	t.Parallel()
	srv := newLoopbackKeyServer(t, serveJWK(jwkA))
	f := newTestFetcher(t, srv.URL, nil)
	const n = 1000
	errs := make([]error, n)
	startConcurrently(n, func(i int) { _, errs[i] = f.Key(context.Background()) })()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Key() #%d = %v", i, err)
		}
	}
	t.Logf("%d concurrent cold Key calls made %d request(s)", n, srv.count())
	wantRequests(t, srv, 1)
}

// A caller that decided to fetch on a state that has since been replaced
// shares the newer outcome instead of sending a request of its own: this is
// what keeps the count at 1 when a caller arrives just as a fetch ends.
func TestKeyFetcherSharesNewerOutcome(t *testing.T) {
	t.Parallel()
	t.Run("key", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, nil)
		cold := f.state.Load()
		a := wantKey(t, f, "kid-a")
		if k, err := f.fetchKey(context.Background(), cold); err != nil || k != a {
			t.Errorf("Key() on a replaced cold state = %v, %v; want %v", k, err, a)
		}
		if s, err := f.wait(context.Background(), cold.version, true); err != nil || s.key != a {
			t.Errorf("wait(replaced state) = %v; want %v", err, a)
		}
		wantRequests(t, srv, 1)
	})
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(answer(503, ""))
		f := srv.fetcher(t, nil)
		cold := f.state.Load()
		_, want := f.Key(context.Background())
		if _, err := f.fetchKey(context.Background(), cold); err == nil || err != want {
			t.Errorf("Key() on a replaced cold state = %v; want the same error, %v", err, want)
		}
		wantRequests(t, srv, 1)
	})
}

// TestKeyFetcherCallerContext: a caller whose ctx ends leaves at once; the
// fetch goes on for the others.
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
			synctest.Test(t, func(t *testing.T) {
				release, unblock := releaser(t)
				srv := newKeyServer(blocking(release, serveJWK(jwkA)))
				f := srv.fetcher(t, nil)

				ctx, cancel := tt.ctx()
				defer cancel()
				first := make(chan error, 1)
				go func() {
					_, err := f.Key(ctx) // this caller starts the fetch
					first <- err
				}()
				synctest.Wait()
				wantRequests(t, srv, 1)
				type result struct {
					k   *Key
					err error
				}
				second := make(chan result, 1)
				go func() {
					k, err := f.Key(context.Background())
					second <- result{k, err}
				}()

				start := time.Now()
				if tt.want == context.Canceled {
					cancel()
				}
				err := <-first
				if !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), "e2ee: ") {
					t.Errorf("Key(done ctx) = %v; want an e2ee error wrapping %v", err, tt.want)
				}
				if got := time.Since(start); got > 300*time.Millisecond {
					t.Errorf("Key(done ctx) returned %v after its ctx was done; want at once", got)
				}

				unblock()
				if r := <-second; r.err != nil || r.k.ID != "kid-a" {
					t.Errorf("Key() of the other caller = %v, %v; want kid-a", r.k, r.err)
				}
				wantRequests(t, srv, 1)
				wantKey(t, f, "kid-a")
				wantRequests(t, srv, 1)
			})
		})
	}
}

// hungUntil returns a handler that hangs every request that arrives before
// at, as a wedged endpoint does, and answers the later ones with h. It
// counts the requests in flight and the most there ever were at once.
func hungUntil(at time.Time, h http.HandlerFunc, inFlight, most *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if time.Now().Before(at) {
			<-r.Context().Done()
			return
		}
		h(w, r)
	}
}

// callEvery calls Key every 100 ms for d, each call with a 1 s deadline, as
// request handlers of a service do, and returns when the first call got the
// key (the zero time if none did).
func callEvery(f *KeyFetcher, d time.Duration) time.Time {
	var (
		mu    sync.Mutex // guards first
		first time.Time
		wg    sync.WaitGroup
	)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := f.Key(ctx); err == nil {
				mu.Lock()
				if first.IsZero() {
					first = time.Now()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// TestKeyFetcherRecoversFromHungEndpoint is the scenario of a key endpoint
// that hangs, then recovers 1.5 s later: a hedged fetch gets the key soon
// after, where callers would otherwise wait for the hung fetch's 10 s
// Timeout.
func TestKeyFetcherRecoversFromHungEndpoint(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		warm bool // a key was fetched, and has expired
	}{{"cold", false}, {"expired key", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var inFlight, most atomic.Int64
				srv := newKeyServer(serveJWK(jwkA, "Cache-Control", "max-age=60"))
				f := srv.fetcher(t, &FetcherConfig{MaxStale: time.Nanosecond})
				if tt.warm {
					wantKey(t, f, "kid-a")
					time.Sleep(time.Minute + time.Nanosecond)
				}
				before := srv.count()
				start := time.Now()
				recovery := start.Add(1500 * time.Millisecond)
				srv.set(hungUntil(recovery, serveJWK(jwkB), &inFlight, &most))

				first := callEvery(f, 6*time.Second)
				requests := srv.count() - before
				if first.IsZero() {
					t.Fatalf("no caller got the key in 6 s (%d requests)", requests)
				}
				t.Logf("key %v after the recovery; %d requests in 6 s, at most %d in flight",
					first.Sub(recovery), requests, most.Load())
				if got := first.Sub(recovery); got > 3*time.Second {
					t.Errorf("a caller had the key %v after the endpoint recovered; want within 3s", got)
				}
				if requests > 6 {
					t.Errorf("requests in the first 6 s = %d; want at most 6", requests)
				}
				wantKey(t, f, "kid-b")
			})
		})
	}
}

// TestKeyFetcherHedgesAtMostThree hangs the endpoint for good: callers start
// a hedge every HedgeDelay, never more than 3 fetches in flight at once.
func TestKeyFetcherHedgesAtMostThree(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var inFlight, most atomic.Int64
		never := time.Now().Add(time.Hour)
		srv := newKeyServer(hungUntil(never, nil, &inFlight, &most))
		f := srv.fetcher(t, &FetcherConfig{HedgeDelay: time.Second, Timeout: 20 * time.Second})

		if first := callEvery(f, 9*time.Second); !first.IsZero() {
			t.Fatalf("a caller got a key at %v from an endpoint that never answers", first)
		}
		if got := most.Load(); got != maxFlights {
			t.Errorf("fetches in flight at once, at most = %d; want %d", got, maxFlights)
		}
		// At 0, 1 s and 2 s; then none until one of them times out.
		wantRequests(t, srv, 3)

		// Close cancels every fetch in flight and waits for it: the bubble
		// would report any goroutine left blocked.
		f.Close()
		if got := inFlight.Load(); got != 0 {
			t.Errorf("requests in flight after Close() = %d; want 0", got)
		}
	})
}

// TestKeyFetcherHedgeWinnerCancelsOthers: the first good outcome answers
// every caller and cancels the other fetches of its round; an outcome that
// lands later, even a good one, changes nothing.
func TestKeyFetcherHedgeWinnerCancelsOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release, unblock := releaser(t)
		var (
			calls    atomic.Int64
			canceled atomic.Int64
		)
		// The first request ignores cancellation (its answer, kid-c, comes
		// late whatever happens); the hedge answers kid-b at once.
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			if calls.Add(1) == 1 {
				<-release
				if r.Context().Err() != nil {
					canceled.Add(1)
				}
				serveJWK(jwkC)(rec, r)
			} else {
				serveJWK(jwkB)(rec, r)
			}
			return rec.Result(), nil
		})}
		f := newTestFetcher(t, "https://keys.test/key", &FetcherConfig{HTTPClient: client})

		first := make(chan *Key, 1)
		go func() {
			k, _ := f.Key(context.Background())
			first <- k
		}()
		time.Sleep(defaultHedgeDelay)
		if k := mustKey(t, f); k.ID != "kid-b" { // this caller starts the hedge
			t.Fatalf("Key() after HedgeDelay = %s; want kid-b, from the hedge", k.ID)
		}
		if k := <-first; k == nil || k.ID != "kid-b" {
			t.Fatalf("Key() of the caller waiting for the hung fetch = %v; want the hedge's kid-b", k)
		}
		// The round's cancellation reaches the hung fetch through
		// context.AfterFunc, in a goroutine of its own: let it run before
		// the fetch looks at its context.
		synctest.Wait()
		unblock()
		settleFetcher(f)
		if canceled.Load() != 1 {
			t.Errorf("the hung fetch was not canceled when the hedge won")
		}
		if s := f.state.Load(); s.key.ID != "kid-b" || s.err != nil || !s.retryAt.IsZero() {
			t.Errorf("state after the late answer = kid %s, err %v, retryAt %v; want kid-b, no error, no backoff",
				s.key.ID, s.err, s.retryAt)
		}
		if got := calls.Load(); got != 2 {
			t.Errorf("requests = %d; want 2", got)
		}
	})
}

// TestKeyFetcherNoHedgeForWarmCallers: callers that have a usable key never
// start a fetch, however long the refresh in flight takes; nor does Refresh.
func TestKeyFetcherNoHedgeForWarmCallers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, &FetcherConfig{Timeout: time.Minute})
		wantKey(t, f, "kid-a")
		srv.set(hang)
		sleepUntil(start, 50*time.Minute) // refresh-ahead window: a background refresh hangs
		for range 50 {
			wantKey(t, f, "kid-a")
			time.Sleep(100 * time.Millisecond)
		}
		refreshed := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := f.Refresh(context.Background())
				refreshed <- err
			}()
			time.Sleep(defaultHedgeDelay)
		}
		wantRequests(t, srv, 2)
		for range 3 {
			if err := <-refreshed; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Refresh() = %v; want the shared fetch's timeout", err)
			}
		}
	})
}
