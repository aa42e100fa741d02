// Package flight shares one call among the callers that ask while it is in
// flight, as golang.org/x/sync/singleflight does, and hedges it: a caller
// that finds the call's latest run started long enough ago starts another
// run beside it.
package flight

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is the error of a call when the group's life ended first.
var ErrClosed = errors.New("flight: group closed")

// Outcome is what the landing of one run settles: the value and the error
// that the callers get when it decides the call, whether it does, and what
// to do once the group's lock is released, before the callers are answered
// (log the outcome, say).
type Outcome[T any] struct {
	Val     T
	Err     error
	Decides bool
	Then    func()
}

// A Group runs calls of one function, one call at a time, and shares each
// among its callers. A call is made of runs: the first, and the hedges that
// callers start beside it. Each run's result R is settled, with the group's
// lock held, unless the call was already decided: the first Outcome that
// decides answers every caller and cancels the other runs, and when every
// run fails, the last one decides. A run that lands after its call was
// decided changes nothing.
//
// A Group is safe for concurrent use. Its runs end with the context given
// to New: cancel it, then Wait.
type Group[R, T any] struct {
	life   context.Context
	delay  time.Duration // a hedge starts once the latest run is this old
	max    int           // runs of one call in flight at once, at most
	run    func(context.Context) R
	settle func(R) Outcome[T]
	wg     sync.WaitGroup // counts the runs in flight

	mu   sync.Mutex // guards call
	call *call[T]   // the call in flight, or nil
}

// call is one call of a Group, and its runs. Its fields are guarded by the
// group's mu, but done.
type call[T any] struct {
	ctx       context.Context // done once the call is decided or the group's life ends
	cancel    context.CancelFunc
	done      chan struct{} // closed once decided and its outcome's Then has run
	val       T
	err       error
	decided   bool
	inFlight  int
	lastStart time.Time
}

// New returns a Group whose calls run run, at most max runs of a call at
// once, a hedge starting once the latest run has been in flight for delay,
// and whose runs' results settle decides. Every run ends with life.
func New[R, T any](life context.Context, delay time.Duration, max int, run func(context.Context) R, settle func(R) Outcome[T]) *Group[R, T] {
	return &Group[R, T]{life: life, delay: delay, max: max, run: run, settle: settle}
}

// Do joins the call in flight, or starts one, and returns its outcome, or
// ctx's error as soon as ctx is done while the call goes on for the others.
// With hedge, when the call's latest run has been in flight for the group's
// delay and fewer than its max runs are, Do starts another run beside it.
//
// Before that, with the group's lock held, fresh (when not nil) may answer
// instead, from what the owner recorded since the caller looked: it is told
// whether a call is in flight. A run keeps ctx's values (for logging) but
// not its cancellation.
func (g *Group[R, T]) Do(ctx context.Context, hedge bool, fresh func(inFlight bool) (T, error, bool)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	g.mu.Lock()
	if g.life.Err() != nil {
		g.mu.Unlock()
		return zero, ErrClosed
	}
	c := g.call
	if fresh != nil {
		if v, err, ok := fresh(c != nil); ok {
			g.mu.Unlock()
			return v, err
		}
	}
	switch {
	case c == nil:
		c = &call[T]{done: make(chan struct{})}
		c.ctx, c.cancel = context.WithCancel(g.life)
		g.call = c
		g.start(ctx, c)
	case hedge && c.inFlight < g.max && time.Since(c.lastStart) >= g.delay:
		g.start(ctx, c)
	}
	g.mu.Unlock()
	return g.await(ctx, c)
}

// Join waits for the call in flight, if there is one, and returns its
// outcome and true; false when no call is in flight, in which case it
// starts none.
func (g *Group[R, T]) Join(ctx context.Context) (T, error, bool) {
	g.mu.Lock()
	c := g.call
	g.mu.Unlock()
	if c == nil {
		var zero T
		return zero, nil, false
	}
	v, err := g.await(ctx, c)
	return v, err, true
}

// Wait waits for every run to return. Once the group's life has ended, no
// run starts after Wait: Do checks the life and starts a run with the
// group's lock held, which Wait takes before it waits.
func (g *Group[R, T]) Wait() {
	g.mu.Lock()
	//lint:ignore SA2001 an empty critical section on purpose: a barrier for a run that Do is starting
	g.mu.Unlock()
	g.wg.Wait()
}

// await waits for c's outcome, ctx or the group's life.
func (g *Group[R, T]) await(ctx context.Context, c *call[T]) (T, error) {
	var zero T
	select {
	case <-c.done:
		return c.val, c.err
	case <-g.life.Done():
		return zero, ErrClosed
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// start starts one run of c in a goroutine of its own. g.mu is held.
func (g *Group[R, T]) start(ctx context.Context, c *call[T]) {
	c.inFlight++
	c.lastStart = time.Now()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(c.ctx, cancel)
		r := g.run(rctx)
		stop()
		cancel()
		g.land(c, r)
	}()
}

// land settles the result r of a run of c, unless c was decided, and
// decides c when the outcome does, or when it was the last run in flight.
func (g *Group[R, T]) land(c *call[T], r R) {
	g.mu.Lock()
	c.inFlight--
	if c.decided {
		g.mu.Unlock()
		return
	}
	var o Outcome[T]
	if g.life.Err() != nil {
		o = Outcome[T]{Err: ErrClosed, Decides: true}
	} else {
		o = g.settle(r)
	}
	if o.Decides || c.inFlight == 0 {
		c.decided, c.val, c.err = true, o.Val, o.Err
		c.cancel()
		if g.call == c {
			g.call = nil
		}
	}
	decided := c.decided
	g.mu.Unlock()
	if o.Then != nil {
		o.Then()
	}
	if decided {
		close(c.done)
	}
}
