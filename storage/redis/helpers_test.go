package redis

import (
	"context"
	"os"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
)

func TestMain(m *testing.M) {
	storetest.QuickRecovery()
	code := m.Run()
	testservers.KillAll()
	os.Exit(code)
}

var bg = context.Background()

// provision provisions cfg on a fresh Caddy context and registers its
// cleanup (the namespace is cleared first, while the client is still open).
func provision(t testing.TB, cfg *Redis) *Redis {
	t.Helper()
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	storetest.Provision(t, cfg)
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
	return storetest.UniqueName(t, "t-")
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
