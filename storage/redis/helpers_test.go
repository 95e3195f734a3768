package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testservers.KillAll()
	os.Exit(code)
}

var bg = context.Background()

// provision provisions cfg on a fresh Caddy context and registers its
// cleanup (the namespace is cleared first, while the client is still open).
func provision(t testing.TB, cfg *Redis) *Redis {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	if err := cfg.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	t.Cleanup(func() {
		if cfg.poolKey == "" {
			return
		}
		if err := cfg.Clear(bg); err != nil {
			t.Errorf("Clear: %v", err)
		}
		if err := cfg.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return cfg
}

// uniqueNamespace returns a namespace no other test uses.
func uniqueNamespace(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t-" + hex.EncodeToString(b)
}

// corrupt overwrites the stored bytes of key, keeping its TTL.
func corrupt(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	r := s.(*Redis)
	if err := r.Client().Set(bg, r.KeyPrefix()+key, raw, goredis.KeepTTL).Err(); err != nil {
		t.Fatalf("corrupting %q: %v", key, err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(testservers.FreePorts(t, 1)[0])
}
