package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// callWithin runs call with a ctx of timeout and fails the test if it has
// not returned well after that deadline. The client's own timeouts are an
// hour in this test, so returning at all shows the ctx is honoured.
func callWithin(t *testing.T, timeout time.Duration, what string, call func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout + 20*time.Second):
		t.Fatalf("%s hung 20s past its ctx deadline", what)
		return nil
	}
}

func TestOutageAndRecovery(t *testing.T) {
	srv := testservers.Redis(t)
	core, logs := observer.New(zapcore.InfoLevel)
	r := provision(t, &Redis{
		Addresses:   []string{srv.Addr},
		Password:    "",
		Namespace:   uniqueNamespace(t),
		DialTimeout: caddy.Duration(time.Hour),
		ReadTimeout: caddy.Duration(time.Hour),
		logger:      zap.New(core),
	})

	before := storagetest.Entry("before", 100)
	if err := r.Put(bg, "before", before); err != nil {
		t.Fatalf("Put while Redis runs: %v", err)
	}
	if _, err := r.Get(bg, "before"); err != nil {
		t.Fatalf("Get while Redis runs: %v", err)
	}

	srv.Stop(t)
	for i := range 8 {
		err := callWithin(t, 300*time.Millisecond, "Get during the outage", func(ctx context.Context) error {
			_, err := r.Get(ctx, "before")
			return err
		})
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get %d during the outage: %v, want a connection or timeout error", i, err)
		}
		err = callWithin(t, 300*time.Millisecond, "Put during the outage", func(ctx context.Context) error {
			return r.Put(ctx, "during", storagetest.Entry("during", 100))
		})
		if err == nil {
			t.Fatalf("Put %d during the outage succeeded", i)
		}
	}
	if !r.shared.Down() {
		t.Fatal("the client is not marked down during the outage")
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Fatalf("during the outage: %d Warn logs, want 1: %v", n, logs.All())
	}
	if n := logs.FilterLevelExact(zapcore.InfoLevel).Len(); n != 0 {
		t.Fatalf("during the outage: %d Info logs, want 0: %v", n, logs.All())
	}

	srv.Start(t)
	after := storagetest.Entry("after", 100)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := callWithin(t, time.Second, "Put after the restart", func(ctx context.Context) error {
			return r.Put(ctx, "after", after)
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put still failing 60s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := r.Get(bg, "after")
	if err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
	if d := storagetest.Diff(after, got, 0); d != "" {
		t.Fatalf("Get after recovery returned a different entry: %s", d)
	}
	// The restarted server is empty (no persistence): a miss, not an error.
	if _, err := r.Get(bg, "before"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of an entry lost in the restart: %v, want ErrNotFound", err)
	}
	if r.shared.Down() {
		t.Fatal("the client is still marked down after recovery")
	}

	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	infos := logs.FilterLevelExact(zapcore.InfoLevel).All()
	if len(warns) != 1 || len(infos) != 1 {
		t.Fatalf("got %d Warn and %d Info logs, want exactly 1 of each: %v", len(warns), len(infos), logs.All())
	}
	for _, e := range append(warns, infos...) {
		if got := e.ContextMap()["server"]; got != srv.Addr {
			t.Errorf("log %q: server field %v, want %s", e.Message, got, srv.Addr)
		}
	}
	if _, ok := infos[0].ContextMap()["down_for"]; !ok {
		t.Errorf("recovery log has no down_for field: %v", infos[0].ContextMap())
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want outcome
	}{
		{"nil", nil, reachable},
		{"cancelled by the caller", context.Canceled, unknown},
		{"deadline", context.DeadlineExceeded, unreachable},
		{"connection refused", errors.New("dial tcp: connection refused"), unreachable},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
}
