package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// instancesCaddyfile is one Caddy of a group behind a load balancer: its
// site on bind:port (the same port for every instance, as on several
// machines), its admin API on admin. storage may carry further cache
// options on lines after the storage block.
func instancesCaddyfile(bind, admin string, port int, storage, originAddr string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	skip_install_trust
}
http://:%d {
	bind %s
	cache {
		%s
		invalidation_interval 200ms
	}
	reverse_proxy %s
}
`, admin, port, bind, storage, originAddr)
}

type cluster struct {
	t     *testing.T
	port  int
	binds []string
	admin []string
	procs []*caddyProcess
}

// startInstances starts one Caddy process per loopback address, all on one
// store.
func startInstances(t *testing.T, n int, storage, originAddr string) *cluster {
	t.Helper()
	c := &cluster{t: t, port: freePort(t)}
	for i := 0; i < n; i++ {
		bind := fmt.Sprintf("127.0.0.%d", i+1)
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		c.binds = append(c.binds, bind)
		c.admin = append(c.admin, admin)
		c.procs = append(c.procs, startCaddyProcess(t, instancesCaddyfile(bind, admin, c.port, storage, originAddr), t.TempDir(), fmt.Sprintf("%s:%d", bind, c.port)))
	}
	return c
}

const clusterHost = "www.example.test"

// get requests path from instance i with the site's public host name.
func (c *cluster) get(i int, path string) response {
	c.t.Helper()
	return do(c.t, http.MethodGet, fmt.Sprintf("http://%s:%d%s", c.binds[i], c.port, path), "Host", clusterHost)
}

// purge posts a purge request to instance i's admin API.
func (c *cluster) purge(i int, req map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post("http://"+c.admin[i]+"/cache/purge", "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatalf("purge %v: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("purge %v: %d %s", req, resp.StatusCode, body)
	}
}

// url is the public URL of path, as keys and purges have it.
func (c *cluster) url(path string) string {
	return fmt.Sprintf("http://%s:%d%s", clusterHost, c.port, path)
}

// warm stores path through instance 0 and makes it a hot-tier hit on every
// other instance.
func (c *cluster) warm(path string) {
	c.t.Helper()
	wantCacheStatus(c.t, c.get(0, path), "stored")
	for i := 1; i < len(c.binds); i++ {
		wantCacheStatus(c.t, c.get(i, path), "hit") // read from the store, copied into the hot tier
		wantCacheStatus(c.t, c.get(i, path), "hit") // from the hot tier
	}
}

// gone waits until every other instance stops answering path as a hit and
// returns how long that took; it fails after a deadline far beyond the
// documented bound.
func (c *cluster) gone(path string) time.Duration {
	c.t.Helper()
	start := time.Now()
	for i := 1; i < len(c.binds); i++ {
		for {
			r := c.get(i, path)
			if !strings.Contains(r.header.Get("Cache-Status"), "hit") {
				break
			}
			if time.Since(start) > 15*time.Second {
				c.t.Fatalf("instance %d still serves %s from its hot tier %v after the purge: %q", i, path, time.Since(start), r.header.Get("Cache-Status"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(start)
}

func testPurgesReachEveryInstance(t *testing.T, storage string) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Surrogate-Key", "group")
		w.Header().Set("Cache-Groups", `"grp"`)
		if r.Method != http.MethodGet {
			if r.URL.Path == "/g-inv" {
				w.Header().Set("Cache-Group-Invalidation", `"grp"`)
			}
			fmt.Fprint(w, "done")
			return
		}
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, storage, o.addr())
	steps := []struct {
		name  string
		path  string
		purge func(path string)
	}{
		{"url", "/u", func(p string) { c.purge(0, map[string]any{"url": c.url(p)}) }},
		{"tag", "/t", func(string) { c.purge(0, map[string]any{"tag": "group"}) }},
		{"prefix", "/p/x", func(string) { c.purge(0, map[string]any{"prefix": c.url("/p/")}) }},
		{"all", "/a", func(string) { c.purge(0, map[string]any{"all": true}) }},
		{"unsafe method", "/m", func(p string) {
			r := do(t, http.MethodPost, fmt.Sprintf("http://%s:%d%s", c.binds[0], c.port, p), "Host", clusterHost)
			if r.status != http.StatusOK {
				t.Fatalf("POST: %d", r.status)
			}
		}},
		{"Cache-Group-Invalidation", "/g", func(string) {
			r := do(t, http.MethodPost, fmt.Sprintf("http://%s:%d/g-inv", c.binds[0], c.port), "Host", clusterHost)
			if r.status != http.StatusOK {
				t.Fatalf("POST: %d", r.status)
			}
		}},
		{"group", "/g2", func(string) { c.purge(0, map[string]any{"group": "grp"}) }},
	}
	for _, s := range steps {
		c.warm(s.path)
		s.purge(s.path)
		took := c.gone(s.path)
		t.Logf("purge by %s through instance 0: gone from the other instance's hot tier after %v", s.name, took.Round(time.Millisecond))
	}
}

// A purge through one instance reaches the hot tier of the others sharing
// the store: Redis by pub/sub, SQLite by the invalidation records.
func TestMultiInstancePurgeRedis(t *testing.T) {
	rds := testservers.Redis(t)
	testPurgesReachEveryInstance(t, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", rds.URI, t.Name()))
}

func TestMultiInstancePurgeSQLite(t *testing.T) {
	testPurgesReachEveryInstance(t, "storage sqlite "+filepath.Join(t.TempDir(), "shared.db"))
}

// Redis restarted under subscribed instances: the subscription comes back
// by itself (the hot tier is bypassed meanwhile), and purges after the
// restart reach every instance again.
func TestMultiInstancePurgeRedisRestart(t *testing.T) {
	rds := testservers.Redis(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", rds.URI, t.Name()), o.addr())
	c.warm("/before")
	rds.Stop(t)
	// The subscriber notices the closed connection a moment after the stop
	// (later on a loaded machine): wait for it, then the hot tier must be
	// bypassed.
	downBy := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.procs[1].log.String(), "invalidations from other instances cannot be received") {
		if time.Now().After(downBy) {
			t.Fatalf("instance 1 did not notice that Redis stopped:\n%s", c.procs[1].log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := c.get(1, "/before"); r.status != http.StatusOK || strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("with Redis down, instance 1 answered %d %q: its hot tier must be bypassed while invalidations cannot arrive", r.status, r.header.Get("Cache-Status"))
	}
	rds.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.procs[1].log.String(), "invalidations from other instances are received again") {
		if time.Now().After(deadline) {
			t.Fatalf("instance 1 did not resubscribe after the restart:\n%s", c.procs[1].log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.warm("/after")
	c.purge(0, map[string]any{"url": c.url("/after")})
	t.Logf("after a Redis restart: purge gone from the other hot tier after %v", c.gone("/after").Round(time.Millisecond))
}

func TestMultiInstancePurgeFile(t *testing.T) {
	testPurgesReachEveryInstance(t, "storage file "+filepath.Join(t.TempDir(), "shared"))
}

func TestMultiInstancePurgeMongoDB(t *testing.T) {
	s := testservers.FerretDB(t)
	testPurgesReachEveryInstance(t, fmt.Sprintf("storage mongodb %s {\n\t\t\tdatabase %s\n\t\t}", s.URI, safeName(t)))
}

func TestMultiInstancePurgeDynamoDB(t *testing.T) {
	s := testservers.DynamoDBLocal(t)
	testPurgesReachEveryInstance(t, fmt.Sprintf("storage dynamodb {\n\t\t\ttable %s\n\t\t\tendpoint %s\n\t\t\tregion us-east-1\n\t\t\taccess_key_id dummy\n\t\t\tsecret_access_key dummy\n\t\t\tcreate_table\n\t\t}", safeName(t), s.URI))
}

// A cold URL costs the origin one fetch across the cluster (Redis locks):
// 25 concurrent clients on each of two instances.
func TestMultiInstanceCoalescingRedis(t *testing.T) {
	rds := testservers.Redis(t)
	testCoalescingAcrossInstances(t, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", rds.URI, t.Name()))
}

// Variants of one URL added by two instances at the same moment are all
// kept in its Vary index (an atomic update on Redis).
func TestMultiInstanceVaryIndexRedis(t *testing.T) {
	rds := testservers.Redis(t)
	testVaryIndexAcrossInstances(t, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", rds.URI, t.Name()))
}

// testVaryIndexAcrossInstances has two instances add 40 variants of one
// URL at once; every variant is then a hit through the other instance.
func testVaryIndexAcrossInstances(t *testing.T, storage string) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Vary", "X-Variant")
		fmt.Fprintf(w, "variant %s", r.Header.Get("X-Variant"))
	})
	c := startInstances(t, 2, storage, o.addr())
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
	// every variant is now a hit through either instance
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

// The instance holding the cluster lock is killed mid-fetch: the others go
// to the origin once the lock expires, and nobody waits past lock_timeout.
func TestMultiInstanceLockHolderKilled(t *testing.T) {
	rds := testservers.Redis(t)
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			select { // the first fetch hangs until its Caddy is gone
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "fetch %d", n)
	})
	defer close(release)
	const lockTimeout = 2 * time.Second
	c := startInstances(t, 2, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}\n\t\tlock_timeout 2s", rds.URI, t.Name()), o.addr())
	go func() { // instance 0 takes the lock and hangs on the origin
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/k", c.binds[0], c.port), nil)
		req.Host = clusterHost
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for o.hits.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first fetch never reached the origin")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.procs[0].kill() // crashed while holding the lock
	start := time.Now()
	r := c.get(1, "/k")
	waited := time.Since(start)
	if r.status != http.StatusOK || r.body != "fetch 2" {
		t.Fatalf("instance 1 after the holder died: %d %q", r.status, r.body)
	}
	if waited > lockTimeout+time.Second { // the lock's expiry, plus slack for a loaded machine
		t.Fatalf("instance 1 waited %v for a dead holder, more than lock_timeout %v", waited, lockTimeout)
	}
	t.Logf("holder killed: the other instance fetched after %v (lock_timeout %v)", waited.Round(time.Millisecond), lockTimeout)
}

// Purges and coalescing on Redis Cluster: two instances on a three-master
// cluster.
func TestMultiInstanceRedisCluster(t *testing.T) {
	addrs := testservers.RedisCluster(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, fmt.Sprintf("storage redis {\n\t\t\taddresses %s\n\t\t\tcluster\n\t\t\tnamespace %s\n\t\t}", strings.Join(addrs, " "), t.Name()), o.addr())
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.get(i%2, "/cold")
		}()
	}
	wg.Wait()
	o.wantHits(t, 1)
	c.warm("/u")
	c.purge(0, map[string]any{"url": c.url("/u")})
	t.Logf("Redis Cluster: 20 clients on 2 instances, 1 fetch; purge gone from the other hot tier after %v", c.gone("/u").Round(time.Millisecond))
}

// A snapshot imported through one instance replaces what the other
// instances' hot tiers hold: the import announces the keys it stored, as a
// purge does.
func TestMultiInstanceSnapshotImportRedis(t *testing.T) {
	rds := testservers.Redis(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", rds.URI, t.Name()), o.addr())
	c.warm("/s")
	old := c.get(1, "/s").body

	// a newer copy of /s, stored by a third node on its own memory store
	// (same site, so the same key)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startCaddyProcess(t, instancesCaddyfile("127.0.0.3", admin, c.port, "storage memory", o.addr()), t.TempDir(), fmt.Sprintf("127.0.0.3:%d", c.port))
	fresh := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.3:%d/s", c.port), "Host", clusterHost)
	wantCacheStatus(t, fresh, "stored")
	if fresh.body == old {
		t.Fatalf("the third node got the same body %q", old)
	}
	resp, err := http.Get("http://" + admin + "/cache/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d, %v", resp.StatusCode, err)
	}
	resp, err = http.Post("http://"+c.admin[0]+"/cache/snapshot", "application/octet-stream", bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	report, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rep struct{ Imported int }
	if err := json.Unmarshal(report, &rep); err != nil || resp.StatusCode != http.StatusOK || rep.Imported != 1 {
		t.Fatalf("import: %d %s", resp.StatusCode, report)
	}

	// instance 1 served /s from its hot tier; it must now serve the import
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := c.get(1, "/s")
		if r.body == fresh.body {
			wantCacheStatus(t, r, "hit")
			break
		}
		if r.body != old {
			t.Fatalf("instance 1 answered %q (%s), neither the old %q nor the imported %q", r.body, r.header.Get("Cache-Status"), old, fresh.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance 1 still serves %q from its hot tier after the import of %q", old, fresh.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
