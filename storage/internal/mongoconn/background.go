package mongoconn

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Background runs the maintenance of one shared store: a periodic sweep
// with an interval that can change while it runs, and a setup step (index
// creation) that runs in the background until it succeeds once, at most
// one attempt at a time and not more often than every retry interval. Stop
// ends both and waits for them.
type Background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	interval atomic.Int64
	wake     chan struct{}

	mu         sync.Mutex // guards the setup state and wg.Add after Stop
	setupDone  bool
	setupBusy  bool
	setupTried time.Time
	retry      time.Duration
}

// NewBackground returns a Background that, once started, calls sweep every
// interval. Setup attempts are retried after retry.
func NewBackground(interval, retry time.Duration) *Background {
	b := &Background{wake: make(chan struct{}, 1), retry: retry}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.interval.Store(int64(interval))
	return b
}

// Start starts calling sweep every interval, each call under a timeout of
// the interval or a minute, whichever is shorter. Call it once.
func (b *Background) Start(sweep func(ctx context.Context)) {
	b.wg.Go(func() {
		for {
			t := time.NewTimer(b.Interval())
			select {
			case <-b.ctx.Done():
				t.Stop()
				return
			case <-b.wake:
				t.Stop()
				continue
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(b.ctx, min(b.Interval(), time.Minute))
			sweep(ctx)
			cancel()
		}
	})
}

// Interval returns the sweep interval.
func (b *Background) Interval() time.Duration { return time.Duration(b.interval.Load()) }

// SetInterval changes the sweep interval (the running wait restarts with
// it) and returns the old one.
func (b *Background) SetInterval(d time.Duration) time.Duration {
	old := time.Duration(b.interval.Swap(int64(d)))
	if old != d {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return old
}

// Stopped reports whether Stop was called.
func (b *Background) Stopped() bool { return b.ctx.Err() != nil }

// Setup starts setup in the background unless it already succeeded, is
// running, or failed less than the retry interval ago. It never waits.
// setup runs under a one-minute timeout; done is called with its result.
func (b *Background) Setup(setup func(ctx context.Context) error, done func(error)) {
	b.mu.Lock()
	if b.setupDone || b.setupBusy || time.Since(b.setupTried) < b.retry || b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	b.setupBusy = true
	b.setupTried = time.Now()
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		err := setup(ctx)
		cancel()
		b.mu.Lock()
		b.setupBusy = false
		b.setupDone = err == nil
		b.mu.Unlock()
		if done != nil && b.ctx.Err() == nil {
			done(err)
		}
	}()
}

// Go runs fn in the background under a timeout, unless Stop was called.
// Stop cancels its context and waits for it. It is for cleanups that must
// not delay the request that needs them.
func (b *Background) Go(timeout time.Duration, fn func(ctx context.Context)) {
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, timeout)
		defer cancel()
		fn(ctx)
	}()
}

// Stop ends the sweeps and any running setup and waits for them.
func (b *Background) Stop() {
	b.mu.Lock() // no goroutine starts after this
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
}
