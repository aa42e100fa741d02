package bench

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/credseal/e2ee"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// keyServer serves a JWK Set on loopback, counts the requests it gets, and
// can rotate its key. It also stands for the API: it accepts the kid of the
// key it serves, and no other.
type keyServer struct {
	*httptest.Server
	current  atomic.Pointer[served]
	requests atomic.Int64
}

// served is what a keyServer serves.
type served struct {
	kid  string
	body []byte
}

func newKeyServer(tb testing.TB, name string) *keyServer {
	tb.Helper()
	s := new(keyServer)
	s.serve(name)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		cur := s.current.Load()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(cur.body)
	}))
	tb.Cleanup(s.Close)
	return s
}

// serve makes s serve, and the API accept, the key pair name.
func (s *keyServer) serve(name string) {
	s.current.Store(&served{kid: sdkKey(name).ID, body: jwkSet(name)})
}

// accepts reports whether the API takes a JWE made with the key kid.
func (s *keyServer) accepts(kid string) bool { return kid == s.current.Load().kid }

// newHTTPClient returns a client with a connection pool of its own, so that
// no scenario reuses another's connections.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// keyClient is one library's client of the key endpoint, reduced to what
// an encrypting client needs: the current key's kid, and a way to get the
// new key once the API rejects the one used.
type keyClient struct {
	kid func(ctx context.Context) (string, error)
	// refresh gets the key anew after the API rejected the one used;
	// wantKid is the kid the API now takes, for the libraries that can
	// only look a new key up by its kid.
	refresh func(ctx context.Context, wantKid string) (string, error)
	close   func()
}

// library opens a keyClient for the key endpoint at url. A peer whose
// constructor fetches is constructed on first use, once, as an
// application would with sync.OnceValues; the SDK's constructor does no
// I/O. minRefresh is the SDK's FetcherConfig.MinRefreshInterval.
type library struct {
	name string
	open func(url string, hc *http.Client, minRefresh time.Duration) (*keyClient, error)
}

// libraries are the key-fetching libraries compared.
var libraries = []library{
	{"SDK", openSDK},
	{"Keyfunc", openKeyfunc},
	{"JWX", openJWX},
}

func openSDK(url string, hc *http.Client, minRefresh time.Duration) (*keyClient, error) {
	f, err := e2ee.NewKeyFetcher(url, &e2ee.FetcherConfig{HTTPClient: hc, MinRefreshInterval: minRefresh})
	if err != nil {
		return nil, err
	}
	return &keyClient{
		kid: func(ctx context.Context) (string, error) {
			k, err := f.Key(ctx)
			if err != nil {
				return "", err
			}
			return k.ID, nil
		},
		refresh: func(ctx context.Context, _ string) (string, error) {
			k, err := f.Refresh(ctx)
			if err != nil {
				return "", err
			}
			return k.ID, nil
		},
		close: f.Close,
	}, nil
}

// newKeyfunc returns a keyfunc.Keyfunc of the JWK Set at url, with
// keyfunc's defaults; cancel stops its refresh goroutine.
func newKeyfunc(url string, hc *http.Client) (kf keyfunc.Keyfunc, cancel func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	kf, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{Client: hc})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return kf, cancel, nil
}

func openKeyfunc(url string, hc *http.Client, _ time.Duration) (*keyClient, error) {
	var cancel atomic.Pointer[func()]
	get := sync.OnceValues(func() (keyfunc.Keyfunc, error) {
		kf, stop, err := newKeyfunc(url, hc)
		if err == nil {
			cancel.Store(&stop)
		}
		return kf, err
	})
	return &keyClient{
		kid: func(ctx context.Context) (string, error) {
			kf, err := get()
			if err != nil {
				return "", err
			}
			keys, err := kf.Storage().KeyReadAll(ctx)
			if err != nil {
				return "", err
			}
			if len(keys) == 0 {
				return "", errors.New("keyfunc: no key")
			}
			return keys[0].Marshal().KID, nil
		},
		// keyfunc looks keys up by kid, refreshing (rate-limited) on an
		// unknown one: it is given the kid the API now takes.
		refresh: func(ctx context.Context, wantKid string) (string, error) {
			kf, err := get()
			if err != nil {
				return "", err
			}
			k, err := kf.Storage().KeyRead(ctx, wantKid)
			if err != nil {
				return "", err
			}
			return k.Marshal().KID, nil
		},
		close: func() {
			if c := cancel.Load(); c != nil {
				(*c)()
			}
		},
	}, nil
}

// newJWXCache returns a jwk.Cache with url registered and fetched, with
// jwx's defaults.
func newJWXCache(url string, hc *http.Client) (*jwk.Cache, error) {
	ctx := context.Background()
	c, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		return nil, err
	}
	if err := c.Register(ctx, url, jwk.WithHTTPClient(hc)); err != nil {
		c.Shutdown(ctx)
		return nil, err
	}
	return c, nil
}

func openJWX(url string, hc *http.Client, _ time.Duration) (*keyClient, error) {
	get := sync.OnceValues(func() (*jwk.Cache, error) { return newJWXCache(url, hc) })
	first := func(set jwk.Set) (string, error) {
		k, ok := set.Key(0)
		if !ok {
			return "", errors.New("jwx: no key")
		}
		kid, _ := k.KeyID()
		return kid, nil
	}
	return &keyClient{
		kid: func(ctx context.Context) (string, error) {
			c, err := get()
			if err != nil {
				return "", err
			}
			set, err := c.Lookup(ctx, url)
			if err != nil {
				return "", err
			}
			return first(set)
		},
		refresh: func(ctx context.Context, _ string) (string, error) {
			c, err := get()
			if err != nil {
				return "", err
			}
			set, err := c.Refresh(ctx, url)
			if err != nil {
				return "", err
			}
			return first(set)
		},
		close: func() {
			if c, err := get(); err == nil {
				c.Shutdown(context.Background())
			}
		},
	}, nil
}

// TestLibrariesServeTheKey checks that every library gets the served key,
// and the new one after a rotation.
func TestLibrariesServeTheKey(t *testing.T) {
	for _, lib := range libraries {
		t.Run(lib.name, func(t *testing.T) {
			srv := newKeyServer(t, rsa2048a)
			c, err := lib.open(srv.URL, newHTTPClient(), time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			ctx := context.Background()
			if kid, err := c.kid(ctx); err != nil || !srv.accepts(kid) {
				t.Fatalf("kid() = %q, %v; want %q", kid, err, sdkKey(rsa2048a).ID)
			}
			time.Sleep(2 * time.Millisecond) // past the SDK's MinRefreshInterval
			srv.serve(rsa2048b)
			if kid, err := c.refresh(ctx, sdkKey(rsa2048b).ID); err != nil || !srv.accepts(kid) {
				t.Fatalf("refresh() = %q, %v; want %q", kid, err, sdkKey(rsa2048b).ID)
			}
		})
	}
}

// sink keeps benchmark results alive.
var sink any

// BenchmarkKeyWarm measures getting the cached key, warm, in the form each
// library gives it: the SDK's KeyFetcher.Key; keyfunc's storage read of
// every key (an encrypting client knows no kid to ask for) and of the key
// by kid (the read a JWT verifier makes); jwk.Cache's Lookup of the set and
// a CachedSet's, each then taking the set's first key.
func BenchmarkKeyWarm(b *testing.B) {
	srv := newKeyServer(b, rsa2048a)
	reads := slices.Concat(sdkWarmReads(b, srv.URL), keyfuncWarmReads(b, srv.URL), jwxWarmReads(b, srv.URL))
	for _, v := range ordered(reads) {
		b.Run(v.name, func(b *testing.B) {
			if _, err := v.get(); err != nil { // warm
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				k, err := v.get()
				if err != nil {
					b.Fatal(err)
				}
				sink = k
			}
		})
	}
	if n := srv.requests.Load(); n != 3 {
		b.Errorf("the key server got %d requests; want 3, one per library", n)
	}
}

// warmRead is one way a library reads the key it has cached.
type warmRead struct {
	name string
	get  func() (any, error)
}

// sdkWarmReads returns the SDK's read of the key at url: KeyFetcher.Key.
// The fetcher is closed when b ends.
func sdkWarmReads(b *testing.B, url string) []warmRead {
	ctx := context.Background()
	f, err := e2ee.NewKeyFetcher(url, &e2ee.FetcherConfig{HTTPClient: newHTTPClient()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.Close)
	return []warmRead{
		{"SDK", func() (any, error) { return f.Key(ctx) }},
	}
}

// keyfuncWarmReads returns keyfunc's reads of the key at url, whose kid is
// that of the key pair rsa2048a: every key of its storage, and the key by
// kid. Its refresh goroutine stops when b ends.
func keyfuncWarmReads(b *testing.B, url string) []warmRead {
	ctx := context.Background()
	kid := sdkKey(rsa2048a).ID
	kf, stop, err := newKeyfunc(url, newHTTPClient())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	return []warmRead{
		{"KeyfuncReadAll", func() (any, error) {
			keys, err := kf.Storage().KeyReadAll(ctx)
			if err != nil || len(keys) == 0 {
				return nil, fmt.Errorf("keyfunc: no key (%v)", err)
			}
			return keys[0].Key().(*rsa.PublicKey), nil
		}},
		{"KeyfuncRead", func() (any, error) {
			k, err := kf.Storage().KeyRead(ctx, kid)
			if err != nil {
				return nil, err
			}
			return k.Key().(*rsa.PublicKey), nil
		}},
	}
}

// jwxWarmReads returns jwk.Cache's reads of the key at url: the first key
// of the set that Lookup returns, and of a CachedSet. The cache shuts down
// when b ends.
func jwxWarmReads(b *testing.B, url string) []warmRead {
	ctx := context.Background()
	jc, err := newJWXCache(url, newHTTPClient())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { jc.Shutdown(ctx) })
	cs, err := jc.CachedSet(url)
	if err != nil {
		b.Fatal(err)
	}
	return []warmRead{
		{"JWXLookup", func() (any, error) {
			set, err := jc.Lookup(ctx, url)
			if err != nil {
				return nil, err
			}
			k, _ := set.Key(0)
			return k, nil
		}},
		{"JWXCachedSet", func() (any, error) {
			k, _ := cs.Key(0)
			return k, nil
		}},
	}
}

// burstSize is how many goroutines a burst starts at once.
const burstSize = 1000

// burstTimeout bounds a burst: every call of the burst shares one context
// that ends then, so that a burst ends by itself even when a library hangs
// (jwx's jwk.Cache does after a few concurrent Refresh calls: every later
// call waits until its context is done). A call cut short is an error.
const burstTimeout = 2 * time.Second

// BenchmarkKeyColdBurst measures burstSize goroutines asking a new client
// for the key at once, before any fetch: the key server's requests per
// burst, the 99th percentile of the goroutines' waits, and errors. One
// burst, not measured, runs first, so that the first library to run pays
// no more than the others for the process's first connections and
// goroutines.
func BenchmarkKeyColdBurst(b *testing.B) {
	for _, lib := range ordered(libraries) {
		b.Run(lib.name, func(b *testing.B) {
			srv := newKeyServer(b, rsa2048a)
			if _, _, err := coldBurst(b, lib, srv); err != nil {
				b.Fatal(err)
			}
			srv.requests.Store(0)
			var waits []time.Duration
			var failed int64
			b.ResetTimer()
			for range b.N {
				w, errs, err := coldBurst(b, lib, srv)
				if err != nil {
					b.Fatal(err)
				}
				waits = append(waits, w...)
				failed += errs
			}
			b.ReportMetric(float64(srv.requests.Load())/float64(b.N), "requests/op")
			b.ReportMetric(float64(percentile(waits, 0.99).Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(failed)/float64(b.N), "errors/op")
		})
	}
}

// coldBurst opens a client of lib and starts burstSize goroutines that ask
// it for the key at once, timing only the burst. It returns each
// goroutine's wait and the calls that failed.
func coldBurst(b *testing.B, lib library, srv *keyServer) ([]time.Duration, int64, error) {
	b.StopTimer()
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	c, err := lib.open(srv.URL, hc, 0)
	if err != nil {
		return nil, 0, err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), burstTimeout)
	defer cancel()
	start := make(chan struct{})
	waits := make([]time.Duration, burstSize)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for i := range burstSize {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			kid, err := c.kid(ctx)
			waits[i] = time.Since(t0)
			if err != nil || !srv.accepts(kid) {
				errs.Add(1)
			}
		})
	}
	b.StartTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	return waits, errs.Load(), nil
}

// Calls in a rotation burst.
const (
	callsPerGoroutine = 4
	rotateAtCall      = burstSize // the call before which the key rotates, of burstSize*callsPerGoroutine
)

// rotationMinRefresh is the SDK's MinRefreshInterval in the rotation
// burst, and how long after its first fetch the rotation starts: the
// default (30 s) would make every round wait that long.
const rotationMinRefresh = 20 * time.Millisecond

// BenchmarkKeyRotation measures a burst of burstSize goroutines, each
// encrypting callsPerGoroutine times with the client's current key, during
// which the key server rotates its key and the API starts refusing the
// old one. A call refused gets the key anew, as the SDK's Transport does
// with KeyRejected, and is tried once more; it is an error when that key
// is refused too or getting a key fails. Reported: the key server's
// requests per burst, and errors per burst.
func BenchmarkKeyRotation(b *testing.B) {
	for _, lib := range ordered(libraries) {
		b.Run(lib.name, func(b *testing.B) {
			srv := newKeyServer(b, rsa2048a)
			newKid := sdkKey(rsa2048b).ID
			var requests, failed, rejected int64
			for range b.N {
				b.StopTimer()
				srv.serve(rsa2048a)
				hc := newHTTPClient()
				c, err := lib.open(srv.URL, hc, rotationMinRefresh)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.kid(context.Background()); err != nil { // warm
					b.Fatal(err)
				}
				time.Sleep(rotationMinRefresh + 5*time.Millisecond)
				before := srv.requests.Load()

				ctx, cancel := context.WithTimeout(context.Background(), burstTimeout)
				start := make(chan struct{})
				var calls, errs, rejects atomic.Int64
				var wg sync.WaitGroup
				for range burstSize {
					wg.Go(func() {
						<-start
						for range callsPerGoroutine {
							if calls.Add(1) == rotateAtCall {
								srv.serve(rsa2048b)
							}
							kid, err := c.kid(ctx)
							if err == nil && !srv.accepts(kid) {
								rejects.Add(1)
								kid, err = c.refresh(ctx, newKid)
							}
							if err != nil || !srv.accepts(kid) {
								errs.Add(1)
							}
						}
					})
				}
				b.StartTimer()
				close(start)
				wg.Wait()
				b.StopTimer()
				cancel()
				requests += srv.requests.Load() - before
				failed += errs.Load()
				rejected += rejects.Load()
				c.close()
				hc.CloseIdleConnections()
				b.StartTimer()
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
			b.ReportMetric(float64(rejected)/float64(b.N), "rejected/op")
			b.ReportMetric(float64(failed)/float64(b.N), "errors/op")
		})
	}
}

// percentile returns the p-quantile of ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
