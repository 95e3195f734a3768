package integration

import (
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Refresh-ahead through a real Caddy: a slow origin (300 ms) and a hot key
// with max-age=2 under steady load for 6 s. Every request after the first
// is a hit (coalescing is off, so a request that had to wait for the
// origin would say fwd=…), and the origin sees about one request per
// lifetime: the first, then one refresh each time the entry enters the
// last 30 % of its lifetime.
func TestRefreshAheadThroughCaddy(t *testing.T) {
	const (
		maxAge  = 2 * time.Second
		frac    = 0.3
		load    = 6 * time.Second
		clients = 4
	)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(300 * time.Millisecond)
		// No Date: its one-second granularity would add up to a second of
		// apparent age to a two-second lifetime.
		w.Header()["Date"] = nil
		w.Header().Set("Cache-Control", "public, max-age=2")
		fmt.Fprintf(w, "v%d", n)
	})
	in := startCaddy(t, fmt.Sprintf("\tcache {\n\t\tstorage sqlite %s\n\t\trefresh_ahead 30%%\n\t\tlock_timeout 0\n\t\tname refresh\n\t}\n\treverse_proxy %s",
		filepath.Join(t.TempDir(), "c.db"), o.addr()))
	wantCacheStatus(t, in.get("/hot"), "stored")

	var (
		mu       sync.Mutex
		notHits  []string
		total    atomic.Int64
		triggers atomic.Int64
	)
	stop := time.Now().Add(load)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				r := do(t, http.MethodGet, in.site+"/hot")
				total.Add(1)
				cs := r.header.Get("Cache-Status")
				if !strings.Contains(cs, "; hit") {
					mu.Lock()
					notHits = append(notHits, cs)
					mu.Unlock()
				}
				if strings.Contains(cs, `detail="refresh-ahead"`) {
					triggers.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if len(notHits) > 0 {
		t.Fatalf("%d of %d requests were not hits, e.g. %q", len(notHits), total.Load(), notHits[0])
	}
	// first fetch + one refresh per (1-frac) of the lifetime, +2 for the
	// edges; at least two refreshes must have happened
	period := time.Duration(float64(maxAge) * (1 - frac))
	limit := int64(math.Ceil(float64(load)/float64(period))) + 2
	// a refresh started by the last hits may reach the origin just after
	for i := 0; i < 100 && o.hits.Load()-1 < triggers.Load(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	hits := o.hits.Load()
	if hits < 3 || hits > limit {
		t.Fatalf("origin saw %d requests in %s of load (%d client requests), want 3..%d", hits, load, total.Load(), limit)
	}
	if n := triggers.Load(); n != hits-1 {
		// each refresh was started by exactly one hit that said so
		// (a refresh still running at the end has been counted too)
		t.Fatalf("%d hits said refresh-ahead, origin saw %d refreshes", n, hits-1)
	}
	series := `caddy_http_cache_refresh_ahead_total{handler="refresh",result="started"}`
	if v := in.scrape(series); int64(v) != hits-1 {
		t.Fatalf("%s = %v, want %d", series, v, hits-1)
	}
	t.Logf("%d client requests, %d origin requests", total.Load(), hits)
}
