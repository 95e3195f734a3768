package cache

import (
	"context"
	"sync"
	"time"
)

// flightGroup lets concurrent misses for one key wait for the single request
// that fetches it. Waiters do not receive the leader's response: when the
// leader is done they look the cache up again, so they only ever get what
// was stored for their own request (same key, matching Vary); if nothing
// usable was stored they fetch for themselves.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done chan struct{}
	once sync.Once

	// varied is closed when the leader's response header says it varies:
	// names are its Vary names and variant the leader's variant key, so
	// that waiters who select another variant stop waiting at once.
	varied   chan struct{}
	varyOnce sync.Once
	names    []string
	variant  string
}

// join makes the caller the leader for key (leader true; it must call
// release) or returns the running flight to wait on.
func (g *flightGroup) join(key string) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	if f := g.m[key]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{}), varied: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// release ends the leader's flight and wakes its waiters. It may be called
// more than once (early, when the response turns out not to be storable,
// and when the leader is done).
func (g *flightGroup) release(key string, f *flight) {
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
	f.once.Do(func() { close(f.done) })
}

// setVary records that the leader's response varies on names, the leader
// having selected variant.
func (f *flight) setVary(names []string, variant string) {
	f.varyOnce.Do(func() {
		f.names, f.variant = names, variant
		close(f.varied)
	})
}

// wait blocks until the flight ends (true), the timeout passes or ctx is
// done (false), or the leader's response turns out to vary on a field in
// which the waiter's request selects another variant (false: the leader's
// response is of no use to it). variantOf computes the waiter's variant key
// for the leader's Vary names.
func (f *flight) wait(ctx context.Context, timeout time.Duration, variantOf func(names []string) string) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	varied := f.varied
	for {
		select {
		case <-f.done:
			return true
		case <-varied:
			if variantOf != nil && variantOf(f.names) != f.variant {
				return false
			}
			varied = nil // the same variant: wait for it
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// passMemo remembers, for a short while, the keys whose last response could
// not be stored (private, Set-Cookie, no-store, too large…), so that
// concurrent misses for them go to the origin at once instead of queueing
// behind a fetch whose response they could not use anyway (Varnish calls
// this hit-for-miss). It is bounded: when full, it starts over.
type passMemo struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	passMemoTTL  = 30 * time.Second
	passMemoSize = 10000
)

func (p *passMemo) add(key string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= passMemoSize {
		p.m = make(map[string]time.Time)
	}
	p.m[key] = now.Add(passMemoTTL)
}

func (p *passMemo) remove(key string) {
	p.mu.Lock()
	delete(p.m, key)
	p.mu.Unlock()
}

func (p *passMemo) has(key string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.m[key]
	if ok && !now.Before(until) {
		delete(p.m, key)
		return false
	}
	return ok
}
