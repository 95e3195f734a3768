package mongodb

import (
	"context"
	"fmt"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

// Locks (storage.Locker) are documents of a collection of their own,
// <collection>_locks (see mongoconn.Locks), so that List, Stats and the
// sweeps of the entries never see them.

// locksSuffix names the lock collection after the entries'.
const locksSuffix = mongoconn.LocksSuffix

// locks returns the lock collection.
func (c *collection) locks(ctx context.Context) (mongoconn.Locks, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return mongoconn.Locks{}, err
	}
	return mongoconn.LocksOf(coll.Database(), c.name), nil
}

// observe records the outcome of a lock release.
func (c *collection) observe(err error) { _ = c.health.Observe(err) }

// Lock implements storage.Locker with a unique insert.
func (m *MongoDB) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	unlock, ok, err := m.shared.lock(ctx, name, ttl)
	_ = m.shared.health.Observe(err)
	return unlock, ok, err
}

func (c *collection) lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	locks, err := c.locks(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("mongodb lock: %w", err)
	}
	unlock, ok, err := locks.Lock(ctx, name, ttl, c.observe)
	if err != nil {
		return nil, false, fmt.Errorf("mongodb lock: %w", err)
	}
	return unlock, ok, nil
}

// Locked implements storage.Locker.
func (m *MongoDB) Locked(ctx context.Context, name string) (bool, error) {
	held, err := m.shared.locked(ctx, name)
	_ = m.shared.health.Observe(err)
	return held, err
}

func (c *collection) locked(ctx context.Context, name string) (bool, error) {
	locks, err := c.locks(ctx)
	if err != nil {
		return false, fmt.Errorf("mongodb locked: %w", err)
	}
	held, err := locks.Locked(ctx, name)
	if err != nil {
		return false, fmt.Errorf("mongodb locked: %w", err)
	}
	return held, nil
}

// createLockIndex creates the TTL index of the lock collection (see
// mongoconn.Locks.CreateIndex).
func (c *collection) createLockIndex(ctx context.Context) error {
	coll := c.coll.Load()
	if err := mongoconn.LocksOf(coll.Database(), c.name).CreateIndex(ctx); err != nil {
		return fmt.Errorf("creating the locks TTL index: %w", err)
	}
	return nil
}

// sweepLocks deletes the expired locks.
func (c *collection) sweepLocks(ctx context.Context) error {
	locks, err := c.locks(ctx)
	if err != nil {
		return err
	}
	return locks.Sweep(ctx)
}

var _ storage.Locker = (*MongoDB)(nil)
