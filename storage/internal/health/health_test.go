package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
)

// quick reports a recovery after the first success.
var quick = outage.Policy{Quiet: time.Nanosecond, Successes: 1}

func TestTransitionsLogOnce(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	tr := NewWithPolicy(zap.New(core), "test store", quick)
	boom := errors.New("connection refused")

	// Successes and sentinel errors while up log nothing.
	for _, err := range []error{nil, storage.ErrNotFound, fmt.Errorf("x: %w", storage.ErrCorrupt), storage.ErrTooLarge} {
		if got := tr.Observe(err); got != err {
			t.Fatalf("Observe(%v) returned %v, want its argument", err, got)
		}
	}
	if logs.Len() != 0 || tr.Down() {
		t.Fatalf("after successes: %d log lines, down=%v; want 0, false", logs.Len(), tr.Down())
	}
	// Many failures from many goroutines: one warning.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.Observe(boom)
			tr.Observe(context.DeadlineExceeded)
		}()
	}
	wg.Wait()
	if !tr.Down() {
		t.Fatal("after failures: Down() = false")
	}
	// A cancelled caller changes nothing.
	tr.Observe(fmt.Errorf("op: %w", context.Canceled))
	if !tr.Down() {
		t.Fatal("a cancelled call brought the tracker up")
	}
	// Many successes: one info.
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); tr.Observe(nil) }()
	}
	wg.Wait()
	if tr.Down() {
		t.Fatal("after successes: Down() = true")
	}
	warn := logs.FilterLevelExact(zapcore.WarnLevel).All()
	info := logs.FilterLevelExact(zapcore.InfoLevel).All()
	if len(warn) != 1 || len(info) != 1 || logs.Len() != 2 {
		t.Fatalf("got %d warnings and %d infos (%d lines), want 1 and 1", len(warn), len(info), logs.Len())
	}
	if warn[0].ContextMap()["storage"] != "test store" || info[0].ContextMap()["storage"] != "test store" {
		t.Fatalf("log lines do not name the store: %v / %v", warn[0].ContextMap(), info[0].ContextMap())
	}
	if warn[0].ContextMap()["error"] != boom.Error() && warn[0].ContextMap()["error"] != context.DeadlineExceeded.Error() {
		t.Fatalf("warning carries error %v, want the failure", warn[0].ContextMap()["error"])
	}

	// Cancelled while up: still nothing.
	tr.Observe(context.Canceled)
	if tr.Down() || logs.Len() != 2 {
		t.Fatalf("a cancelled call while up: down=%v, %d lines", tr.Down(), logs.Len())
	}
	// A second outage logs again.
	tr.Observe(boom)
	tr.Observe(nil)
	if logs.Len() != 4 {
		t.Fatalf("second outage: %d lines in total, want 4", logs.Len())
	}
}

// A server failing one call in ten is one outage: one warning, and the
// recovery only once it has stopped failing for the quiet period with
// enough successful calls.
func TestOccasionalFailuresAreOneOutage(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	tr := New(zap.New(core), "flaky store")
	now := time.Unix(1000, 0)
	tr.now = func() time.Time { return now }
	boom := errors.New("i/o timeout")
	for i := range 1000 {
		now = now.Add(10 * time.Millisecond)
		if i%10 == 3 {
			tr.Observe(boom)
		} else {
			tr.Observe(nil)
		}
	}
	if !tr.Down() || logs.Len() != 1 || logs.FilterLevelExact(zapcore.WarnLevel).Len() != 1 {
		t.Fatalf("10 %% failures: down=%v, %d lines (%v); want one warning and still down", tr.Down(), logs.Len(), logs.All())
	}
	// quiet: after DefaultQuiet and DefaultSuccesses successes, one info
	for tr.Down() {
		now = now.Add(10 * time.Millisecond)
		tr.Observe(nil)
		if now.Sub(time.Unix(1000, 0)) > time.Hour {
			t.Fatal("never recovered")
		}
	}
	info := logs.FilterLevelExact(zapcore.InfoLevel).All()
	if len(info) != 1 || logs.Len() != 2 {
		t.Fatalf("after the failures stopped: %d infos, %d lines, want 1 and 2", len(info), logs.Len())
	}
	if got := info[0].ContextMap()["failed_calls"]; got != int64(100) {
		t.Fatalf("the recovery line counts %v failed calls, want 100", got)
	}
}

func TestNilLogger(t *testing.T) {
	tr := New(nil, "x")
	tr.Observe(errors.New("down"))
	tr.Observe(nil)
}
