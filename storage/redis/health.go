package redis

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// health remembers whether the shared client's last calls reached Redis, so
// an outage is logged once when it starts and once when it ends instead of
// once per request.
type health struct {
	down  atomic.Bool
	since atomic.Int64 // Unix nanoseconds of the last transition
}

// Down reports whether the last call that could tell found Redis
// unreachable.
func (c *client) Down() bool { return c.health.down.Load() }

// observe feeds the outcome of a call into the health state and logs a
// transition with logger: one Warn when Redis stops answering, one Info when
// it answers again. Only the call that flips the state logs.
func (c *client) observe(logger *zap.Logger, err error) {
	switch classify(err) {
	case reachable:
		if c.health.down.CompareAndSwap(true, false) {
			now := time.Now()
			downFor := now.Sub(time.Unix(0, c.health.since.Swap(now.UnixNano())))
			logger.Info("redis storage available again",
				zap.String("server", c.display),
				zap.Duration("down_for", downFor.Round(time.Millisecond)))
		}
	case unreachable:
		if c.health.down.CompareAndSwap(false, true) {
			c.health.since.Store(time.Now().UnixNano())
			logger.Warn("redis storage unavailable: cache lookups and stores fail (requests go to the origin) until it answers again",
				zap.String("server", c.display),
				zap.Error(err))
		}
	}
}

type outcome int

const (
	unknown     outcome = iota // says nothing about Redis (cancelled by the caller, client closed)
	reachable                  // Redis answered
	unreachable                // Redis did not answer
)

func classify(err error) outcome {
	if err == nil || errors.Is(err, goredis.Nil) {
		return reachable
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, goredis.ErrClosed) {
		return unknown
	}
	if _, ok := errors.AsType[goredis.Error](err); ok {
		for _, p := range unavailablePrefixes {
			if goredis.HasErrorPrefix(err, p) {
				return unreachable
			}
		}
		return reachable // any other error reply is still an answer
	}
	return unreachable
}

// unavailablePrefixes are error replies that mean Redis cannot serve this
// client at all (wrong credentials, loading, failing over, out of memory),
// which an operator must hear about like an outage.
var unavailablePrefixes = []string{
	"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "BUSY", "MASTERDOWN",
	"CLUSTERDOWN", "READONLY", "OOM", "MISCONF", "TRYAGAIN",
}
