package e2ee

import (
	"context"
	"fmt"
	"time"
)

// maxFlights bounds the fetches of one round in flight at once: the first
// and at most two hedges.
const maxFlights = 3

// A round is the set of fetches that callers share until one outcome
// answers them all: the first fetch, and the hedges started beside it when
// it takes longer than [FetcherConfig.HedgeDelay]. The first good fetch
// decides the round and cancels the others; when every fetch fails, the last
// failure decides it. Its fields are guarded by the fetcher's mu.
type round struct {
	ctx       context.Context    // done once the round is decided or the fetcher closed
	cancel    context.CancelFunc // cancels ctx, and with it every fetch of the round
	done      chan struct{}      // closed once the round is decided and its outcome logged
	decided   bool
	state     *fetchState // the outcome, once decided: the state after a good fetch,
	err       error       // or the error of the last failed one
	inFlight  int         // fetches started and not yet landed
	lastStart time.Time   // when the latest fetch started
}

// wait joins the round in flight, or starts one, and waits for its outcome
// or for ctx to be done. seen is the version of the state the caller decided
// on: an outcome recorded since is shared without a request. When hedge is
// true and the round's latest fetch has been in flight for HedgeDelay, the
// caller starts another fetch beside it (at most maxFlights in flight).
func (f *KeyFetcher) wait(ctx context.Context, seen uint64, hedge bool) (*fetchState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("e2ee: getting key: %w", err)
	}
	f.mu.Lock()
	if f.closed.Load() {
		f.mu.Unlock()
		return nil, ErrFetcherClosed
	}
	r := f.round
	if cur := f.state.Load(); cur.version > seen && (cur.err == nil || r == nil) {
		f.mu.Unlock()
		return cur, cur.err
	}
	switch {
	case r == nil:
		r = &round{done: make(chan struct{})}
		r.ctx, r.cancel = context.WithCancel(f.life)
		f.round = r
		f.launch(ctx, r)
	case hedge && r.inFlight < maxFlights && time.Since(r.lastStart) >= f.cfg.HedgeDelay:
		f.launch(ctx, r)
	}
	f.mu.Unlock()

	select {
	case <-r.done:
		return r.state, r.err
	case <-f.life.Done():
		return nil, ErrFetcherClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("e2ee: waiting for key: %w", ctx.Err())
	}
}

// launch starts one fetch of round r in a goroutine of the fetcher's. The
// fetch keeps the values of ctx (for logging) but not its cancellation: it
// ends with its Timeout, with the round or with the fetcher. f.mu is held.
func (f *KeyFetcher) launch(ctx context.Context, r *round) {
	r.inFlight++
	r.lastStart = time.Now()
	cur := f.state.Load()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.Timeout)
		stop := context.AfterFunc(r.ctx, cancel)
		resp := f.request(fctx, cur)
		stop()
		cancel()
		f.land(ctx, r, resp)
	}()
}

// land records the outcome of one fetch of round r and decides the round
// when that outcome does: a good fetch always, a failed one when it was the
// last in flight. A fetch that lands after its round was decided, or after
// Close, records nothing. The round's waiters are released once the outcome
// is logged, so that a caller that waited for a fetch finds it in the log.
func (f *KeyFetcher) land(ctx context.Context, r *round, resp response) {
	f.mu.Lock()
	r.inFlight--
	wasDecided := r.decided
	var ev event
	switch {
	case r.decided:
		// Cancelled by the fetch that won, or by Close: nothing to say.
	case f.closed.Load():
		r.decide(f, nil, ErrFetcherClosed)
	case resp.err == nil:
		var st *fetchState
		st, ev = f.succeeded(resp)
		r.decide(f, st, nil)
	default:
		ev = f.failed(resp)
		if r.inFlight == 0 {
			r.decide(f, nil, resp.err)
		}
	}
	decidedNow := r.decided && !wasDecided
	f.mu.Unlock()
	f.logEvent(ctx, ev)
	if decidedNow {
		close(r.done)
	}
}

// decide sets the round's outcome, cancels its other fetches and lets the
// next caller start a new round; the caller then closes r.done, which
// releases the round's waiters. f.mu is held.
func (r *round) decide(f *KeyFetcher, st *fetchState, err error) {
	r.decided, r.state, r.err = true, st, err
	r.cancel()
	if f.round == r {
		f.round = nil
	}
}
