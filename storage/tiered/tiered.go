// Package tiered puts a small, fast store (the hot tier, normally the
// in-process memory store) in front of a larger or slower one (the cold
// tier: SQLite, files, a remote server), so frequent hits do not touch the
// cold store.
//
// The cold store is the authority: every write goes there first, and the hot
// tier only ever holds copies of what the cold store held. A delete or purge
// made through the tiered store removes the hot copy even when the cold
// store fails, and a hot copy is never re-created from a cold read that
// raced with a delete or a newer write made through the same tiered store.
//
// With a cold store shared by several processes (a remote server), a delete
// made in another process does not reach this hot tier by itself: the
// handler carries it (DropHot) and bypasses the hot tier while it cannot
// (SetBypass).
package tiered

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/caddycache/caddy-cache/storage"
)

// New returns a store that reads hot before cold and keeps hot a copy of
// what it reads from cold. The result implements storage.Lister and
// storage.Statser exactly when cold does, delegating to it.
//
//   - Get: hot first; on a hot miss, cold, and a cold hit is copied into hot
//     (with the entry's own Expires).
//   - Put: cold first; only when cold succeeded is the entry put in hot.
//     When cold fails, the hot copy of the key is dropped, so hot never
//     holds something cold may not.
//   - Delete: cold, then hot, always (even when cold fails, and ignoring the
//     cancellation of ctx for the hot tier); the error is cold's.
//
// Two concurrent Puts of one key may leave hot and cold holding different
// ones of the two entries until the hot copy expires or is evicted; both
// were valid responses for the key.
func New(hot, cold storage.Store) storage.Store {
	t := &Tiered{hot: hot, cold: cold, seed: maphash.MakeSeed()}
	l, isLister := cold.(storage.Lister)
	s, isStatser := cold.(storage.Statser)
	switch {
	case isLister && isStatser:
		return &listerStatser{t, l, s}
	case isLister:
		return &lister{t, l}
	case isStatser:
		return &statser{t, s}
	}
	return t
}

// stripes is the number of key stripes for ordering hot-tier updates.
const stripes = 256

// Tiered is the store returned by New (possibly inside a wrapper that adds
// List and Stats). Use New to create one.
type Tiered struct {
	hot, cold storage.Store
	seed      maphash.Seed
	// bypass, when set and true, makes the store skip the hot tier (reads
	// go to cold, nothing is copied into hot): the hot tier's copies may be
	// stale because invalidations from other processes cannot be received.
	bypass func() bool
	// Each stripe orders the hot-tier updates of its keys: writes and
	// deletes bump gen under mu, and a cold read is copied into hot only if
	// gen did not move while it was read.
	stripe [stripes]struct {
		mu  sync.Mutex
		gen atomic.Uint64
	}
}

func (t *Tiered) stripeOf(key string) int {
	return int(maphash.String(t.seed, key) % stripes)
}

// Hot returns the hot tier.
func (t *Tiered) Hot() storage.Store { return t.hot }

// DropHot removes the hot copy of key, as a delete through this store
// would, without touching cold: for invalidations made by other processes
// in the cold store already.
func (t *Tiered) DropHot(key string) {
	s := &t.stripe[t.stripeOf(key)]
	s.mu.Lock()
	s.gen.Add(1)
	_ = t.hot.Delete(context.Background(), key)
	s.mu.Unlock()
}

// Cold returns the cold tier.
func (t *Tiered) Cold() storage.Store { return t.cold }

// SetBypass installs the check that makes the store skip its hot tier.
// Call it before the store is used.
func (t *Tiered) SetBypass(bypass func() bool) { t.bypass = bypass }

func (t *Tiered) hotOff() bool { return t.bypass != nil && t.bypass() }

// Get implements storage.Store.
func (t *Tiered) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if t.hotOff() {
		return t.cold.Get(ctx, key)
	}
	e, err := t.hot.Get(ctx, key)
	if err == nil {
		return e, nil
	}
	if errors.Is(err, storage.ErrCorrupt) {
		_ = t.hot.Delete(context.WithoutCancel(ctx), key)
	}
	s := &t.stripe[t.stripeOf(key)]
	gen := s.gen.Load()
	e, err = t.cold.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.gen.Load() == gen {
		// Nothing was written or deleted through this store since the
		// cold read began: the copy cannot resurrect a deleted entry.
		// Errors (too large for hot, cancelled) just leave no copy.
		_ = t.hot.Put(ctx, key, e)
	}
	s.mu.Unlock()
	return e, nil
}

// Put implements storage.Store.
func (t *Tiered) Put(ctx context.Context, key string, e *storage.Entry) error {
	err := t.cold.Put(ctx, key, e)
	s := &t.stripe[t.stripeOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	if err != nil {
		_ = t.hot.Delete(context.WithoutCancel(ctx), key)
		return err
	}
	if t.hotOff() {
		_ = t.hot.Delete(context.WithoutCancel(ctx), key)
		return nil
	}
	if herr := t.hot.Put(ctx, key, e); herr != nil {
		// Too large for hot, or cancelled: make sure no older copy stays.
		_ = t.hot.Delete(context.WithoutCancel(ctx), key)
	}
	return nil
}

// Delete implements storage.Store.
func (t *Tiered) Delete(ctx context.Context, key string) error {
	err := t.cold.Delete(ctx, key)
	s := &t.stripe[t.stripeOf(key)]
	s.mu.Lock()
	s.gen.Add(1)
	herr := t.hot.Delete(context.WithoutCancel(ctx), key)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return herr
}

// DeleteMany implements storage.BatchDeleter: it removes keys from cold in
// one batch when cold is a BatchDeleter, else with one Delete per key that
// goes on past a failed one (as the handler's own loop does) and returns
// the first error, and drops their hot copies as Delete does, also when
// cold failed part-way.
func (t *Tiered) DeleteMany(ctx context.Context, keys []string) error {
	var err error
	if bd, ok := t.cold.(storage.BatchDeleter); ok {
		err = bd.DeleteMany(ctx, keys)
	} else {
		for _, k := range keys {
			if derr := t.cold.Delete(ctx, k); derr != nil && err == nil {
				err = derr
			}
		}
	}
	for _, k := range keys {
		t.DropHot(k)
	}
	return err
}

type lister struct {
	*Tiered
	l storage.Lister
}

// List implements storage.Lister by listing the cold tier.
func (t *lister) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return t.l.List(ctx, prefix, fn)
}

type statser struct {
	*Tiered
	s storage.Statser
}

// Stats implements storage.Statser with the cold tier's stats.
func (t *statser) Stats(ctx context.Context) (storage.Stats, error) {
	return t.s.Stats(ctx)
}

type listerStatser struct {
	*Tiered
	l storage.Lister
	s storage.Statser
}

// List implements storage.Lister by listing the cold tier.
func (t *listerStatser) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return t.l.List(ctx, prefix, fn)
}

// Stats implements storage.Statser with the cold tier's stats.
func (t *listerStatser) Stats(ctx context.Context) (storage.Stats, error) {
	return t.s.Stats(ctx)
}

// Interface guards.
var (
	_ storage.Store   = (*Tiered)(nil)
	_ storage.Lister  = (*lister)(nil)
	_ storage.Statser = (*statser)(nil)
	_ storage.Lister  = (*listerStatser)(nil)
	_ storage.Statser = (*listerStatser)(nil)
)
