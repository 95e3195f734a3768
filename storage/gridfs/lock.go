package gridfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

// Locks (storage.Locker) are documents of a collection of their own,
// <bucket>_locks (see mongoconn.Locks, shared with the mongodb store), so
// that List, Stats and the sweeps of the entries never see them.

const (
	// updateLockTTL is how long an Update holds the key's update lock at
	// most (a holder that dies leaves it that long), and updateWait how
	// long an Update waits for the lock (the caller's context, the
	// handler's storage_timeout, usually ends the wait first). GridFS
	// updates take several round trips, so a burst of writers to one key
	// (40 in storagetest.UpdateAtomic) needs more than 10 s on a loaded
	// machine.
	updateLockTTL = 5 * time.Second
	updateWait    = 30 * time.Second
)

// observe records the outcome of a lock release.
func (b *bucket) observe(err error) { _ = b.health.Observe(err) }

// Lock implements storage.Locker with a unique insert.
func (g *GridFS) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	unlock, ok, err := g.shared.lock(ctx, name, ttl)
	_ = g.shared.health.Observe(err)
	return unlock, ok, err
}

func (b *bucket) lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	h, err := b.handles(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("gridfs lock: %w", err)
	}
	unlock, ok, err := h.locks.Lock(ctx, name, ttl, b.observe)
	if err != nil {
		return nil, false, fmt.Errorf("gridfs lock: %w", err)
	}
	return unlock, ok, nil
}

// Locked implements storage.Locker.
func (g *GridFS) Locked(ctx context.Context, name string) (bool, error) {
	held, err := g.shared.locked(ctx, name)
	_ = g.shared.health.Observe(err)
	return held, err
}

func (b *bucket) locked(ctx context.Context, name string) (bool, error) {
	h, err := b.handles(ctx)
	if err != nil {
		return false, fmt.Errorf("gridfs locked: %w", err)
	}
	held, err := h.locks.Locked(ctx, name)
	if err != nil {
		return false, fmt.Errorf("gridfs locked: %w", err)
	}
	return held, nil
}

// sweepLocks deletes the expired locks.
func (b *bucket) sweepLocks(ctx context.Context) error {
	h, err := b.handles(ctx)
	if err != nil {
		return err
	}
	return h.locks.Sweep(ctx)
}

// Update implements storage.Updater: under the key's update lock (a
// unique insert into <bucket>_locks, as the mongodb store's Update takes),
// read the entry, call fn and store its result through Put. Updates of one
// key are serialized across processes; a plain Put in between is not
// detected (the handler updates Vary indexes only through Update).
func (g *GridFS) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	return g.shared.update(ctx, key, fn, g.comp)
}

func (b *bucket) update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry, comp storage.Compression) error {
	h, err := b.handles(ctx)
	if err != nil {
		return b.health.Observe(fmt.Errorf("gridfs lock: %w", err))
	}
	unlock, err := h.locks.Wait(ctx, "update\x00"+key, updateLockTTL, time.Now().Add(updateWait), b.observe)
	if errors.Is(err, mongoconn.ErrLockWait) {
		return fmt.Errorf("gridfs storage: updating %q: the update lock is still held after %s", key, updateWait)
	}
	if err != nil && err == ctx.Err() { // Wait's pause gave up, not the server
		return err
	}
	if err != nil {
		return b.health.Observe(fmt.Errorf("gridfs lock: %w", err))
	}
	defer unlock()
	old, err := b.get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCorrupt):
		old = nil
	case err != nil:
		return b.health.Observe(err)
	}
	e := fn(old)
	if e == nil {
		return b.health.Observe(nil)
	}
	return b.health.Observe(b.put(ctx, key, e, comp))
}

var (
	_ storage.Locker  = (*GridFS)(nil)
	_ storage.Updater = (*GridFS)(nil)
)
