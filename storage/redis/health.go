package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/outage"
)

// Down reports whether an outage of Redis began and is not over.
func (c *client) Down() bool { return c.health.Down() }

// observe feeds the outcome of a call into the health state and logs with
// logger: one Warn when Redis stops answering, one Info when the outage is
// over (health.RecoveryPolicy), so that a server failing now and then is
// logged as one outage, not as a pair of lines per failure.
func (c *client) observe(logger *zap.Logger, err error) {
	switch classify(err) {
	case reachable:
		c.health.Succeed(time.Now(), func(r outage.Recovery) {
			logger.Info("redis storage available again",
				zap.String("server", c.display),
				zap.Duration("down_for", r.DownFor.Round(time.Millisecond)),
				zap.Int64("failed_calls", r.Failures))
		})
	case unreachable:
		c.health.Fail(time.Now(), func() {
			logger.Warn("redis storage unavailable: cache lookups and stores fail (requests go to the origin) until it answers again",
				zap.String("server", c.display),
				zap.Error(err))
		})
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
