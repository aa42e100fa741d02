package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// result is what a test run returns: its number, and whether it failed.
type result struct {
	run    int
	failed bool
}

// harness is a Group whose runs each wait for their own release, and a
// record of what was settled.
type harness struct {
	g       *Group[result, int]
	cancel  context.CancelFunc
	started atomic.Int32
	mu      sync.Mutex
	release map[int]chan bool // run -> send true to fail, false to succeed
	settled []result
	ctxErrs map[int]error // run -> its context's error when released
}

func newHarness(delay time.Duration, max int) *harness {
	h := &harness{release: map[int]chan bool{}, ctxErrs: map[int]error{}}
	life, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for i := 1; i <= 8; i++ {
		h.release[i] = make(chan bool, 1)
	}
	run := func(ctx context.Context) result {
		n := int(h.started.Add(1))
		fail := <-h.release[n]
		h.mu.Lock()
		h.ctxErrs[n] = ctx.Err()
		h.mu.Unlock()
		return result{n, fail}
	}
	settle := func(r result) Outcome[int] {
		h.mu.Lock()
		h.settled = append(h.settled, r)
		h.mu.Unlock()
		if r.failed {
			return Outcome[int]{Val: -r.run, Err: errors.New("failed")}
		}
		return Outcome[int]{Val: r.run, Decides: true}
	}
	h.g = New(life, delay, max, run, settle)
	return h
}

// do calls Do in a goroutine and returns where its outcome arrives.
func (h *harness) do(ctx context.Context, hedge bool) <-chan error {
	ch := make(chan error, 1)
	go func() {
		v, err := h.g.Do(ctx, hedge, nil)
		if err == nil && v <= 0 {
			err = errors.New("no value")
		}
		ch <- err
	}()
	return ch
}

func TestGroup(t *testing.T) {
	for _, tt := range []struct {
		name string
		test func(t *testing.T, h *harness)
	}{
		{"concurrent callers share one run", func(t *testing.T, h *harness) {
			var outs []<-chan error
			for range 5 {
				outs = append(outs, h.do(context.Background(), false))
			}
			synctest.Wait()
			h.release[1] <- false
			for _, out := range outs {
				if err := <-out; err != nil {
					t.Errorf("Do = %v; want the shared value", err)
				}
			}
			if n := h.started.Load(); n != 1 {
				t.Errorf("%d runs; want 1", n)
			}
		}},
		{"a hedge after the delay, the first good outcome wins", func(t *testing.T, h *harness) {
			first := h.do(context.Background(), true)
			synctest.Wait()
			time.Sleep(time.Second)
			second := h.do(context.Background(), true)
			synctest.Wait()
			h.release[2] <- false // the hedge answers
			for _, out := range []<-chan error{first, second} {
				if err := <-out; err != nil {
					t.Errorf("Do = %v; want the hedge's value", err)
				}
			}
			synctest.Wait()       // the call's cancellation reaches the first run (context.AfterFunc runs on a goroutine)
			h.release[1] <- false // the first run lands late: nothing settled
			h.g.Wait()
			if len(h.settled) != 1 || h.settled[0].run != 2 {
				t.Errorf("settled %v; want the hedge's run alone", h.settled)
			}
			if !errors.Is(h.ctxErrs[1], context.Canceled) {
				t.Errorf("the late run's context: %v; want it canceled when the hedge won", h.ctxErrs[1])
			}
		}},
		{"no hedge before the delay, nor without asking", func(t *testing.T, h *harness) {
			a := h.do(context.Background(), true)
			synctest.Wait()
			time.Sleep(999 * time.Millisecond)
			b := h.do(context.Background(), true)
			synctest.Wait()
			time.Sleep(time.Second)
			c := h.do(context.Background(), false)
			synctest.Wait()
			if n := h.started.Load(); n != 1 {
				t.Errorf("%d runs; want 1", n)
			}
			h.release[1] <- false
			for _, out := range []<-chan error{a, b, c} {
				<-out
			}
		}},
		{"at most max runs", func(t *testing.T, h *harness) {
			var outs []<-chan error
			for range 6 {
				outs = append(outs, h.do(context.Background(), true))
				synctest.Wait()
				time.Sleep(time.Second)
			}
			if n := h.started.Load(); n != 3 {
				t.Errorf("%d runs; want 3, the max", n)
			}
			for i := 1; i <= 3; i++ {
				h.release[i] <- true
			}
			for _, out := range outs {
				if err := <-out; err == nil || err.Error() != "failed" {
					t.Errorf("Do = %v; want the last failure", err)
				}
			}
			if len(h.settled) != 3 {
				t.Errorf("settled %v; want every failure", h.settled)
			}
		}},
		{"a failure with a run in flight does not decide", func(t *testing.T, h *harness) {
			first := h.do(context.Background(), true)
			synctest.Wait()
			time.Sleep(time.Second)
			second := h.do(context.Background(), true)
			synctest.Wait()
			h.release[1] <- true // fails, the hedge still in flight
			synctest.Wait()
			select {
			case err := <-first:
				t.Fatalf("Do = %v before the hedge landed; want it waiting", err)
			default:
			}
			h.release[2] <- false
			for _, out := range []<-chan error{first, second} {
				if err := <-out; err != nil {
					t.Errorf("Do = %v; want the hedge's value", err)
				}
			}
		}},
		{"fresh answers without a run", func(t *testing.T, h *harness) {
			v, err := h.g.Do(context.Background(), false, func(inFlight bool) (int, error, bool) { return 7, nil, !inFlight })
			if v != 7 || err != nil || h.started.Load() != 0 {
				t.Errorf("Do = %d, %v with %d runs; want fresh's 7 and no run", v, err, h.started.Load())
			}
		}},
		{"a caller's context ends its wait, not the call", func(t *testing.T, h *harness) {
			ctx, cancel := context.WithCancel(context.Background())
			mine := h.do(ctx, false)
			other := h.do(context.Background(), false)
			synctest.Wait()
			cancel()
			if err := <-mine; !errors.Is(err, context.Canceled) {
				t.Errorf("Do = %v; want context.Canceled", err)
			}
			h.release[1] <- false
			if err := <-other; err != nil {
				t.Errorf("the other caller's Do = %v; want the value", err)
			}
		}},
		{"the group's life ends every call", func(t *testing.T, h *harness) {
			out := h.do(context.Background(), false)
			synctest.Wait()
			h.cancel()
			if err := <-out; !errors.Is(err, ErrClosed) {
				t.Errorf("Do = %v; want ErrClosed", err)
			}
			h.release[1] <- false
			h.g.Wait()
			if len(h.settled) != 0 {
				t.Errorf("settled %v after the group's life ended; want nothing", h.settled)
			}
			if _, err := h.g.Do(context.Background(), false, nil); !errors.Is(err, ErrClosed) {
				t.Errorf("Do after = %v; want ErrClosed", err)
			}
		}},
		{"Join waits for the call in flight, or starts none", func(t *testing.T, h *harness) {
			if _, _, ok := h.g.Join(context.Background()); ok || h.started.Load() != 0 {
				t.Errorf("Join with no call = %v, %d runs; want false and none", ok, h.started.Load())
			}
			out := h.do(context.Background(), false)
			synctest.Wait()
			joined := make(chan int, 1)
			go func() {
				v, _, _ := h.g.Join(context.Background())
				joined <- v
			}()
			synctest.Wait()
			h.release[1] <- false
			<-out
			if v := <-joined; v != 1 {
				t.Errorf("Join = %d; want the call's value, 1", v)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(time.Second, 3)
				defer func() {
					h.cancel()
					for _, ch := range h.release {
						select {
						case ch <- false:
						default:
						}
					}
					h.g.Wait()
				}()
				tt.test(t, h)
			})
		})
	}
}

// TestWaitAfterLife checks that no run starts once Wait, called after the
// group's life ended, has begun: under -race, a run's wg.Add racing with
// Wait is reported. Each iteration lets a Do and the end of the group run
// at once.
func TestWaitAfterLife(t *testing.T) {
	for range 20000 {
		life, cancel := context.WithCancel(context.Background())
		g := New(life, time.Hour, 1, func(ctx context.Context) int { <-ctx.Done(); return 0 },
			func(int) Outcome[int] { return Outcome[int]{Decides: true} })
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.Do(context.Background(), false, nil)
		}()
		cancel()
		g.Wait()
		<-done
		g.Wait() // every run, if one started, has returned
	}
}
