// Package sweeper runs the background maintenance of a store: the periodic
// sweep of expired entries, work that a change asks for at once (an
// eviction after max_size shrank, access times to write), setup retried
// until it succeeds once (index creation), and cleanups that must not delay
// the request that needs them. Every backend with its own sweeper uses it,
// so that they stop, reschedule and report failures alike.
package sweeper

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrSkipped is returned by a job that did no maintenance this time (the
// store was not open, say): it is neither a failure nor a recovery.
var ErrSkipped = errors.New("sweeper: nothing done")

// Jobs is what a Loop runs. Every field is optional.
type Jobs struct {
	// First runs once when the loop starts, before the first wait (the
	// file store counts what is on disk). Ready is closed after it.
	First func(ctx context.Context) error
	// Round runs every interval.
	Round func(ctx context.Context) error
	// Kicked runs when Kick is called.
	Kicked func(ctx context.Context) error
	// Wait, when set, is how long to wait for the next round instead of
	// the interval (a store that is not open retries sooner or later).
	Wait func() time.Duration
	// Timeout bounds each call of First, Round and Kicked: a fixed
	// duration, or when RoundTimeout is set the shorter of the interval
	// and a minute. Zero: no bound beyond Stop.
	Timeout      time.Duration
	RoundTimeout bool
	// Report logs failures and recoveries; nil: the jobs log themselves.
	Report *Health
}

// Loop is one store's maintenance goroutine and its background tasks.
type Loop struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	interval atomic.Int64
	reset    chan struct{}
	kick     chan struct{}
	ready    chan struct{}
	rounds   chan struct{}

	mu         sync.Mutex // guards the setup state and wg.Add after Stop
	setupDone  bool
	setupBusy  bool
	setupTried time.Time
	retry      time.Duration
}

// New returns a Loop with the given sweep interval; setup attempts are
// retried after retry. Nothing runs until Start (Setup and Go work without
// it).
func New(interval, retry time.Duration) *Loop {
	l := &Loop{
		reset:  make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		ready:  make(chan struct{}),
		rounds: make(chan struct{}, 1),
		retry:  retry,
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.interval.Store(int64(interval))
	return l
}

// Start starts the maintenance goroutine. Call it once.
func (l *Loop) Start(j Jobs) {
	l.wg.Go(func() { l.run(j) })
}

func (l *Loop) run(j Jobs) {
	defer func() {
		select {
		case <-l.ready:
		default:
			close(l.ready)
		}
	}()
	call := func(fn func(context.Context) error) {
		if fn == nil || l.ctx.Err() != nil {
			return
		}
		ctx, cancel := l.ctx, context.CancelFunc(func() {})
		switch {
		case j.RoundTimeout:
			ctx, cancel = context.WithTimeout(l.ctx, min(l.Interval(), time.Minute))
		case j.Timeout > 0:
			ctx, cancel = context.WithTimeout(l.ctx, j.Timeout)
		}
		err := fn(ctx)
		cancel()
		if l.ctx.Err() == nil && !errors.Is(err, ErrSkipped) {
			j.Report.report(err)
		}
	}
	call(j.First)
	close(l.ready)
	wait := l.Interval
	if j.Wait != nil {
		wait = j.Wait
	}
	t := time.NewTimer(wait())
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.reset:
			t.Reset(wait())
		case <-l.kick:
			call(j.Kicked)
		case <-t.C:
			call(j.Round)
			t.Reset(wait())
			signal(l.rounds)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Context is cancelled by Stop: long maintenance (a walk of the files)
// started outside the loop stops with it.
func (l *Loop) Context() context.Context { return l.ctx }

// Ready is closed once First has run (or the loop stopped).
func (l *Loop) Ready() <-chan struct{} { return l.ready }

// Rounds receives (without blocking the loop) after each periodic round.
// It is for tests.
func (l *Loop) Rounds() <-chan struct{} { return l.rounds }

// Kick asks for Jobs.Kicked to run soon; kicks while one is pending merge.
func (l *Loop) Kick() { signal(l.kick) }

// Reschedule restarts the wait for the next round (Jobs.Wait changed its
// answer).
func (l *Loop) Reschedule() { signal(l.reset) }

// Interval returns the sweep interval.
func (l *Loop) Interval() time.Duration { return time.Duration(l.interval.Load()) }

// SetInterval changes the sweep interval (the running wait restarts with
// it) and returns the old one.
func (l *Loop) SetInterval(d time.Duration) time.Duration {
	old := time.Duration(l.interval.Swap(int64(d)))
	if old != d {
		signal(l.reset)
	}
	return old
}

// Stopped reports whether Stop was called.
func (l *Loop) Stopped() bool { return l.ctx.Err() != nil }

// Setup starts setup in the background unless it already succeeded, is
// running, or failed less than the retry interval ago. It never waits.
// setup runs under a one-minute timeout; done is called with its result.
func (l *Loop) Setup(setup func(ctx context.Context) error, done func(error)) {
	l.mu.Lock()
	if l.setupDone || l.setupBusy || time.Since(l.setupTried) < l.retry || l.ctx.Err() != nil {
		l.mu.Unlock()
		return
	}
	l.setupBusy = true
	l.setupTried = time.Now()
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, time.Minute)
		err := setup(ctx)
		cancel()
		l.mu.Lock()
		l.setupBusy = false
		l.setupDone = err == nil
		l.mu.Unlock()
		if done != nil && l.ctx.Err() == nil {
			done(err)
		}
	}()
}

// Go runs fn in the background under a timeout, unless Stop was called,
// and reports whether it started it. Stop cancels its context and waits
// for it. A Loop that only runs such tasks needs no Start.
func (l *Loop) Go(timeout time.Duration, fn func(ctx context.Context)) bool {
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return false
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, timeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// Stop ends the loop, any running setup and background task, and waits
// for them.
func (l *Loop) Stop() {
	l.mu.Lock() // no goroutine starts after this
	l.cancel()
	l.mu.Unlock()
	l.wg.Wait()
}

// Health logs a maintenance failure once, at Warn, and the first success
// after failures once, at Info: one pair of lines per outage, not one per
// round.
type Health struct {
	Logger    *zap.Logger
	Failed    string // message of the failure line
	Recovered string // message of the recovery line
	Fields    []zap.Field

	failing bool // the loop's goroutine only
}

func (h *Health) report(err error) {
	if h == nil {
		return
	}
	switch {
	case err != nil && !h.failing:
		h.Logger.Warn(h.Failed, append(slices.Clip(h.Fields), zap.Error(err))...)
	case err == nil && h.failing:
		h.Logger.Info(h.Recovered, h.Fields...)
	}
	h.failing = err != nil
}
