package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(new(faultyStore))
}

// faultyStore is a test-only backend. In mode "error" every call fails at
// once, in "hang" every call blocks until the context is done (a dead
// network peer). Modes "writes" and "switch" are a working in-memory store
// whose calls fail while failing is set: "writes" fails Put and Delete
// only (a full disk: reads still work), "switch" fails every call (an
// outage the test turns on and off).
type faultyStore struct {
	Mode string `json:"mode,omitempty"`

	failing atomic.Bool
	puts    atomic.Int64 // Put calls that reached the store
	mu      sync.Mutex
	entries map[string]*storage.Entry
}

// faultyCalls counts the calls made to every faultyStore.
var faultyCalls atomic.Int64

func (*faultyStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.faulty", New: func() caddy.Module { return new(faultyStore) }}
}

var (
	errStoreDown = errors.New("store is down")
	errDiskFull  = fmt.Errorf("writing entry: %w", syscall.ENOSPC)
)

func (f *faultyStore) fail(ctx context.Context) error {
	faultyCalls.Add(1)
	if f.Mode == "hang" {
		<-ctx.Done()
		return ctx.Err()
	}
	return errStoreDown
}

// working reports whether the call is served by the in-memory store
// (modes "writes" and "switch"), and the error to return otherwise.
func (f *faultyStore) working(ctx context.Context, write bool) (bool, error) {
	switch f.Mode {
	case "writes":
		faultyCalls.Add(1)
		if write && f.failing.Load() {
			return false, errDiskFull
		}
		return true, nil
	case "switch":
		faultyCalls.Add(1)
		if f.failing.Load() {
			return false, errStoreDown
		}
		return true, nil
	}
	return false, f.fail(ctx)
}

func (f *faultyStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if ok, err := f.working(ctx, false); !ok {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[key]; ok {
		return e, nil
	}
	return nil, storage.ErrNotFound
}

func (f *faultyStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	f.puts.Add(1)
	if ok, err := f.working(ctx, true); !ok {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[string]*storage.Entry{}
	}
	f.entries[key] = e
	return nil
}

func (f *faultyStore) Delete(ctx context.Context, key string) error {
	if ok, err := f.working(ctx, true); !ok {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entries, key)
	return nil
}

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

// faultyOf finds the faultyStore under the handler's store wrappers.
func faultyOf(t *testing.T, st storage.Store) *faultyStore {
	t.Helper()
	for {
		switch s := st.(type) {
		case *faultyStore:
			return s
		case *instrumentedStore:
			st = s.Store
		default:
			t.Fatalf("store %T is not a faultyStore", st)
		}
	}
}

// observe sends the handler's log to an observer at Info and above.
func observe(env *testEnv) *observer.ObservedLogs {
	core, logs := observer.New(zapcore.InfoLevel)
	env.h.logger = zap.New(core)
	return logs
}

// messages lists the messages of logs at level.
func messages(logs *observer.ObservedLogs, level zapcore.Level) []string {
	var out []string
	for _, e := range logs.FilterLevelExact(level).All() {
		out = append(out, e.Message)
	}
	return out
}

// A full disk (writes fail, reads work) is one warning, not one per miss:
// writes pause for a back-off instead of failing on every miss, hits are
// still served, and one info line says when writes work again.
func TestFullDiskLogsOnce(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "faulty", "mode": "writes"}, "memory": -1, "storage_timeout": "50ms"}`,
		fixed("Cache-Control", "max-age=600"))
	f := faultyOf(t, env.h.store)
	logs := observe(env)
	env.get("/hot")
	wantStatus(t, env.get("/hot"), "hit")

	f.failing.Store(true)
	for i := range 20 {
		r := env.get(fmt.Sprintf("/miss/%d", i))
		if r.status != http.StatusOK || r.body == "" {
			t.Fatalf("miss %d with failing writes: status %d body %q", i, r.status, r.body)
		}
		wantStatus(t, r, "fwd=uri-miss")
		// reads still work: the entry stored before is served
		wantStatus(t, env.get("/hot"), "hit")
	}
	warns := messages(logs, zapcore.WarnLevel)
	if len(warns) != 1 || !strings.Contains(warns[0], "writes failing (reads still work)") {
		t.Fatalf("Warn lines after 20 misses with failing writes: %q, want one saying writes fail and reads work", warns)
	}
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 0 {
		t.Fatalf("Info lines while writes fail: %q, want none", infos)
	}
	// Writes paused: the store saw the first failed Put, not one per miss.
	if n := f.puts.Load(); n != 2 {
		t.Fatalf("Puts that reached the store: %d, want 2 (the stored entry and the first failure)", n)
	}

	// Past the back-off, a miss tries again: still failing, no new line,
	// and the next back-off is longer.
	env.clock.Advance(writeBackoffMin + time.Second)
	env.get("/again/1")
	if n := f.puts.Load(); n != 3 {
		t.Fatalf("Puts after the first back-off: %d, want 3 (one retry)", n)
	}
	env.clock.Advance(writeBackoffMin + time.Second) // less than the doubled back-off
	env.get("/again/2")
	if n := f.puts.Load(); n != 3 {
		t.Fatalf("Puts during the doubled back-off: %d, want still 3", n)
	}

	// The disk has room again: the first write after the back-off works,
	// and writes are reported working again after the quiet period: some
	// time without a failure and outage.DefaultSuccesses good writes.
	f.failing.Store(false)
	env.clock.Advance(2 * writeBackoffMin)
	env.get("/after")
	wantStatus(t, env.get("/after"), "hit")
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 0 {
		t.Fatalf("Info lines after one good write: %q, want none before the quiet period", infos)
	}
	puts := f.puts.Load()
	for i := range outage.DefaultSuccesses {
		env.get(fmt.Sprintf("/after/%d", i))
	}
	if n := f.puts.Load() - puts; n != outage.DefaultSuccesses {
		t.Fatalf("%d Puts reached the store for %d misses after the back-off, want one each", n, outage.DefaultSuccesses)
	}
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 1 || !strings.Contains(infos[0], "writes work again") {
		t.Fatalf("Info lines after writes work again: %q, want one", infos)
	}
	if warns := messages(logs, zapcore.WarnLevel); len(warns) != 1 {
		t.Fatalf("Warn lines: %q, want still one", warns)
	}
}

// A store that fails and answers in turn logs one warning, and "recovered"
// only once it has gone outage.DefaultQuiet without a failure and answered
// outage.DefaultSuccesses calls since the last one (checked at each
// successful call).
func TestFlappingStoreRecoveryHysteresis(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "faulty", "mode": "switch"}, "memory": -1, "storage_timeout": "50ms"}`,
		fixed("Cache-Control", "max-age=600"))
	f := faultyOf(t, env.h.store)
	logs := observe(env)
	for i := range 20 {
		f.failing.Store(i%2 == 0)
		if r := env.get(fmt.Sprintf("/flap/%d", i)); r.status != http.StatusOK {
			t.Fatalf("request %d: status %d", i, r.status)
		}
		env.clock.Advance(time.Second)
	}
	if warns := messages(logs, zapcore.WarnLevel); len(warns) != 1 {
		t.Fatalf("Warn lines while the store flaps: %q, want one", warns)
	}
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 0 {
		t.Fatalf("Info lines while the store flaps: %q, want none (no quiet period yet)", infos)
	}
	f.failing.Store(false)
	env.clock.Advance(outage.DefaultQuiet)
	env.get("/steady/1")
	env.get("/steady/2")
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 0 {
		t.Fatalf("Info lines after a few good calls: %q, want none before %d successes", infos, outage.DefaultSuccesses)
	}
	for i := range outage.DefaultSuccesses {
		env.get(fmt.Sprintf("/steady/again/%d", i))
	}
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 1 || !strings.Contains(infos[0], "recovered") {
		t.Fatalf("Info lines after a quiet period: %q, want one recovered", infos)
	}
	// Cache-Status no longer says the store is failing.
	wantStatus(t, env.get("/steady/1"), "hit")
}

// A quiet site recovers without outage.DefaultSuccesses calls once
// outage.DefaultLongQuiet has passed without a failure.
func TestFewCallsRecoverAfterLongQuiet(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "faulty", "mode": "switch"}, "memory": -1, "storage_timeout": "50ms"}`,
		fixed("Cache-Control", "max-age=6000"))
	f := faultyOf(t, env.h.store)
	logs := observe(env)
	f.failing.Store(true)
	env.get("/a")
	f.failing.Store(false)
	env.clock.Advance(outage.DefaultLongQuiet - time.Second)
	env.get("/b")
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 0 {
		t.Fatalf("Info lines before the long quiet period: %q", infos)
	}
	env.clock.Advance(time.Second)
	env.get("/c")
	if infos := messages(logs, zapcore.InfoLevel); len(infos) != 1 || !strings.Contains(infos[0], "recovered") {
		t.Fatalf("Info lines after %v without a failure: %q, want one recovered", outage.DefaultLongQuiet, infos)
	}
}

// At a 10% fault rate the handler logs one "failing" and one "recovered"
// line per outage, not a pair per failed call: 50 requests a second on the
// handler's clock, two outages of 20 s during which every tenth request
// meets a failing store, between healthy periods.
func TestTenPercentFaultRateOneLinePairPerOutage(t *testing.T) {
	env := newEnv(t, `{"storage": {"backend": "faulty", "mode": "switch"}, "memory": -1, "storage_timeout": "50ms"}`,
		fixed("Cache-Control", "max-age=6000"))
	f := faultyOf(t, env.h.store)
	logs := observe(env)
	rng := rand.New(rand.NewPCG(3, 4))
	failed := 0
	for i := range 5000 { // 100 s
		at := time.Duration(i) * 20 * time.Millisecond
		outageNow := (at >= 20*time.Second && at < 40*time.Second) || (at >= 60*time.Second && at < 80*time.Second)
		fail := outageNow && rng.IntN(10) == 0
		if fail {
			failed++
		}
		f.failing.Store(fail)
		if r := env.get(fmt.Sprintf("/p/%d", i%50)); r.status != http.StatusOK {
			t.Fatalf("request %d: status %d", i, r.status)
		}
		env.clock.Advance(20 * time.Millisecond)
	}
	var seq strings.Builder
	for _, e := range logs.All() {
		switch {
		case strings.HasPrefix(e.Message, "cache storage failing"):
			seq.WriteByte('D')
		case strings.HasPrefix(e.Message, "cache storage recovered"):
			seq.WriteByte('U')
		default:
			t.Errorf("unexpected line %q", e.Message)
		}
	}
	if seq.String() != "DUDU" {
		t.Fatalf("log %q for two outages with %d failed requests, want DUDU", seq.String(), failed)
	}
}
