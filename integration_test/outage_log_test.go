package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/outage"
)

// Through a real Caddy, a store failing 10% of its calls is one outage: one
// "failing" line, however many calls fail, and one "recovered" line once
// the store has gone outage.DefaultQuiet without a failure and answered
// outage.DefaultSuccesses calls, not at its first good answer. A second
// outage is a second pair.
func TestOutageLogOnePairPerOutage(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	})
	name := "outage_log_pair"
	logPath, logOpt := logFile(t, "INFO")
	in := startCaddyfile(t, func(admin string, port int) string {
		return globalOptions(admin, logOpt) + fmt.Sprintf(`http://127.0.0.1:%d {
	cache {
		storage faultinject {
			name %s
			rate 0.1
			faults error
			seed 11
		}
		memory off
	}
	reverse_proxy %s
}
`, port, name, o.addr())
	})
	// states returns the outage lines (D failing, U recovered); failed
	// writes while reads work are their own state (W writes failing, R
	// work again), in writes.
	var writes strings.Builder
	states := func() string {
		writes.Reset()
		var seq strings.Builder
		for _, l := range readLog(t, logPath, "http.handlers.cache") {
			switch {
			case strings.HasPrefix(l.Msg, "cache storage failing"):
				seq.WriteByte('D')
			case strings.HasPrefix(l.Msg, "cache storage recovered"):
				seq.WriteByte('U')
			case strings.HasPrefix(l.Msg, "cache storage writes failing"):
				writes.WriteByte('W')
			case strings.HasPrefix(l.Msg, "cache storage writes work again"):
				writes.WriteByte('R')
			}
		}
		return seq.String()
	}
	traffic := func(phase string, n int) {
		for i := range n {
			if r := in.get(fmt.Sprintf("/%s/%d", phase, i%40)); r.status != http.StatusOK {
				t.Fatalf("%s request %d: status %d", phase, i, r.status)
			}
		}
	}
	outageTraffic := func(phase string) {
		before := faultStats(name).injected[faultError]
		traffic(phase, 300)
		if n := faultStats(name).injected[faultError] - before; n < 10 {
			t.Fatalf("%s: only %d faults injected in 300 requests", phase, n)
		}
	}

	outageTraffic("first")
	if s := states(); s != "D" {
		t.Fatalf("log after the first outage: %q, want one failing line (D)", s)
	}

	// The store works again. A quiet period without failures is needed
	// before the recovery is told; one good call after it is not enough.
	suspendFaults(t, name, true)
	time.Sleep(outage.DefaultQuiet + 200*time.Millisecond)
	traffic("quiet", 1)
	if s := states(); s != "D" {
		t.Fatalf("log after one good request past the quiet period: %q, want still D", s)
	}
	traffic("healthy", outage.DefaultSuccesses)
	if s := states(); s != "DU" {
		t.Fatalf("log after %d good requests past the quiet period: %q, want DU", outage.DefaultSuccesses, s)
	}

	// A second outage is a second pair.
	suspendFaults(t, name, false)
	outageTraffic("second")
	suspendFaults(t, name, true)
	time.Sleep(outage.DefaultQuiet + 200*time.Millisecond)
	traffic("healthy-again", 2*outage.DefaultSuccesses)
	if s := states(); s != "DUDU" {
		t.Fatalf("log after two outages: %q, want DUDU", s)
	}
	// A write that failed before any read did is a writes-failing line,
	// at most one per outage, each followed by its recovery.
	if w := writes.String(); strings.Count(w, "W") > 2 || strings.Contains(w, "WW") || strings.Contains(w, "RR") || strings.HasPrefix(w, "R") {
		t.Fatalf("writes lines %q: want at most one W per outage, each W before its R", w)
	}
}
