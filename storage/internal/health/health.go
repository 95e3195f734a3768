// Package health tracks whether a storage server is reachable, from the
// outcome of the calls made to it, and logs the outages: one warning when
// calls start failing and one info message when they have stopped failing
// (internal/outage: a quiet period of a few seconds and enough successful
// calls), instead of one line per failed request or a pair per failure when
// a server fails now and then.
package health

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
)

// Tracker is the up/down state of one storage server (or one store on it).
// It starts up. The zero value is not usable: create one with New. A Tracker
// is safe for concurrent use.
type Tracker struct {
	what   string // e.g. "mongodb storage caddy_cache.responses on 127.0.0.1:27017"
	logger atomic.Pointer[zap.Logger]
	out    *outage.Tracker
	now    func() time.Time
}

// RecoveryPolicy says when an outage of a storage server is over: zero
// fields are internal/outage's defaults (a few seconds without a failure
// and enough successful calls). It is the policy of New and of the redis
// backend's client; the backends' tests shorten it.
var RecoveryPolicy outage.Policy

// New returns a Tracker that logs to logger and names the server what in
// its messages, with RecoveryPolicy. what must not contain secrets.
func New(logger *zap.Logger, what string) *Tracker {
	return NewWithPolicy(logger, what, RecoveryPolicy)
}

// NewWithPolicy is New with the policy that says when an outage is over.
func NewWithPolicy(logger *zap.Logger, what string, p outage.Policy) *Tracker {
	t := &Tracker{what: what, out: outage.New(p), now: time.Now}
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

// Down reports whether an outage began (a counted call failed) and has not
// been reported over.
func (t *Tracker) Down() bool { return t.out.Down() }

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
		t.out.Succeed(t.now(), func(r outage.Recovery) {
			t.logger.Load().Info("storage reachable again", zap.String("storage", t.what),
				zap.Duration("down_for", r.DownFor.Round(time.Millisecond)), zap.Int64("failed_calls", r.Failures))
		})
	case errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// The caller gave up; not the server's fault.
	default:
		t.out.Fail(t.now(), func() {
			t.logger.Load().Warn("storage unavailable; requests go to the origin until it is back",
				zap.String("storage", t.what), zap.Error(err))
		})
	}
	return err
}
