// Package outage tells an outage of a dependency (a storage backend) from
// its occasional failure, so that an operator reads one "unavailable" line
// and one "recovered" line per real outage instead of a pair per failed
// call.
//
// A Tracker goes down at the first failure and reports the recovery only
// after a quiet period: at least Quiet without a failure and at least
// Successes successful calls since the last failure, or LongQuiet without a
// failure whatever the number of calls (a quiet site makes few calls). A
// dependency failing one call in ten therefore stays down, which is what it
// is from the operator's point of view, and its recovery is reported once
// it has really stopped failing.
//
// The clock is the caller's: every method takes the current time, so the
// tracker can follow a handler's (test) clock.
package outage

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Policy.
const (
	DefaultQuiet     = 5 * time.Second
	DefaultSuccesses = 100
	DefaultLongQuiet = 10 * time.Minute
)

// Policy says when a tracker that is down reports the recovery.
type Policy struct {
	// Quiet is the least time without a failure. Default: DefaultQuiet.
	Quiet time.Duration
	// Successes is the least number of successful calls since the last
	// failure. Default: DefaultSuccesses.
	Successes int64
	// LongQuiet is the time without a failure after which the recovery is
	// reported however few calls succeeded. Default: DefaultLongQuiet.
	LongQuiet time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Quiet <= 0 {
		p.Quiet = DefaultQuiet
	}
	if p.Successes <= 0 {
		p.Successes = DefaultSuccesses
	}
	if p.LongQuiet <= 0 {
		p.LongQuiet = DefaultLongQuiet
	}
	return p
}

// Recovery describes an outage that ended.
type Recovery struct {
	// DownFor is the time from the first failure to the recovery.
	DownFor time.Duration
	// Failures is the number of failed calls during the outage.
	Failures int64
}

// Tracker is the state of one dependency. Its methods are safe for
// concurrent use. The zero value is not usable: call New.
type Tracker struct {
	policy Policy
	down   atomic.Bool

	mu          sync.Mutex
	since       time.Time // first failure of the current outage
	lastFailure time.Time
	successes   int64 // since lastFailure
	failures    int64 // during the current outage
}

// New returns a tracker that is up, with p's zero fields set to the
// defaults.
func New(p Policy) *Tracker {
	return &Tracker{policy: p.withDefaults()}
}

// Down reports whether an outage began and has not been reported
// recovered.
func (t *Tracker) Down() bool { return t.down.Load() }

// Fail records a failed call at now. If it begins an outage, Fail calls
// announce (when not nil) and returns true. announce runs under the
// tracker's lock, so the lines announcing an outage and its recovery are
// written in the order of the state changes.
func (t *Tracker) Fail(now time.Time, announce func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastFailure = now
	t.successes = 0
	t.failures++
	if t.down.Load() {
		return false
	}
	t.since = now
	t.failures = 1
	t.down.Store(true)
	if announce != nil {
		announce()
	}
	return true
}

// Succeed records a successful call at now. If it ends an outage (the
// policy's quiet period has passed), Succeed calls announce (when not nil)
// under the tracker's lock and returns true. While the tracker is up it
// costs one atomic load.
func (t *Tracker) Succeed(now time.Time, announce func(Recovery)) bool {
	if !t.down.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.down.Load() {
		return false
	}
	t.successes++
	quiet := now.Sub(t.lastFailure)
	if quiet < t.policy.LongQuiet && (quiet < t.policy.Quiet || t.successes < t.policy.Successes) {
		return false
	}
	t.down.Store(false)
	if announce != nil {
		announce(Recovery{DownFor: now.Sub(t.since), Failures: t.failures})
	}
	return true
}
