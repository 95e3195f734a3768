// Package storetest has the helpers that the storage backends' own tests
// share: provisioning a module as Caddy does, unique names, and the steps
// of an outage-and-recovery test against a real server. Only tests import
// it.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/health"
)

// Module is a storage module as Caddy loads it.
type Module interface {
	Provision(caddy.Context) error
	Validate() error
}

// Provision provisions m on a fresh Caddy context and validates it, as
// Caddy does when it loads a config; the context is cancelled when the test
// ends. Releasing m is the caller's business.
// QuickRecovery makes the backends' health trackers report an outage over
// at the first successful call, as the outage tests of every backend
// expect (ExpectOutageLogged); the quiet period itself is tested in
// internal/outage and storage/internal/health. Call it from TestMain.
func QuickRecovery() {
	health.RecoveryPolicy = outage.Policy{Quiet: time.Nanosecond, Successes: 1}
}

func Provision(t testing.TB, m Module) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// UniqueName returns prefix followed by 12 random hex digits: a collection,
// bucket or namespace name no other test uses.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// ObservedLogger returns a logger that records lines at level and above,
// and the record.
func ObservedLogger(level zapcore.Level) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(level)
	return zap.New(core), logs
}

// Op is one store call under a context.
type Op func(ctx context.Context) error

// Ops returns the calls an outage test makes on s: Get of getKey, Put of e
// under putKey, Delete of "other", and List and Stats. s must implement
// storage.Lister and storage.Statser.
func Ops(s storage.Store, getKey, putKey string, e *storage.Entry) map[string]Op {
	return map[string]Op{
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, getKey); return err },
		"Put":    func(ctx context.Context) error { return s.Put(ctx, putKey, e) },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "other") },
		"List": func(ctx context.Context) error {
			return s.(storage.Lister).List(ctx, "", func(string, *storage.Entry) error { return nil })
		},
		"Stats": func(ctx context.Context) error { _, err := s.(storage.Statser).Stats(ctx); return err },
	}
}

// ExpectFailures calls every op rounds times, each under a 300ms deadline,
// and fails the test unless each call fails with something other than
// storage.ErrNotFound (the server is down: a miss would be a lie).
func ExpectFailures(t testing.TB, ops map[string]Op, rounds int) {
	t.Helper()
	for range rounds {
		for name, op := range ops {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := op(ctx)
			cancel()
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s with the server stopped: %v, want a failure", name, err)
			}
		}
	}
}

// Retry calls op, each attempt under a deadline of attempt, until it
// succeeds or for at most within; it returns the last error.
func Retry(within, attempt time.Duration, op Op) error {
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), attempt)
		err = op(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// ExpectSuccess calls every op once and fails the test on any error.
func ExpectSuccess(t testing.TB, ops map[string]Op) {
	t.Helper()
	for name, op := range ops {
		if err := op(context.Background()); err != nil {
			t.Fatalf("%s after recovery: %v", name, err)
		}
	}
}

// ExpectOutageLogged fails the test unless logs hold exactly one
// "storage unavailable" warning and one "storage reachable again" info
// line: one pair per outage, not one line per failed call.
func ExpectOutageLogged(t testing.TB, logs *observer.ObservedLogs) {
	t.Helper()
	warn := logs.FilterMessageSnippet("storage unavailable").All()
	info := logs.FilterMessageSnippet("storage reachable again").All()
	if len(warn) != 1 || len(info) != 1 {
		t.Fatalf("got %d warnings and %d recoveries logged, want 1 and 1", len(warn), len(info))
	}
	if warn[0].Level != zapcore.WarnLevel || info[0].Level != zapcore.InfoLevel {
		t.Fatalf("levels: %v and %v, want warn and info", warn[0].Level, info[0].Level)
	}
}
