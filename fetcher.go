package e2ee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrResponseTooLarge indicates that a [KeyFetcher] refused the key
// endpoint's response for its size. It occurs when the response body exceeds
// [FetcherConfig.MaxBodyBytes]; the fetcher reads at most one byte more than
// that limit before giving up.
var ErrResponseTooLarge = errors.New("e2ee: key endpoint response too large")

// ErrKeyStale indicates that a [KeyFetcher] has no key it may still use. It
// occurs when fetches fail and the last good key expired more than
// [FetcherConfig.MaxStale] ago; the error also wraps the last fetch's error.
var ErrKeyStale = errors.New("e2ee: key is stale")

// ErrFetcherClosed indicates that a [KeyFetcher] was closed. It occurs when
// [KeyFetcher.Key] or [KeyFetcher.Refresh] is called after, or while,
// [KeyFetcher.Close] runs.
var ErrFetcherClosed = errors.New("e2ee: KeyFetcher is closed")

// Defaults of [FetcherConfig], and the fetcher's fixed limits.
const (
	defaultFetchTimeout       = 10 * time.Second
	defaultMaxBodyBytes       = 256 << 10
	defaultTTL                = time.Hour
	defaultMinTTL             = time.Minute
	defaultMaxTTL             = 24 * time.Hour
	defaultMaxStale           = 24 * time.Hour
	defaultMinRefreshInterval = 30 * time.Second

	maxRedirects   = 3           // redirects followed, all to the key URL's own host
	errorBodyBytes = 512         // body excerpt kept in a FetchError
	drainBytes     = 4 << 10     // read from a body before closing it, to reuse the connection
	initialBackoff = time.Second // wait after the first failed fetch; doubles with each failure
	maxBackoff     = time.Minute // longest wait between failed fetches
	maxDelta       = 1 << 31     // seconds; RFC 9111 section 1.2.2 caps delta-seconds here
)

// FetcherConfig tunes a [KeyFetcher]. A zero field means its default; a
// negative duration or size is refused by [NewKeyFetcher].
type FetcherConfig struct {
	// HTTPClient sends the requests. Its Transport (proxy, mTLS), Jar and
	// Timeout are used; the fetcher works on a copy with its own redirect
	// rules (see [NewKeyFetcher]) and never modifies it. If nil, the fetcher
	// uses a client of its own, with the settings of [http.DefaultTransport]
	// (such as the proxy from the environment) but no keep-alive, so that no
	// connection outlives a fetch.
	HTTPClient *http.Client

	// Header holds extra request headers, such as Authorization. They are
	// sent with every request and never logged.
	Header http.Header

	// KeyID, when set, pins the key: only a key with this kid is accepted,
	// whether the endpoint serves a JWK or a JWK Set.
	KeyID string

	// Timeout bounds one fetch, from sending the request to reading the body,
	// whatever the client's own Timeout. The default is 10 seconds.
	Timeout time.Duration

	// MaxBodyBytes is the largest response body accepted; a larger one fails
	// with [ErrResponseTooLarge]. The default is 256 KiB.
	MaxBodyBytes int64

	// DefaultTTL is how long a key is used when the response has neither a
	// Cache-Control max-age nor an Expires header. The default is 1 hour.
	DefaultTTL time.Duration

	// MinTTL is the shortest lifetime given to a key whose response has
	// caching headers; Cache-Control no-store and no-cache give exactly
	// MinTTL. The default is 1 minute.
	MinTTL time.Duration

	// MaxTTL is the longest lifetime given to a key whose response has
	// caching headers. The default is 24 hours.
	MaxTTL time.Duration

	// MaxStale is how long past its expiry the last good key is still served
	// while fetches fail; after that, Key fails with [ErrKeyStale]. The
	// default is 24 hours.
	MaxStale time.Duration

	// MinRefreshInterval rate-limits [KeyFetcher.Refresh]: when the last good
	// fetch is younger than this, Refresh returns the cached key without a
	// request. The default is 30 seconds.
	MinRefreshInterval time.Duration

	// Logger receives fetch events: URL, status, duration, kid changes and
	// errors, never response bodies or request headers. If nil, nothing is
	// logged.
	Logger *slog.Logger
}

// FetchError is the error a [KeyFetcher] reports when the key endpoint
// answers with a status other than 2xx (or 304 to a conditional request).
// Callers can branch on it with [errors.As].
type FetchError struct {
	URL        string // the key URL, its password redacted
	StatusCode int    // the response's status code, such as 503
	Body       []byte // the first bytes of the response body, at most 512
}

// Error returns the status and the quoted body excerpt.
func (e *FetchError) Error() string {
	if len(e.Body) == 0 {
		return e.summary()
	}
	return fmt.Sprintf("%s: %q", e.summary(), e.Body)
}

// summary is Error without the body, for logs.
func (e *FetchError) summary() string {
	return fmt.Sprintf("e2ee: key endpoint %s returned %d %s",
		e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// KeyFetcher fetches, caches and refreshes the key that an HTTP endpoint
// serves as a JWK or a JWK Set. It is a [KeySource].
//
// The first Key call fetches; concurrent callers share that one request and
// its outcome. The key is then served from memory, without I/O or locks,
// until it expires: its lifetime comes from the response's Cache-Control
// max-age (less its Age) or Expires header, clamped to
// [FetcherConfig.MinTTL] and [FetcherConfig.MaxTTL], or is
// [FetcherConfig.DefaultTTL]. In the last quarter of that lifetime one
// background request refreshes the key while callers go on getting the cached
// one. Later requests are conditional (If-None-Match, If-Modified-Since), and
// a 304 extends the key's lifetime.
//
// A fetch fails on a transport error or timeout, a status other than 2xx, a
// body larger than [FetcherConfig.MaxBodyBytes], or a key that
// [ParseKey]'s eligibility rules (and [FetcherConfig.KeyID]) refuse. After a
// failure no request is made for a while (1 s, doubling with each further
// failure up to 1 min, with jitter, or longer when the endpoint says
// Retry-After); until then, calls return the last error. While fetches fail,
// the last good key is served until [FetcherConfig.MaxStale] past its expiry,
// then Key fails with [ErrKeyStale].
//
// A KeyFetcher is safe for concurrent use by multiple goroutines. It starts a
// goroutine only while a fetch is in flight; [KeyFetcher.Close] cancels it and
// waits for it.
type KeyFetcher struct {
	url        string        // as given, for requests
	logURL     string        // url with any password redacted, for errors and logs
	client     *http.Client  // a copy of the user's, with the fetcher's redirect rules
	header     http.Header   // extra request headers; never logged
	keyID      string        // the pinned kid, or ""
	timeout    time.Duration // bound on one fetch
	maxBody    int64         // largest accepted body
	defaultTTL time.Duration
	minTTL     time.Duration
	maxTTL     time.Duration
	maxStale   time.Duration
	minRefresh time.Duration
	logger     *slog.Logger // nil: no logging

	now    func() time.Time                  // the clock for tests; nil: the real one (see clock, before)
	jitter func(time.Duration) time.Duration // spreads a backoff delay: random outside tests

	state      atomic.Pointer[fetchState] // what Key serves; replaced whole, never modified
	seq        atomic.Uint64              // numbers fetches in the order they start
	group      singleflight.Group         // shares one fetch among concurrent callers
	refreshing atomic.Bool                // a background refresh goroutine is running
	closed     atomic.Bool                // Close was called; set with mu held

	wmu sync.Mutex // serializes writers of state; readers take no lock

	life   context.Context    // the fetcher's lifetime, not a request's: Close cancels it and every fetch with it
	cancel context.CancelFunc // cancels life
	mu     sync.Mutex         // guards closed and wg.Add, so that nothing starts once Close waits
	wg     sync.WaitGroup     // counts fetches and background refresh goroutines
}

var _ KeySource = (*KeyFetcher)(nil)

// fetchState is what a KeyFetcher knows at one moment. It is never modified
// once stored: a change stores a new one.
type fetchState struct {
	key          *Key          // the last good key; nil before the first good fetch
	fetched      time.Time     // when the last good fetch (200 or 304) ended
	ttl          time.Duration // the key's lifetime; kept when a 304 says nothing of it
	refreshAt    time.Time     // from then on, Key refreshes in the background
	expires      time.Time     // from then on, Key fetches before answering
	staleUntil   time.Time     // until then, the key is served while fetches fail
	etag         string        // validators of the last good response
	lastModified string

	seq      uint64    // the fetch whose outcome this is; 0 before any
	err      error     // that fetch's error; nil when it succeeded
	failures int       // consecutive failed fetches
	retryAt  time.Time // after a failure, no fetch starts before then
}

// NewKeyFetcher returns a KeyFetcher for the key served at rawURL. It does no
// I/O: the first [KeyFetcher.Key] call fetches. A nil cfg means the defaults
// of every [FetcherConfig] field.
//
// rawURL must be https, except that http is accepted on a loopback host
// (localhost, 127.0.0.0/8, ::1) for tests and development. The fetcher
// follows at most 3 redirects, each to the same host and port as rawURL and
// over https (or http, when rawURL is http): a redirect elsewhere fails the
// fetch. After those checks, the client's own CheckRedirect, if any, is
// consulted.
func NewKeyFetcher(rawURL string, cfg *FetcherConfig) (*KeyFetcher, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("e2ee: key URL: %w", err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("e2ee: key URL %s has no host", quote(u.Redacted()))
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("e2ee: key URL %s is not https (http is accepted on a loopback host only)",
			quote(u.Redacted()))
	}
	if cfg == nil {
		cfg = &FetcherConfig{}
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"Timeout", cfg.Timeout}, {"DefaultTTL", cfg.DefaultTTL}, {"MinTTL", cfg.MinTTL},
		{"MaxTTL", cfg.MaxTTL}, {"MaxStale", cfg.MaxStale}, {"MinRefreshInterval", cfg.MinRefreshInterval},
	} {
		if d.value < 0 {
			return nil, fmt.Errorf("e2ee: FetcherConfig.%s is negative (%v)", d.name, d.value)
		}
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("e2ee: FetcherConfig.MaxBodyBytes is negative (%d)", cfg.MaxBodyBytes)
	}
	f := &KeyFetcher{
		url:        rawURL,
		logURL:     u.Redacted(),
		header:     cfg.Header.Clone(),
		keyID:      cfg.KeyID,
		timeout:    or(cfg.Timeout, defaultFetchTimeout),
		maxBody:    or(cfg.MaxBodyBytes, defaultMaxBodyBytes),
		defaultTTL: or(cfg.DefaultTTL, defaultTTL),
		minTTL:     or(cfg.MinTTL, defaultMinTTL),
		maxTTL:     or(cfg.MaxTTL, defaultMaxTTL),
		maxStale:   or(cfg.MaxStale, defaultMaxStale),
		minRefresh: or(cfg.MinRefreshInterval, defaultMinRefreshInterval),
		logger:     cfg.Logger,
		jitter:     equalJitter,
	}
	if f.minTTL > f.maxTTL {
		return nil, fmt.Errorf("e2ee: FetcherConfig.MinTTL (%v) exceeds MaxTTL (%v)", f.minTTL, f.maxTTL)
	}

	client := &http.Client{Transport: ownTransport()}
	if cfg.HTTPClient != nil {
		*client = *cfg.HTTPClient // a shallow copy: the user's Transport, Jar and Timeout
	}
	userCheck := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil {
			return err
		}
		if userCheck != nil {
			return userCheck(req, via)
		}
		return nil
	}
	f.client = client
	f.life, f.cancel = context.WithCancel(context.Background())
	f.state.Store(&fetchState{})
	return f, nil
}

// ownTransport returns the transport of a fetcher's own client:
// [http.DefaultTransport]'s settings without keep-alive, so that no
// connection, and no goroutine, outlives a fetch. Fetches are rare: an idle
// connection would mostly wait to be closed.
func ownTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.DisableKeepAlives = true
	return t
}

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// checkRedirect refuses a redirect off the key URL's host and port, a
// redirect to http unless the key URL itself is http (which NewKeyFetcher
// allows on loopback only), and more than maxRedirects redirects.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("e2ee: key endpoint redirected more than %d times", maxRedirects)
	}
	orig := via[0].URL
	if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || orig.Scheme != "http") {
		return fmt.Errorf("e2ee: key endpoint redirect to %s refused: not https", quote(req.URL.Redacted()))
	}
	if !strings.EqualFold(req.URL.Hostname(), orig.Hostname()) || port(req.URL) != port(orig) {
		return fmt.Errorf("e2ee: key endpoint redirect to another host (%s) refused", quote(req.URL.Host))
	}
	return nil
}

// port returns u's port, or its scheme's default one.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// equalJitter returns a random duration in [d/2, d], so that clients which
// failed together do not retry together, yet each waits at least d/2.
func equalJitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Key returns the current key, fetching it when there is none yet or it has
// expired. It implements [KeySource].
//
// While the cached key is fresh, Key is a lock-free memory read that never
// waits for a fetch in flight; in the last quarter of the key's lifetime it
// also starts one background refresh. When Key must wait for a fetch, it
// shares the fetch with concurrent callers and returns ctx's error, wrapped,
// as soon as ctx is done, while the fetch goes on for the others. When the
// fetch fails, Key returns the last good key until [FetcherConfig.MaxStale]
// past its expiry (refreshing it in the background), then an error wrapping
// [ErrKeyStale] and the fetch's error. Before any good fetch, Key returns the
// fetch's error. While the fetcher backs off after a failed fetch, Key sends
// no request and answers as it did after that fetch.
//
// After [KeyFetcher.Close], Key returns [ErrFetcherClosed].
func (f *KeyFetcher) Key(ctx context.Context) (*Key, error) {
	s := f.state.Load()
	if s.key != nil && !f.closed.Load() {
		if f.before(s.refreshAt) {
			return s.key, nil
		}
		now := f.clock()
		if now.Before(s.expires) || (s.err != nil && now.Before(s.staleUntil)) {
			f.refreshInBackground(s, now)
			return s.key, nil
		}
	}
	return f.fetchKey(ctx, s)
}

// clock returns the current time.
func (f *KeyFetcher) clock() time.Time {
	if f.now == nil {
		return time.Now()
	}
	return f.now()
}

// before reports whether the clock has not reached t. On the real clock it
// reads only the monotonic clock, which costs half as much as time.Now.
func (f *KeyFetcher) before(t time.Time) bool {
	if f.now == nil {
		return time.Until(t) > 0
	}
	return f.now().Before(t)
}

// fetchKey is Key's slow path: s is the state Key found unfit to serve.
func (f *KeyFetcher) fetchKey(ctx context.Context, s *fetchState) (*Key, error) {
	if f.closed.Load() {
		return nil, ErrFetcherClosed
	}
	err := s.err
	if !f.clock().Before(s.retryAt) {
		var st *fetchState
		if st, err = f.wait(ctx, s.seq); err == nil {
			return st.key, nil
		}
		if errors.Is(err, ErrFetcherClosed) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
			return nil, err
		}
		s = f.state.Load()
	}
	// Fetching failed, now or recently: fall back on the last good key.
	if s.key == nil {
		return nil, err
	}
	if f.clock().Before(s.staleUntil) {
		return s.key, nil
	}
	return nil, fmt.Errorf("%w: key %s expired at %s, more than MaxStale (%v) ago, and fetching it fails: %w",
		ErrKeyStale, quote(s.key.ID), s.expires.UTC().Format(time.RFC3339), f.maxStale, err)
}

// Refresh fetches the key again, even though the cached one has not expired,
// and returns the key fetched. It is meant for when the key's user reports
// that the key was rejected, for instance because it was rotated.
//
// Refresh is rate-limited: when the last good fetch is younger than
// [FetcherConfig.MinRefreshInterval], it returns the cached key without a
// request, and while the fetcher backs off after a failed fetch, it returns
// that fetch's error. Concurrent calls share one request. When the fetch
// fails, Refresh returns its error and the fetcher keeps the last good key,
// which [KeyFetcher.Key] serves as usual. When ctx is done before the fetch
// ends, Refresh returns ctx's error, wrapped.
func (f *KeyFetcher) Refresh(ctx context.Context) (*Key, error) {
	if f.closed.Load() {
		return nil, ErrFetcherClosed
	}
	s := f.state.Load()
	now := f.clock()
	if s.key != nil && now.Sub(s.fetched) < f.minRefresh {
		return s.key, nil
	}
	if now.Before(s.retryAt) {
		return nil, s.err
	}
	st, err := f.wait(ctx, s.seq)
	if err != nil {
		return nil, err
	}
	return st.key, nil
}

// wait starts the shared fetch, or joins the one in flight, and waits for
// its outcome or for ctx to be done. seen is the seq of the state the caller
// decided on: an outcome recorded since is shared without a new request.
func (f *KeyFetcher) wait(ctx context.Context, seen uint64) (*fetchState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("e2ee: getting key: %w", err)
	}
	select {
	case r := <-f.start(ctx, seen):
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*fetchState), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("e2ee: waiting for key: %w", ctx.Err())
	}
}

// start starts the shared fetch, or joins the one in flight. The fetch keeps
// the values of ctx (for logging) but not its cancellation.
func (f *KeyFetcher) start(ctx context.Context, seen uint64) <-chan singleflight.Result {
	return f.group.DoChan("key", func() (any, error) { return f.fetch(ctx, seen) })
}

// refreshInBackground starts a goroutine that refreshes the key, unless one
// is running, the fetcher backs off, or it is closed. s is the state the
// caller found and now the time it read.
func (f *KeyFetcher) refreshInBackground(s *fetchState, now time.Time) {
	if now.Before(s.retryAt) || f.refreshing.Load() || !f.refreshing.CompareAndSwap(false, true) {
		return
	}
	f.mu.Lock()
	if f.closed.Load() {
		f.mu.Unlock()
		f.refreshing.Store(false)
		return
	}
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		defer f.refreshing.Store(false)
		<-f.start(context.Background(), s.seq) // the outcome is in the state and the log
	}()
}

// fetch is the shared fetch: it requests the key unless an outcome was
// recorded since the state of sequence number seen.
func (f *KeyFetcher) fetch(ctx context.Context, seen uint64) (*fetchState, error) {
	f.mu.Lock()
	if f.closed.Load() {
		f.mu.Unlock()
		return nil, ErrFetcherClosed
	}
	f.wg.Add(1)
	f.mu.Unlock()
	defer f.wg.Done()

	if cur := f.state.Load(); cur.seq > seen {
		if cur.err != nil {
			return nil, cur.err
		}
		return cur, nil
	}
	return f.fetchOnce(ctx)
}

// fetchOnce requests the key once and records the outcome.
func (f *KeyFetcher) fetchOnce(parent context.Context) (*fetchState, error) {
	seq := f.seq.Add(1)
	cur := f.state.Load()
	start := f.clock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), f.timeout)
	defer cancel()
	stop := context.AfterFunc(f.life, cancel)
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, f.failed(ctx, seq, start, 0, 0, fmt.Errorf("e2ee: key request: %w", err))
	}
	req.Header.Set("Accept", "application/jwk+json, application/jwk-set+json, application/json")
	for name, values := range f.header {
		req.Header[name] = slices.Clone(values)
	}
	conditional := cur.key != nil && (cur.etag != "" || cur.lastModified != "")
	if conditional {
		if cur.etag != "" {
			req.Header.Set("If-None-Match", cur.etag)
		}
		if cur.lastModified != "" {
			req.Header.Set("If-Modified-Since", cur.lastModified)
		}
	}

	resp, err := f.client.Do(req)
	if err != nil {
		if f.life.Err() != nil {
			return nil, ErrFetcherClosed
		}
		return nil, f.failed(ctx, seq, start, 0, 0, fmt.Errorf("e2ee: fetching key: %w", err))
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		drain(resp.Body)
		ttl, ok := f.headerTTL(resp.Header, start)
		if !ok {
			ttl = cur.ttl
		}
		return f.succeeded(ctx, seq, start, resp.StatusCode, cur.key, ttl,
			or(resp.Header.Get("ETag"), cur.etag), or(resp.Header.Get("Last-Modified"), cur.lastModified))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
		drain(resp.Body)
		return nil, f.failed(ctx, seq, start, resp.StatusCode, retryAfter(resp.Header, start),
			&FetchError{URL: f.logURL, StatusCode: resp.StatusCode, Body: excerpt})
	case resp.ContentLength > f.maxBody:
		return nil, f.failed(ctx, seq, start, resp.StatusCode, 0, f.tooLarge())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		if f.life.Err() != nil {
			return nil, ErrFetcherClosed
		}
		return nil, f.failed(ctx, seq, start, resp.StatusCode, 0, fmt.Errorf("e2ee: reading key from %s: %w", f.logURL, err))
	}
	if int64(len(body)) > f.maxBody {
		return nil, f.failed(ctx, seq, start, resp.StatusCode, 0, f.tooLarge())
	}
	k, err := parseKey(body, f.keyID)
	if err != nil {
		return nil, f.failed(ctx, seq, start, resp.StatusCode, 0, fmt.Errorf("e2ee: key from %s: %w", f.logURL, err))
	}
	ttl, ok := f.headerTTL(resp.Header, start)
	if !ok {
		ttl = f.defaultTTL
	}
	return f.succeeded(ctx, seq, start, resp.StatusCode, k, ttl, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
}

func (f *KeyFetcher) tooLarge() error {
	return fmt.Errorf("%w: %s sent more than %d bytes", ErrResponseTooLarge, f.logURL, f.maxBody)
}

// drain reads what is left of a short body, so that its connection can be
// reused; the caller closes it.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
}

// succeeded records the good fetch seq, started at start, of key k, and
// returns the state that callers get.
func (f *KeyFetcher) succeeded(ctx context.Context, seq uint64, start time.Time, status int,
	k *Key, ttl time.Duration, etag, lastModified string) (*fetchState, error) {
	end := f.clock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	cur := f.state.Load()
	if seq < cur.seq {
		// A fetch that started later has already recorded its outcome: an
		// older response never replaces a newer one.
		f.log(ctx, slog.LevelDebug, "e2ee: older key response dropped", slog.String("url", f.logURL))
		if cur.key != nil && cur.err == nil {
			return cur, nil
		}
		return &fetchState{key: k}, nil
	}
	if cur.key.equal(k) {
		k = cur.key // the same *Key, so that users' caches keyed on it stay valid
	}
	s := &fetchState{
		key:          k,
		fetched:      end,
		ttl:          ttl,
		refreshAt:    start.Add(ttl - ttl/4),
		expires:      start.Add(ttl),
		staleUntil:   start.Add(ttl).Add(f.maxStale),
		etag:         etag,
		lastModified: lastModified,
		seq:          seq,
	}
	f.state.Store(s)

	if f.logger != nil {
		msg := "e2ee: key fetched"
		if status == http.StatusNotModified {
			msg = "e2ee: key not modified"
		}
		f.log(ctx, slog.LevelDebug, msg, slog.String("url", f.logURL), slog.Int("status", status),
			slog.Duration("duration", end.Sub(start)), slog.String("kid", k.ID), slog.Duration("ttl", ttl))
		if cur.key != nil && k != cur.key {
			f.log(ctx, slog.LevelInfo, "e2ee: key changed", slog.String("url", f.logURL),
				slog.String("old_kid", cur.key.ID), slog.String("new_kid", k.ID))
		}
	}
	return s, nil
}

// failed records the failed fetch seq, started at start, and returns err.
// status is the response's status code (0 without a response) and wait what
// its Retry-After header asks for (0 without one).
func (f *KeyFetcher) failed(ctx context.Context, seq uint64, start time.Time, status int,
	wait time.Duration, err error) error {
	end := f.clock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	cur := f.state.Load()
	if seq < cur.seq {
		return err // a fetch that started later has recorded its outcome
	}
	s := *cur
	s.seq, s.err = seq, err
	s.failures++
	delay := f.jitter(min(initialBackoff<<min(s.failures-1, 30), maxBackoff))
	delay = max(delay, min(wait, maxBackoff))
	s.retryAt = end.Add(delay)
	f.state.Store(&s)

	if f.logger != nil {
		attrs := []slog.Attr{slog.String("url", f.logURL)}
		if status != 0 {
			attrs = append(attrs, slog.Int("status", status))
		}
		msg := err.Error()
		if fe, ok := err.(*FetchError); ok {
			msg = fe.summary() // logs carry no body
		}
		attrs = append(attrs, slog.Duration("duration", end.Sub(start)), slog.String("error", msg),
			slog.Int("failures", s.failures), slog.Duration("retry_in", delay))
		if s.key != nil {
			attrs = append(attrs, slog.String("cached_kid", s.key.ID), slog.Time("cached_expires", s.expires))
		}
		f.log(ctx, slog.LevelWarn, "e2ee: key fetch failed", attrs...)
	}
	return err
}

func (f *KeyFetcher) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if f.logger != nil {
		f.logger.LogAttrs(ctx, level, msg, attrs...)
	}
}

// Close stops the fetcher: it cancels any fetch in flight, waits for the
// fetcher's goroutines to return, and makes later [KeyFetcher.Key] and
// [KeyFetcher.Refresh] calls fail with [ErrFetcherClosed]. Callers waiting
// for a fetch get that error too. Close is idempotent and safe for
// concurrent use.
func (f *KeyFetcher) Close() {
	f.mu.Lock()
	f.closed.Store(true)
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// headerTTL returns the lifetime that h gives a response received at now,
// clamped to [minTTL, maxTTL], and false when h has no caching headers.
func (f *KeyFetcher) headerTTL(h http.Header, now time.Time) (time.Duration, bool) {
	ttl, ok := freshness(h, now)
	if !ok {
		return 0, false
	}
	return min(max(ttl, f.minTTL), f.maxTTL), true
}

// freshness returns how long a response with headers h, received at now, stays
// fresh (RFC 9111 section 4.2): Cache-Control max-age less Age, else Expires
// less Date (or now) and Age. no-store and no-cache give 0, and so does an
// invalid max-age or Expires. It returns false when h has none of these.
func freshness(h http.Header, now time.Time) (time.Duration, bool) {
	var (
		maxAge    time.Duration
		hasMaxAge bool
	)
	for _, v := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if !hasMaxAge {
					maxAge, _ = deltaSeconds(value) // invalid: stale
					hasMaxAge = true
				}
			}
		}
	}
	age, _ := deltaSeconds(h.Get("Age"))
	if hasMaxAge {
		return maxAge - age, true
	}
	if values := h.Values("Expires"); len(values) > 0 {
		expires, err := http.ParseTime(values[0])
		if err != nil {
			return 0, true // an invalid date, such as "0", means already expired
		}
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			return expires.Sub(date) - age, true
		}
		return expires.Sub(now), true
	}
	return 0, false
}

// deltaSeconds parses an RFC 9111 delta-seconds value, optionally quoted,
// capping it at 2^31 seconds. It returns false when s is not one.
func deltaSeconds(s string) (time.Duration, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxDelta {
		n = maxDelta // only overflow is left as an error
	}
	return time.Duration(n) * time.Second, true
}

// retryAfter returns the wait a Retry-After header in h asks for, from now,
// or 0.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if d, ok := deltaSeconds(v); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
