package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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
	// recoveryQuiet is how long a failing store (or failing writes) must
	// go without a failure before the recovery is logged, checked at the
	// next successful call: a store that fails every other call is one
	// outage, not a line pair per request.
	recoveryQuiet = 5 * time.Second
	// flapMemory is how long after writes recovered a new write failure
	// continues the back-off where it stopped instead of starting again at
	// writeBackoffMin, so that writes failing and working in turn log at
	// most one warning and one info line per writeBackoffMax.
	flapMemory = time.Minute
)

// errWritesPaused is what put returns, without calling the store, while
// writes are paused after a failure.
var errWritesPaused = errors.New("cache storage writes paused after a failure")

// storeHealth is a handler's storage state: whether the store is failing
// (reads fail: an outage), and, apart from it, whether writes are failing
// while reads work.
type storeHealth struct {
	// down is whether an outage was announced and its recovery not yet.
	down atomic.Bool
	// lastFailure is when a read last failed, or a write while down (Unix
	// ns, the handler's clock).
	lastFailure atomic.Int64

	// writesDown is whether failing writes were announced and their
	// recovery not yet; writesPausedUntil (Unix ns) is when put next
	// calls the store.
	writesDown        atomic.Bool
	writesPausedUntil atomic.Int64
	// under mu:
	writeBackoff     time.Duration // the current pause
	lastWriteFailure int64         // Unix ns
	writesRecovered  int64         // Unix ns of the last "writes work again"

	// mu orders each state change with its log line, so that concurrent
	// failures and recoveries cannot log out of order (leaving "failing"
	// as the last line while the store works, or the reverse).
	mu sync.Mutex
	// lastCorruptWarn is when a corrupt entry was last logged at Warn
	// (Unix ns). A format change or a foreign writer can make every entry
	// corrupt at once: one warning a minute says so, the others go to
	// Debug.
	lastCorruptWarn atomic.Int64
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
	h.health.lastFailure.Store(h.now().UnixNano())
	if !h.health.down.Load() {
		h.health.mu.Lock()
		changed := h.health.down.CompareAndSwap(false, true)
		if changed && !h.quietStorage {
			h.logger.Warn("cache storage failing; requests go to the origin until it recovers",
				zap.String("backend", h.backendName), zap.String("op", op), zap.Error(err))
		}
		h.health.mu.Unlock()
		if changed && !h.quietStorage {
			return
		}
	}
	h.debugStoreError(op, err)
}

// storeUp records a successful call. A store that was down is reported
// recovered once it has gone recoveryQuiet without a failure.
func (h *Handler) storeUp() {
	if !h.health.down.Load() {
		return
	}
	now := h.now().UnixNano()
	if now-h.health.lastFailure.Load() < int64(recoveryQuiet) {
		return
	}
	h.health.mu.Lock()
	if now-h.health.lastFailure.Load() >= int64(recoveryQuiet) && h.health.down.CompareAndSwap(true, false) && !h.quietStorage {
		h.logger.Info("cache storage recovered", zap.String("backend", h.backendName))
	}
	h.health.mu.Unlock()
}

// writesPaused reports whether put must skip the store: writes failed and
// their back-off has not passed. Once it has, every put tries again until
// one of them succeeds or fails.
func (h *Handler) writesPaused() bool {
	return h.health.writesDown.Load() && h.now().UnixNano() < h.health.writesPausedUntil.Load()
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
	if h.health.down.Load() {
		h.health.lastFailure.Store(now.UnixNano())
		h.debugStoreError(op, err)
		return
	}
	hs := h.health
	hs.mu.Lock()
	switch {
	case hs.writesDown.Load():
		hs.writeBackoff = min(2*hs.writeBackoff, writeBackoffMax)
	case hs.writesRecovered != 0 && now.UnixNano()-hs.writesRecovered < int64(flapMemory):
		hs.writeBackoff = min(max(2*hs.writeBackoff, writeBackoffMin), writeBackoffMax)
	default:
		hs.writeBackoff = writeBackoffMin
	}
	hs.lastWriteFailure = now.UnixNano()
	hs.writesPausedUntil.Store(now.Add(hs.writeBackoff).UnixNano())
	announce := hs.writesDown.CompareAndSwap(false, true) && !h.quietStorage
	if announce {
		h.logger.Warn("cache storage writes failing (reads still work); responses are not stored, writes are tried again after a pause",
			zap.String("backend", h.backendName), zap.String("op", op), zap.Duration("pause", hs.writeBackoff), zap.Error(err))
	}
	hs.mu.Unlock()
	if !announce {
		h.debugStoreError(op, err)
	}
}

// writeOK records a successful write: the store answers (storeUp), and
// failing writes are reported working again once recoveryQuiet has passed
// since the last failed one.
func (h *Handler) writeOK() {
	h.storeUp()
	if !h.health.writesDown.Load() {
		return
	}
	hs := h.health
	now := h.now().UnixNano()
	hs.mu.Lock()
	if now-hs.lastWriteFailure >= int64(recoveryQuiet) && hs.writesDown.CompareAndSwap(true, false) {
		hs.writesRecovered = now
		if !h.quietStorage {
			h.logger.Info("cache storage writes work again", zap.String("backend", h.backendName))
		}
	}
	hs.mu.Unlock()
}
