package cache

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
)

func init() {
	caddy.RegisterModule(new(countingStore))
}

// countingStore is a test-only "remote" backend: a memory cache that counts
// the calls it gets, to see what the hot tier keeps away from it.
type countingStore struct {
	c *memory.Cache
}

var countingGets atomic.Int64

func (*countingStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.counting", New: func() caddy.Module { return new(countingStore) }}
}

func (s *countingStore) Provision(caddy.Context) error { s.c = memory.New(1 << 20); return nil }
func (s *countingStore) Cleanup() error                { return s.c.Destruct() }
func (s *countingStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	countingGets.Add(1)
	return s.c.Get(ctx, key)
}

func (s *countingStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	return s.c.Put(ctx, key, e)
}

func (s *countingStore) Delete(ctx context.Context, key string) error { return s.c.Delete(ctx, key) }

func TestHotTierServesHitsAndForgetsDeletes(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "counting"}, "memory": 1048576}`, fixed("Cache-Control", "max-age=60"))
	if env.h.hot == nil {
		t.Fatal("no hot tier in front of a non-memory store")
	}
	wantBody(t, env.get("/"), "body-1")
	before := countingGets.Load()
	for i := 0; i < 5; i++ {
		r := env.get("/")
		wantBody(t, r, "body-1")
		wantStatus(t, r, "hit")
	}
	if n := countingGets.Load() - before; n != 0 {
		t.Fatalf("hits went to the main store %d times", n)
	}
	// an invalidation through this Caddy empties the hot tier too
	if r := env.do(http.MethodPut, "/"); r.status != http.StatusOK {
		t.Fatalf("PUT status %d", r.status)
	}
	wantBody(t, env.get("/"), "body-3")
}

func TestHotTierOff(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "counting"}, "memory": -1}`, fixed("Cache-Control", "max-age=60"))
	if env.h.hot != nil {
		t.Fatal("hot tier present with memory -1")
	}
	env.get("/")
	before := countingGets.Load()
	wantBody(t, env.get("/"), "body-1")
	if countingGets.Load() == before {
		t.Fatal("hit did not reach the main store with the hot tier off")
	}
}

// With no storage configured, the handler uses SQLite behind the hot tier.
func TestDefaultStorageIsSQLite(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	h := new(Handler)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if h.backendName != "sqlite" || h.hot == nil {
		t.Fatalf("default storage %q, hot tier %v; want sqlite behind a hot tier", h.backendName, h.hot != nil)
	}
}
