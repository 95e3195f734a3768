package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
)

// Every call the handler makes to its store goes through these wrappers,
// so that outages are tracked and logged once, whichever part of the
// handler (lookup, store, Vary index, purge, invalidation, admin API) hit
// them. The state is the handler's own: one backend's outage or burst of
// corrupt entries does not silence another's.

// Health state constants.
const (
	// writeBackoffMin is how long writes pause after a failed write while
	// reads work (a full disk, a store that refuses writes): misses skip
	// the store instead of failing on it one by one. Each further failed
	// attempt doubles the pause, up to writeBackoffMax.
	writeBackoffMin = 5 * time.Second
	writeBackoffMax = time.Minute
	// flapMemory is how long after writes recovered a new write failure
	// continues the back-off where it stopped instead of starting again at
	// writeBackoffMin, so that writes failing and working in turn log at
	// most one warning and one info line per writeBackoffMax.
	flapMemory = time.Minute
)

// recoveryPolicy says when a failing store (or failing writes) is reported
// recovered: after outage.DefaultQuiet without a failure and
// outage.DefaultSuccesses successful calls since the last one, or
// outage.DefaultLongQuiet without a failure. A store that fails one call
// in ten is one outage, not a line pair per failed call.
var recoveryPolicy = outage.Policy{}

// errWritesPaused is what put returns, without calling the store, while
// writes are paused after a failure.
var errWritesPaused = errors.New("cache storage writes paused after a failure")

// storeHealth is a handler's storage state: whether the store is failing
// (reads fail: an outage), and, apart from it, whether writes are failing
// while reads work.
type storeHealth struct {
	// reads tracks outages: a failed read, or a failed write while down.
	reads *outage.Tracker
	// down mirrors reads.Down() (set under the tracker's lock when the
	// state changes), for the Cache-Status detail.
	down atomic.Bool

	// writes tracks failing writes while reads work; writesPausedUntil
	// (Unix ns) is when put next calls the store.
	writes            *outage.Tracker
	writesPausedUntil atomic.Int64
	// writesRecovered is when writes were last reported working again
	// (Unix ns).
	writesRecovered atomic.Int64
	// mu orders the back-off updates of concurrent write failures (and is
	// taken before the writes tracker's lock, never inside it).
	mu           sync.Mutex
	writeBackoff time.Duration // the current pause, under mu

	// lastCorruptWarn is when a corrupt entry was last logged at Warn
	// (Unix ns). A format change or a foreign writer can make every entry
	// corrupt at once: one warning a minute says so, the others go to
	// Debug.
	lastCorruptWarn atomic.Int64
}

func newStoreHealth() *storeHealth {
	return &storeHealth{reads: outage.New(recoveryPolicy), writes: outage.New(recoveryPolicy)}
}

// get reads an entry; a corrupt one is deleted and reported as not found,
// an expired one is not found, a failing store is logged once per outage.
func (h *Handler) get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := h.load(ctx, key)
	switch {
	case err == nil:
		if e.Expired(h.now()) {
			return nil, storage.ErrNotFound
		}
		return e, nil
	case errors.Is(err, storage.ErrCorrupt):
		h.logCorrupt(err)
		_ = h.del(ctx, key)
		return nil, storage.ErrNotFound
	}
	return nil, err
}

// load reads an entry as the store returns it (ErrCorrupt included),
// tracking outages.
func (h *Handler) load(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := h.store.Get(ctx, key)
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrCorrupt) {
		h.storeUp()
		return e, err
	}
	h.storeFailed("get", err)
	return nil, err
}

// put stores an entry, unless writes are paused after a failure (then it
// returns errWritesPaused at once). A failed write while reads work pauses
// writes (see writeBackoffMin) rather than marking the store down.
func (h *Handler) put(ctx context.Context, key string, e *storage.Entry) error {
	if h.writesPaused() {
		return errWritesPaused
	}
	err := h.store.Put(ctx, key, e)
	switch {
	case err == nil:
		h.writeOK()
	case errors.Is(err, storage.ErrTooLarge):
	default:
		h.writeFailed("put", err)
	}
	return err
}

// del removes an entry. Deletes are never skipped (purges and invalidations
// must be tried), but they count as writes for the health state.
func (h *Handler) del(ctx context.Context, key string) error {
	err := h.store.Delete(ctx, key)
	if err == nil {
		h.writeOK()
	} else {
		h.writeFailed("delete", err)
	}
	return err
}

func (h *Handler) logCorrupt(err error) {
	now := time.Now().UnixNano()
	last := h.health.lastCorruptWarn.Load()
	if now-last >= int64(time.Minute) && h.health.lastCorruptWarn.CompareAndSwap(last, now) {
		h.logger.Warn("corrupt cache entries are being removed (more within a minute are logged at debug level)",
			zap.String("backend", h.backendName), zap.Error(err))
	} else if ce := h.logger.Check(zapcore.DebugLevel, "corrupt cache entry removed"); ce != nil {
		ce.Write(zap.String("backend", h.backendName), zap.Error(err))
	}
}

// notOutage reports whether err says nothing about the store's health: the
// caller went away (cancelled, not timed out), or the store has logged
// this outage itself (an error with a HealthLogged method returning true,
// such as the SQLite store's "cannot be opened").
func notOutage(err error) bool {
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var hl interface{ HealthLogged() bool }
	return errors.As(err, &hl) && hl.HealthLogged()
}

func (h *Handler) debugStoreError(op string, err error) {
	if ce := h.logger.Check(zapcore.DebugLevel, "cache storage error"); ce != nil {
		ce.Write(zap.String("backend", h.backendName), zap.String("op", op), zap.Error(err))
	}
}

// storeFailed records a failed read: the store is down (one Warn per
// outage).
func (h *Handler) storeFailed(op string, err error) {
	if notOutage(err) {
		h.debugStoreError(op, err)
		return
	}
	announced := h.health.reads.Fail(h.now(), func() {
		h.health.down.Store(true)
		if !h.quietStorage {
			h.logger.Warn("cache storage failing; requests go to the origin until it recovers",
				zap.String("backend", h.backendName), zap.String("op", op), zap.Error(err))
		}
	})
	if !announced || h.quietStorage {
		h.debugStoreError(op, err)
	}
}

// storeUp records a successful call. A store that was down is reported
// recovered after recoveryPolicy's quiet period.
func (h *Handler) storeUp() {
	if !h.health.reads.Down() {
		return
	}
	h.health.reads.Succeed(h.now(), func(r outage.Recovery) {
		h.health.down.Store(false)
		if !h.quietStorage {
			h.logger.Info("cache storage recovered", zap.String("backend", h.backendName),
				zap.Duration("down_for", r.DownFor), zap.Int64("failed_calls", r.Failures))
		}
	})
}

// writesPaused reports whether put must skip the store: writes failed and
// their back-off has not passed. Once it has, every put tries again until
// one of them succeeds or fails.
func (h *Handler) writesPaused() bool {
	return h.health.writes.Down() && h.now().UnixNano() < h.health.writesPausedUntil.Load()
}

// writeFailed records a failed write. While the store is down (reads fail
// too) it is part of that outage; otherwise writes fail while reads work:
// one Warn, and writes pause for a back-off that doubles with each failed
// attempt.
func (h *Handler) writeFailed(op string, err error) {
	if notOutage(err) {
		h.debugStoreError(op, err)
		return
	}
	now := h.now()
	hs := h.health
	if hs.reads.Down() {
		hs.reads.Fail(now, nil)
		h.debugStoreError(op, err)
		return
	}
	hs.mu.Lock()
	switch {
	case hs.writes.Down():
		hs.writeBackoff = min(2*hs.writeBackoff, writeBackoffMax)
	case hs.writesRecovered.Load() != 0 && now.UnixNano()-hs.writesRecovered.Load() < int64(flapMemory):
		hs.writeBackoff = min(max(2*hs.writeBackoff, writeBackoffMin), writeBackoffMax)
	default:
		hs.writeBackoff = writeBackoffMin
	}
	pause := hs.writeBackoff
	hs.writesPausedUntil.Store(now.Add(pause).UnixNano())
	// Under mu, so that the next failure sees the writes down and doubles
	// the pause.
	announced := hs.writes.Fail(now, func() {
		if !h.quietStorage {
			h.logger.Warn("cache storage writes failing (reads still work); responses are not stored, writes are tried again after a pause",
				zap.String("backend", h.backendName), zap.String("op", op), zap.Duration("pause", pause), zap.Error(err))
		}
	})
	hs.mu.Unlock()
	if !announced || h.quietStorage {
		h.debugStoreError(op, err)
	}
}

// writeOK records a successful write: the store answers (storeUp), and
// failing writes are reported working again after recoveryPolicy's quiet
// period.
func (h *Handler) writeOK() {
	h.storeUp()
	if !h.health.writes.Down() {
		return
	}
	now := h.now()
	h.health.writes.Succeed(now, func(r outage.Recovery) {
		h.health.writesRecovered.Store(now.UnixNano())
		if !h.quietStorage {
			h.logger.Info("cache storage writes work again", zap.String("backend", h.backendName),
				zap.Duration("failing_for", r.DownFor), zap.Int64("failed_writes", r.Failures))
		}
	})
}
