package cache

import (
	"sync"
	"time"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// Coalescing across instances: on a store that can hold locks
// (storage.Locker: Redis), the request that leads the misses for a key in
// its process also takes the store's lock for the key. Leaders in other
// processes that find it taken wait for the stored response instead of
// fetching: they read the store every clusterPoll until the entry is there
// (served if fresh), the lock is gone (the holder finished, failed, or got a
// response it could not store: they fetch themselves), or lock_timeout
// passes. Waiters only ever read what was stored for their own request, so
// a private or otherwise unstorable response is never handed to another
// client. A lock expires after lock_timeout, so a holder that dies keeps
// nobody waiting longer. When the store fails, coalescing stays within the
// process, at a cost of at most storage_timeout.

// clusterPoll is how often a waiting instance reads the store.
const clusterPoll = 25 * time.Millisecond

// clusterLock is the lock an exchange holds for its key, released once.
type clusterLock struct {
	once   sync.Once
	unlock func()
}

func (l *clusterLock) release() {
	if l != nil {
		l.once.Do(l.unlock)
	}
}

// waitForCluster takes the store's lock for the flight key fk, or waits for
// the instance holding it. It reports whether it served the request (a
// hit stored by the other instance), with serve's result.
func (x *exchange) waitForCluster(locker storage.Locker, fk string) (bool, error) {
	h := x.h
	ttl := time.Duration(h.LockTimeout)
	ctx, cancel := h.storageContext(x.r.Context())
	unlock, ok, err := locker.Lock(ctx, fk, ttl)
	cancel()
	switch {
	case err != nil:
		return false, nil // the store fails: coalesce within the process only
	case ok:
		x.lock = &clusterLock{unlock: unlock}
		return false, nil // this instance fetches
	}
	deadline := time.Now().Add(ttl)
	t := time.NewTicker(clusterPoll)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-x.r.Context().Done():
			return false, nil
		case <-t.C:
		}
		if served, err := x.serveIfStored(); served {
			return true, err
		}
		ctx, cancel := h.storageContext(x.r.Context())
		held, err := locker.Locked(ctx, fk)
		cancel()
		if err != nil || !held {
			// done, failed or unstorable: one last look, then fetch
			served, err := x.serveIfStored()
			return served, err
		}
	}
	return false, nil
}

// serveIfStored serves a fresh stored response for the request, if there
// is one now.
func (x *exchange) serveIfStored() (bool, error) {
	h := x.h
	ctx, cancel := h.storageContext(x.r.Context())
	x.lookup(ctx)
	cancel()
	if e := x.stored; e != nil {
		if use, _, age := h.reuse(e, x.prepared(e), x.reqCC, h.now()); use == policy.UseFresh {
			return true, x.serveStored(e, age, statusHit, "")
		}
		x.useStale(e)
	}
	return false, nil
}

// releaseLock lets the other instances go on: called when the response
// turns out not to be storable and when the exchange ends.
func (x *exchange) releaseLock() {
	if x.lock != nil {
		x.lock.release()
	}
}

// lockerOf returns the store's Locker, if it has one and wants it used (a
// SQLite file only when it is marked shared: a lock costs a write there).
func lockerOf(st storage.Store) storage.Locker {
	l, _ := st.(storage.Locker)
	if p, ok := st.(interface{ LocksAcrossProcesses() bool }); ok && !p.LocksAcrossProcesses() {
		return nil
	}
	return l
}
