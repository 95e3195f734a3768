package redis

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// provisionOnly provisions cfg on its own Caddy context without registering
// cleanups: the reload tests call Cleanup themselves.
func provisionOnly(t *testing.T, cfg *Redis) *Redis {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	if err := cfg.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return cfg
}

// usable reports whether the handle's client is still open: without a
// server a call fails, but not with ErrClosed.
func usable(t *testing.T, r *Redis) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	_, err := r.Get(ctx, "probe")
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get without a server: %v, want a connection error", err)
	}
	return !errors.Is(err, goredis.ErrClosed)
}

// Two configs with the same identity share one client; the last Cleanup
// closes it. No server is needed (or contacted successfully).
func TestReloadSharesClient(t *testing.T) {
	addr := closedAddr(t)
	cfg := func(ns string) *Redis {
		return &Redis{Addresses: []string{addr}, Password: "hunter2-secret", DB: 2, Namespace: ns}
	}
	a := provisionOnly(t, cfg("old"))
	b := provisionOnly(t, cfg("old"))
	if a.shared != b.shared {
		t.Fatal("two handles with the same config got different clients")
	}
	if n, ok := clients.References(a.poolKey); !ok || n != 2 {
		t.Fatalf("pool references = %d, %v; want 2, true", n, ok)
	}
	if strings.Contains(a.poolKey, "hunter2-secret") {
		t.Fatalf("pool key holds the password in clear: %q", a.poolKey)
	}

	// A changed tunable (namespace, size, compression, grace) keeps the client.
	c := cfg("new")
	c.MaxEntrySize, c.Compression, c.StaleGrace = 1<<20, "off", caddy.Duration(time.Minute)
	c = provisionOnly(t, c)
	if c.shared != a.shared {
		t.Fatal("a changed namespace/max_entry_size/compression/stale_grace made a new client")
	}
	if c.KeyPrefix() != "new:e:" || a.KeyPrefix() != "old:e:" {
		t.Fatalf("key prefixes %q and %q, want new:e: and old:e:", c.KeyPrefix(), a.KeyPrefix())
	}
	// A changed identity (password, db, address) does not.
	for name, change := range map[string]func(*Redis){
		"password": func(r *Redis) { r.Password = "other" },
		"db":       func(r *Redis) { r.DB = 3 },
		"username": func(r *Redis) { r.Username = "u" },
		"tls":      func(r *Redis) { r.TLS = &TLSConfig{} },
		"address":  func(r *Redis) { r.Addresses = []string{closedAddr(t)} },
	} {
		d := cfg("old")
		change(d)
		d = provisionOnly(t, d)
		if d.shared == a.shared {
			t.Errorf("changing %s kept the same client", name)
		}
		if err := d.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	}

	if err := a.Cleanup(); err != nil {
		t.Fatalf("Cleanup a: %v", err)
	}
	if !usable(t, b) {
		t.Fatal("after cleaning up one of the handles, the other one's client is closed")
	}
	if err := c.Cleanup(); err != nil {
		t.Fatalf("Cleanup c: %v", err)
	}
	if !usable(t, b) {
		t.Fatal("after cleaning up two of three handles, the last one's client is closed")
	}
	key := b.poolKey
	if err := b.Cleanup(); err != nil {
		t.Fatalf("Cleanup b: %v", err)
	}
	if usable(t, b) {
		t.Fatal("after the last Cleanup, the client is still open")
	}
	if _, ok := clients.References(key); ok {
		t.Fatal("the pool still holds the client after the last Cleanup")
	}
	// Cleanup twice, and Cleanup of a handle that never provisioned, are no-ops.
	if err := b.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	if err := new(Redis).Cleanup(); err != nil {
		t.Fatalf("Cleanup without Provision: %v", err)
	}
}

// Provision returns without waiting on the network: the server here
// accepts connections but never answers, with dial and read timeouts of an
// hour, so a Provision that waited for a PING would hang the test.
func TestProvisionDoesNotWaitOnNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, never answer
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	r := provisionOnly(t, &Redis{
		Addresses:   []string{ln.Addr().String()},
		DialTimeout: caddy.Duration(time.Hour), ReadTimeout: caddy.Duration(time.Hour),
	})
	if r.shared == nil {
		t.Fatal("Provision returned without a client")
	}
	// A call still honours its ctx against a server that never answers.
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	_, err = r.Get(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get from a silent server: %v, want one wrapping context.DeadlineExceeded", err)
	}
	if err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// Provision against an address where nothing listens succeeds, and the
// background probe logs exactly one Warn.
func TestProvisionUnreachable(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	r := &Redis{Addresses: []string{closedAddr(t)}, Password: "pw-not-in-logs", logger: zap.New(core)}
	r = provisionOnly(t, r)
	t.Cleanup(func() { r.Cleanup() })
	deadline := time.Now().Add(30 * time.Second)
	for !r.shared.Down() {
		if time.Now().After(deadline) {
			t.Fatal("the start-up probe never marked the unreachable server down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 {
		t.Fatalf("got %d Warn logs, want 1: %v", len(warns), warns)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "pw-not-in-logs") {
			t.Fatalf("log message holds the password: %q", e.Message)
		}
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "pw-not-in-logs") {
				t.Fatalf("log field %s holds the password: %q", k, s)
			}
		}
	}
	// Further failing calls do not log again.
	for range 5 {
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		err := r.Put(ctx, "k", storagetest.Entry("k", 10))
		cancel()
		if err == nil {
			t.Fatal("Put without a server succeeded")
		}
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Fatalf("after more failing calls: %d Warn logs, want still 1", n)
	}
}
