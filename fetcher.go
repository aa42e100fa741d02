package e2ee

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credseal/e2ee/internal/flight"
	"github.com/credseal/e2ee/internal/keyurl"
	"github.com/credseal/e2ee/internal/redact"
)

// Backoff after failed fetches.
const (
	initialBackoff = time.Second // wait after the first failed fetch; doubles with each failure
	maxBackoff     = time.Minute // longest wait between failed fetches
)

// KeyFetcher fetches, caches and refreshes the key that an HTTP endpoint
// serves as a JWK or a JWK Set. It is a [KeySource].
//
// The first Key call fetches, and concurrent callers share that request.
// The key is then served from memory, without I/O or locks, for the
// lifetime the response's caching headers give it within [FetcherConfig]'s
// bounds, and refreshed in the background before it expires. While fetches
// fail (after a backoff, or the endpoint's Retry-After) the last good key is
// served until [FetcherConfig.MaxStale] past its expiry; then Key fails
// with [ErrKeyStale]. A fetch that hangs is hedged: callers without a usable
// key do not wait for its Timeout.
//
// [docs/keyfetcher.md] gives each rule, with the figures of its defaults.
//
// It starts goroutines only while fetches are in flight; [KeyFetcher.Close]
// cancels them and waits for them.
//
// [docs/keyfetcher.md]: https://github.com/credseal/e2ee/blob/main/docs/keyfetcher.md
type KeyFetcher struct {
	endpoint

	// jitter spreads a backoff delay: equalJitter, or none in tests.
	jitter func(time.Duration) time.Duration

	state      atomic.Pointer[fetchState] // what Key serves; replaced whole, never modified
	refreshing atomic.Bool                // a background refresh goroutine is running
	// lastKIDRefresh is when KeyByID last started a fetch for a kid it did
	// not know, in Unix nanoseconds.
	lastKIDRefresh atomic.Int64
	closed         atomic.Bool // Close was called; set with mu held

	// flights shares each fetch among the callers waiting for a key, and
	// hedges a fetch that hangs; it records each outcome with settle.
	flights *flight.Group[response, *fetchState]

	// mu serialises every change: of state (readers take no lock) and of
	// closed, and wg.Add, so that nothing starts once Close waits.
	mu      sync.Mutex
	version uint64          // outcomes recorded so far; guarded by mu
	life    context.Context // the fetcher's lifetime, not a request's: Close cancels it and every fetch with it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // counts background refresh goroutines
}

var _ KeySource = (*KeyFetcher)(nil)

// fetchState is what a KeyFetcher knows at one moment. It is never modified
// once stored: a change stores a new one.
type fetchState struct {
	held                 // of the last good fetch; key is nil before the first
	fetched    time.Time // when the last good fetch (200 or 304) ended
	refreshAt  time.Time // from then on, Key refreshes in the background
	expires    time.Time // from then on, Key fetches before answering
	staleUntil time.Time // until then, the key is served while fetches fail

	version  uint64    // the outcomes recorded up to this one; 0 before any
	err      error     // the last fetch's error; nil when it succeeded
	failures int       // consecutive failed fetches
	retryAt  time.Time // after a failure, no fetch starts before then

	previous []retiredKey // keys served before key, newest first, while they may still be in use
}

// retiredKey is a key the fetcher served before its current one, and until
// when JWEs made with it are taken: as long as a fetcher that had not seen
// the rotation would still serve it, MaxStale past its expiry.
type retiredKey struct {
	key   *Key
	until time.Time
}

// maxPrevious bounds the keys a fetcher remembers having served.
const maxPrevious = 4

// KeyStatus is what a [KeyFetcher] holds at one moment, as
// [KeyFetcher.Status] reports it.
type KeyStatus struct {
	KeyID   string    // the kid of the key served; "" before the first good fetch
	Fetched time.Time // when that key was last fetched or revalidated
	Expires time.Time // when it expires (it may be served past that while fetches fail)
	Err     error     // the last fetch's error; nil when the last fetch succeeded; after Close, wraps ErrFetcherClosed

	// Usable reports whether the fetcher can supply a key now: it holds
	// one, is not closed, and is within MaxStale past the key's expiry
	// (the time StaleUntil gives). A readiness check needs nothing else.
	Usable     bool
	StaleUntil time.Time // until then the key is served, even while fetches fail
}

// NewKeyFetcher returns a KeyFetcher for the key served at rawURL. It does no
// I/O: the first [KeyFetcher.Key] call fetches. A nil cfg means the defaults
// of every [FetcherConfig] field.
//
// rawURL must be https, except that http is accepted on a loopback host
// (localhost, 127.0.0.0/8, ::1) for tests and development. Its query, which
// may carry a token, is sent but never appears in an error or a log line.
// The fetcher follows at most 3 redirects, each to the same host and port as
// rawURL and over https (or http, when rawURL is http): a redirect elsewhere
// fails the fetch. After those checks, the client's own CheckRedirect, if
// any, is consulted.
func NewKeyFetcher(rawURL string, cfg *FetcherConfig) (*KeyFetcher, error) {
	u, err := keyurl.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	c, pin, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	f := &KeyFetcher{
		endpoint: endpoint{url: rawURL, logURL: redact.URL(u), cfg: c, pin: pin, client: keyurl.Client(c.HTTPClient)},
		jitter:   equalJitter,
	}
	f.life, f.cancel = context.WithCancel(context.Background())
	f.flights = flight.New(f.life, c.HedgeDelay, maxFlights, f.run, f.settle)
	f.state.Store(&fetchState{})
	return f, nil
}

// maxFlights bounds the fetches of one round in flight at once: the first
// and at most two hedges.
const maxFlights = 3

// wait joins the fetch in flight, or starts one, and waits for its outcome
// or for ctx to be done. seen is the version of the state the caller decided
// on: an outcome recorded since is shared without a request. When hedge is
// true and the latest fetch has been in flight for HedgeDelay, the caller
// starts another fetch beside it (at most maxFlights in flight).
func (f *KeyFetcher) wait(ctx context.Context, seen uint64, hedge bool) (*fetchState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("e2ee: getting key: %w", err)
	}
	if f.closed.Load() {
		return nil, ErrFetcherClosed
	}
	st, err := f.flights.Do(ctx, hedge, func(inFlight bool) (*fetchState, error, bool) {
		cur := f.state.Load()
		return cur, cur.err, cur.version > seen && (cur.err == nil || !inFlight)
	})
	switch {
	case errors.Is(err, flight.ErrClosed):
		return nil, ErrFetcherClosed
	case err != nil && err == ctx.Err():
		return nil, fmt.Errorf("e2ee: waiting for key: %w", err)
	}
	return st, err
}

// run is one fetch of the key, bounded by Timeout. ctx's values are kept
// for logging.
func (f *KeyFetcher) run(ctx context.Context) response {
	fctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	resp := f.request(fctx, f.state.Load().held)
	resp.ctx = ctx
	return resp
}

// settle records the outcome of a fetch that landed before its round was
// decided: a good fetch decides the round; a failed one backs off, and
// decides it when it was the last in flight. What to log is logged before
// the round's waiters are released.
func (f *KeyFetcher) settle(resp response) flight.Outcome[*fetchState] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return flight.Outcome[*fetchState]{Err: ErrFetcherClosed, Decides: true}
	}
	if resp.err == nil {
		st, ev := f.succeeded(resp)
		return flight.Outcome[*fetchState]{Val: st, Decides: true, Then: func() { f.logEvent(resp.ctx, ev) }}
	}
	ev := f.failed(resp)
	return flight.Outcome[*fetchState]{Err: resp.err, Then: func() { f.logEvent(resp.ctx, ev) }}
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
// While the cached key is fresh, Key is a lock-free memory read. When it
// must wait for a fetch, it shares the fetch with concurrent callers and
// returns ctx's error, wrapped, as soon as ctx is done. When the fetch
// fails, Key returns the last good key until [FetcherConfig.MaxStale] past
// its expiry, then an error wrapping [ErrKeyStale] and the fetch's error;
// before any good fetch, the fetch's error. After [KeyFetcher.Close], Key
// returns [ErrFetcherClosed].
func (f *KeyFetcher) Key(ctx context.Context) (*Key, error) {
	s := f.state.Load()
	if s.key != nil && !f.closed.Load() {
		if time.Until(s.refreshAt) > 0 { // the monotonic clock only: half the cost of time.Now
			return s.key, nil
		}
		now := time.Now()
		if now.Before(s.expires) || (s.err != nil && now.Before(s.staleUntil)) {
			f.refreshInBackground(s, now)
			return s.key, nil
		}
	}
	return f.fetchKey(ctx, s)
}

// fetchKey is Key's slow path: s is the state Key found unfit to serve.
func (f *KeyFetcher) fetchKey(ctx context.Context, s *fetchState) (*Key, error) {
	if f.closed.Load() {
		return nil, ErrFetcherClosed
	}
	err := s.err
	if !time.Now().Before(s.retryAt) {
		var st *fetchState
		if st, err = f.wait(ctx, s.version, true); err == nil {
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
	if time.Now().Before(s.staleUntil) {
		return s.key, nil
	}
	return nil, &contextError{cause: err, kind: ErrKeyStale, context: fmt.Sprintf(
		"the last good key, %s, is stale: it expired at %s, more than MaxStale (%v) ago",
		redact.Quote(s.key.ID), s.expires.UTC().Format(time.RFC3339), f.cfg.MaxStale)}
}

// Refresh fetches the key again, even though the cached one has not expired,
// and returns the key fetched. It is meant for when the key's user reports
// that the key was rejected, for instance because it was rotated.
//
// Refresh is rate-limited: when the last good fetch is younger than
// [FetcherConfig.MinRefreshInterval], it returns the cached key without a
// request, and while the fetcher backs off, the last fetch's error.
// Concurrent calls share one request. When the fetch fails, Refresh returns
// its error and the fetcher keeps the last good key.
func (f *KeyFetcher) Refresh(ctx context.Context) (*Key, error) {
	if f.closed.Load() {
		return nil, ErrFetcherClosed
	}
	s := f.state.Load()
	now := time.Now()
	if s.key != nil && now.Sub(s.fetched) < f.cfg.MinRefreshInterval {
		return s.key, nil
	}
	if now.Before(s.retryAt) {
		return nil, s.err
	}
	st, err := f.wait(ctx, s.version, false)
	if err != nil {
		return nil, err
	}
	return st.key, nil
}

// KeyByID returns the key whose kid is kid, for checking a JWE that names
// it: the current key, or a key the fetcher served before and that is still
// within [FetcherConfig.MaxStale] past its expiry, since a user interface
// may have got it, from this fetcher or another one, just before the key
// rotated. It returns nil and no error when no such key is known.
//
// A kid it has never seen may be the API's new key: KeyByID then fetches
// the key at once, whatever [FetcherConfig.MinRefreshInterval] says, but at
// most once a second, and not while the fetcher backs off.
func (f *KeyFetcher) KeyByID(ctx context.Context, kid string) (*Key, error) {
	k, err := f.Key(ctx)
	if err != nil {
		return nil, err
	}
	s := f.state.Load()
	if found := s.byID(kid); found != nil {
		return found, nil
	}
	if st := f.refreshForKID(ctx, s); st != nil {
		return st.byID(kid), nil
	}
	if k.ID == kid {
		return k, nil
	}
	return nil, nil
}

// byID returns s's current key, or a key it served before within its
// window, whose kid is kid; nil when there is none.
func (s *fetchState) byID(kid string) *Key {
	if s.key != nil && s.key.ID == kid {
		return s.key
	}
	now := time.Now()
	for _, p := range s.previous {
		if p.key.ID == kid && now.Before(p.until) {
			return p.key
		}
	}
	return nil
}

// refreshForKID fetches the key again for a kid that s does not know, at
// most once a second: a caller within that second shares the fetch in
// flight, or the outcome recorded since s, or gets nil (no fetch). It
// returns the state after the fetch, or nil when none was made or it failed.
func (f *KeyFetcher) refreshForKID(ctx context.Context, s *fetchState) *fetchState {
	if time.Now().Before(s.retryAt) {
		return nil
	}
	now := time.Now().UnixNano()
	last := f.lastKIDRefresh.Load()
	if now-last >= int64(time.Second) && f.lastKIDRefresh.CompareAndSwap(last, now) {
		st, err := f.wait(ctx, s.version, false)
		if err != nil {
			return nil
		}
		return st
	}
	newer := func() *fetchState {
		if cur := f.state.Load(); cur.version > s.version && cur.err == nil {
			return cur
		}
		return nil
	}
	if cur := newer(); cur != nil {
		return cur
	}
	if st, err, ok := f.flights.Join(ctx); ok {
		if err != nil {
			return nil
		}
		return st
	}
	return newer()
}

// Status reports what the fetcher holds: the kid of the key it serves, when
// that key was last fetched or revalidated and when it expires, and the last
// fetch's error. It does no I/O and takes no lock, so a health or readiness
// check may call it as often as it likes; it is safe for concurrent use.
//
// After [KeyFetcher.Close], Err wraps [ErrFetcherClosed] and Usable is
// false, so that a readiness check built on Status goes red.
func (f *KeyFetcher) Status() KeyStatus {
	s := f.state.Load()
	st := KeyStatus{Err: s.err}
	if s.key != nil {
		st.KeyID, st.Fetched, st.Expires, st.StaleUntil = s.key.ID, s.fetched, s.expires, s.staleUntil
		st.Usable = time.Now().Before(s.staleUntil)
	}
	if f.closed.Load() {
		st.Usable = false
		st.Err = ErrFetcherClosed
		if s.err != nil {
			st.Err = fmt.Errorf("%w (the last fetch failed: %w)", ErrFetcherClosed, s.err)
		}
	}
	return st
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
		f.wait(context.Background(), s.version, false) // the outcome is in the state and the log
	}()
}

// event is what one recorded outcome has to log: up to two records.
type event []slog.Record

// add appends a record of msg at level with attrs, when the fetcher logs.
func (f *KeyFetcher) add(ev event, level slog.Level, msg string, attrs ...slog.Attr) event {
	if f.cfg.Logger == nil {
		return ev
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	return append(ev, r)
}

// logEvent hands ev's records to the Logger, outside mu.
func (f *KeyFetcher) logEvent(ctx context.Context, ev event) {
	for _, r := range ev {
		if h := f.cfg.Logger.Handler(); h.Enabled(ctx, r.Level) {
			_ = h.Handle(ctx, r)
		}
	}
}

// succeeded records the good fetch resp and returns the state that callers
// get, with what to log. f.mu is held.
func (f *KeyFetcher) succeeded(resp response) (*fetchState, event) {
	cur := f.state.Load()
	k := resp.key
	if cur.key.equal(k) {
		k = cur.key // the same *Key, so that users' caches keyed on it stay valid
	}
	f.version++
	now := time.Now()
	var previous []retiredKey
	if cur.key != nil && k != cur.key {
		previous = append(previous, retiredKey{cur.key, cur.staleUntil})
	}
	for _, p := range cur.previous {
		if now.Before(p.until) && p.key.ID != k.ID && len(previous) < maxPrevious {
			previous = append(previous, p)
		}
	}
	h := resp.held
	h.key = k
	s := &fetchState{
		held:       h,
		previous:   previous,
		fetched:    resp.end,
		refreshAt:  resp.start.Add(resp.ttl - resp.ttl/4),
		expires:    resp.start.Add(resp.ttl),
		staleUntil: resp.start.Add(resp.ttl).Add(f.cfg.MaxStale),
		version:    f.version,
	}
	f.state.Store(s)

	msg := "key fetched"
	if resp.status == http.StatusNotModified {
		msg = "key not modified"
	}
	ev := f.add(nil, slog.LevelDebug, msg, slog.String("url", f.logURL), slog.Int("status", resp.status),
		slog.Duration("duration", resp.end.Sub(resp.start)), slog.String("kid", k.ID), slog.Duration("ttl", resp.ttl))
	if cur.key != nil && k != cur.key {
		ev = f.add(ev, slog.LevelInfo, "key changed", slog.String("url", f.logURL),
			slog.String("old_kid", cur.key.ID), slog.String("new_kid", k.ID))
	}
	return s, ev
}

// failed records the failed fetch resp, keeping the last good key and
// backing off, and returns what to log. f.mu is held.
func (f *KeyFetcher) failed(resp response) event {
	s := *f.state.Load()
	f.version++
	s.version, s.err = f.version, resp.err
	s.failures++
	delay := f.jitter(min(initialBackoff<<min(s.failures-1, 30), maxBackoff))
	delay = max(delay, min(resp.retryAfter, maxBackoff))
	s.retryAt = resp.end.Add(delay)
	f.state.Store(&s)

	attrs := []slog.Attr{slog.String("url", f.logURL)}
	if resp.status != 0 {
		attrs = append(attrs, slog.Int("status", resp.status))
	}
	attrs = append(attrs, slog.Duration("duration", resp.end.Sub(resp.start)), slog.String("error", resp.err.Error()),
		slog.Int("failures", s.failures), slog.Duration("retry_in", delay))
	if s.key != nil {
		attrs = append(attrs, slog.String("cached_kid", s.key.ID), slog.Time("cached_expires", s.expires))
	}
	return f.add(nil, slog.LevelWarn, "key fetch failed", attrs...)
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
	f.flights.Wait()
}
