package cache

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(new(faultyStore))
}

// faultyStore is a test-only backend that fails every call: "error" fails
// at once, "hang" blocks until the context is done (a dead network peer).
type faultyStore struct {
	Mode string `json:"mode,omitempty"`
}

// faultyCalls counts the calls made to every faultyStore.
var faultyCalls atomic.Int64

func (*faultyStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.faulty", New: func() caddy.Module { return new(faultyStore) }}
}

var errStoreDown = errors.New("store is down")

func (f *faultyStore) fail(ctx context.Context) error {
	faultyCalls.Add(1)
	if f.Mode == "hang" {
		<-ctx.Done()
		return ctx.Err()
	}
	return errStoreDown
}

func (f *faultyStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return nil, f.fail(ctx)
}
func (f *faultyStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	return f.fail(ctx)
}
func (f *faultyStore) Delete(ctx context.Context, key string) error { return f.fail(ctx) }

func TestDeadStoreGoesToOrigin(t *testing.T) {
	for _, mode := range []string{"error", "hang"} {
		t.Run(mode, func(t *testing.T) {
			before := faultyCalls.Load()
			env := newEnv(t, `{"storage": {"backend": "faulty", "mode": "`+mode+`"}, "storage_timeout": "50ms"}`,
				fixed("Cache-Control", "max-age=60"))
			for i := 1; i <= 3; i++ {
				r := env.get("/")
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want the origin's 200", r.status)
				}
				wantStatus(t, r, `detail="storage-error"`)
			}
			env.wantHits(3)
			if faultyCalls.Load() == before {
				t.Fatal("the store was never called")
			}
			// unsafe methods still succeed
			if r := env.do(http.MethodPost, "/"); r.status != http.StatusOK {
				t.Fatalf("POST status %d", r.status)
			}
		})
	}
}

func init() {
	caddy.RegisterModule(new(quietFaultyStore))
}

// quietFaultyStore fails like faultyStore and says it logs its own outages.
type quietFaultyStore struct{ faultyStore }

func (*quietFaultyStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.faultyquiet", New: func() caddy.Module { return new(quietFaultyStore) }}
}

func (*quietFaultyStore) LogsHealth() bool { return true }

// An outage is logged once: by the handler for stores that do not log
// their own health, not at all by the handler for those that do.
func TestOutageLoggedOnce(t *testing.T) {
	for _, tc := range []struct {
		backend string
		warns   int
	}{{"faulty", 1}, {"faultyquiet", 0}} {
		t.Run(tc.backend, func(t *testing.T) {
			env := newEnv(t, `{"storage": {"backend": "`+tc.backend+`"}, "storage_timeout": "50ms"}`, fixed("Cache-Control", "max-age=60"))
			core, logs := observer.New(zapcore.InfoLevel)
			env.h.logger = zap.New(core)
			for i := 0; i < 5; i++ {
				if r := env.get("/"); r.status != http.StatusOK {
					t.Fatalf("status %d", r.status)
				}
			}
			if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != tc.warns {
				t.Fatalf("%d Warn lines for one outage, want %d: %v", n, tc.warns, logs.All())
			}
		})
	}
}
