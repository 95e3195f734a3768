package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A cold URL costs the origin one fetch across two Caddy processes sharing
// one SQLite file (the locks table): 25 concurrent clients on each
// instance. A private response under the same load is never handed to
// another client.
func TestMultiInstanceCoalescingSQLite(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(300 * time.Millisecond) // a slow origin: the misses overlap
		if strings.HasPrefix(r.URL.Path, "/private") {
			w.Header().Set("Cache-Control", "private, max-age=60")
			fmt.Fprintf(w, "for %s", r.Header.Get("Cookie"))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, "storage sqlite "+filepath.Join(t.TempDir(), "shared.db")+" {\n\t\t\tshared\n\t\t}", o.addr())
	const perInstance = 25
	var wg sync.WaitGroup
	bodies := make(chan string, 2*perInstance)
	for i := 0; i < 2*perInstance; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies <- c.get(i%2, "/cold").body
		}()
	}
	wg.Wait()
	close(bodies)
	fetches := o.hits.Load()
	others := map[string]int{}
	for b := range bodies {
		if b != "/cold #1" {
			others[b]++
		}
	}
	o.wantHits(t, 1)
	if len(others) > 0 {
		t.Fatalf("clients got other bodies than the one fetch's: %v", others)
	}

	before := o.hits.Load()
	type got struct{ cookie, body string }
	res := make(chan got, 2*perInstance)
	for i := 0; i < 2*perInstance; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cookie := fmt.Sprintf("user=%d", i)
			r := do(t, http.MethodGet, fmt.Sprintf("http://%s:%d/private", c.binds[i%2], c.port), "Host", clusterHost, "Cookie", cookie)
			res <- got{cookie, r.body}
		}()
	}
	wg.Wait()
	close(res)
	for g := range res {
		if g.body != "for "+g.cookie {
			t.Fatalf("client with %s got %q", g.cookie, g.body)
		}
	}
	t.Logf("cold URL: %d clients on 2 instances, %d origin fetch(es); private URL: %d fetches for %d clients, 0 shared",
		2*perInstance, fetches, o.hits.Load()-before, 2*perInstance)
}

// Variants of one URL added by two instances at the same moment are all
// kept in its Vary index (one write transaction on SQLite).
func TestMultiInstanceVaryIndexSQLite(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Vary", "X-Variant")
		fmt.Fprintf(w, "variant %s", r.Header.Get("X-Variant"))
	})
	c := startInstances(t, 2, "storage sqlite "+filepath.Join(t.TempDir(), "shared.db")+" {\n\t\t\tshared\n\t\t}", o.addr())
	const variants = 40
	var wg sync.WaitGroup
	for i := 0; i < variants; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(t, http.MethodGet, fmt.Sprintf("http://%s:%d/v", c.binds[i%2], c.port), "Host", clusterHost, "X-Variant", fmt.Sprint(i))
		}()
	}
	wg.Wait()
	missing := 0
	for i := 0; i < variants; i++ {
		r := do(t, http.MethodGet, fmt.Sprintf("http://%s:%d/v", c.binds[(i+1)%2], c.port), "Host", clusterHost, "X-Variant", fmt.Sprint(i))
		if !strings.Contains(r.header.Get("Cache-Status"), "hit") || r.body != fmt.Sprintf("variant %d", i) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d variants added concurrently by two instances are not reachable through the index", missing, variants)
	}
}
