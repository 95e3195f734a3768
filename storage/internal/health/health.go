// Package health tracks whether a storage server is reachable, from the
// outcome of the calls made to it, and logs the transitions: one warning when
// calls start failing and one info message when they work again, instead of
// one line per failed request.
package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
)

// Tracker is the up/down state of one storage server (or one store on it).
// It starts up. The zero value is not usable: create one with New. A Tracker
// is safe for concurrent use.
type Tracker struct {
	what   string // e.g. "mongodb storage caddy_cache.responses on 127.0.0.1:27017"
	logger atomic.Pointer[zap.Logger]

	mu   sync.Mutex // serialises transitions so their log lines come in order
	down atomic.Bool
}

// New returns a Tracker that logs to logger and names the server what in
// its messages. what must not contain secrets.
func New(logger *zap.Logger, what string) *Tracker {
	t := &Tracker{what: what}
	t.SetLogger(logger)
	return t
}

// SetLogger replaces the logger used for later transitions. Stores call it
// on every Provision, so a shared tracker logs through the newest config.
func (t *Tracker) SetLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	t.logger.Store(l)
}

// Down reports whether the last counted call failed.
func (t *Tracker) Down() bool { return t.down.Load() }

// Observe records the outcome of one call and returns err unchanged.
//
// nil and the storage sentinels ErrNotFound, ErrCorrupt and ErrTooLarge
// count as success (the server answered). An error caused by the caller
// cancelling its context counts as nothing: the caller went away, which says
// nothing about the server. Every other error, including a deadline that
// expired while waiting for the server, counts as failure.
func (t *Tracker) Observe(err error) error {
	switch {
	case err == nil, errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCorrupt), errors.Is(err, storage.ErrTooLarge):
		if t.down.Load() {
			t.mu.Lock()
			if t.down.CompareAndSwap(true, false) {
				t.logger.Load().Info("storage reachable again", zap.String("storage", t.what))
			}
			t.mu.Unlock()
		}
	case errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// The caller gave up; not the server's fault.
	default:
		if !t.down.Load() {
			t.mu.Lock()
			if t.down.CompareAndSwap(false, true) {
				t.logger.Load().Warn("storage unavailable; requests go to the origin until it is back",
					zap.String("storage", t.what), zap.Error(err))
			}
			t.mu.Unlock()
		}
	}
	return err
}
