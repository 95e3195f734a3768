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
	f = &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// release ends the leader's flight and wakes its waiters.
func (g *flightGroup) release(key string, f *flight) {
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
	close(f.done)
}

// running reports whether a flight for key is in progress.
func (g *flightGroup) running(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[key] != nil
}

// wait blocks until the flight ends (true), the timeout passes or ctx is
// done (false).
func (f *flight) wait(ctx context.Context, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
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
