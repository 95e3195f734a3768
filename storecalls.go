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

// storeHealth is a handler's storage state.
type storeHealth struct {
	down atomic.Bool
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

func (h *Handler) put(ctx context.Context, key string, e *storage.Entry) error {
	err := h.store.Put(ctx, key, e)
	switch {
	case err == nil:
		h.storeUp()
	case errors.Is(err, storage.ErrTooLarge):
	default:
		h.storeFailed("put", err)
	}
	return err
}

func (h *Handler) del(ctx context.Context, key string) error {
	err := h.store.Delete(ctx, key)
	if err == nil {
		h.storeUp()
	} else {
		h.storeFailed("delete", err)
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

func (h *Handler) storeFailed(op string, err error) {
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
	if ce := h.logger.Check(zapcore.DebugLevel, "cache storage error"); ce != nil {
		ce.Write(zap.String("backend", h.backendName), zap.String("op", op), zap.Error(err))
	}
}

func (h *Handler) storeUp() {
	if h.health.down.Load() {
		h.health.mu.Lock()
		if h.health.down.CompareAndSwap(true, false) && !h.quietStorage {
			h.logger.Info("cache storage recovered", zap.String("backend", h.backendName))
		}
		h.health.mu.Unlock()
	}
}
