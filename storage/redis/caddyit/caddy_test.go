package caddyit

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddycache/caddy-cache"
	"github.com/caddycache/caddy-cache/internal/testservers"
	_ "github.com/caddycache/caddy-cache/storage/redis"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type response struct {
	status      int
	body        string
	cacheStatus string
}

func get(t *testing.T, url string) response {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return response{resp.StatusCode, string(b), resp.Header.Get("Cache-Status")}
}

// A Caddy with the cache handler on Redis: a stored response is a hit, it
// lives in Redis under the namespace, a Redis outage turns requests into
// origin fetches (never errors), and caching resumes when Redis is back,
// without a reload.
func TestCaddyWithRedis(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv := testservers.Redis(t)

	var originHits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := originHits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintf(w, "v%d %s", n, r.URL.Path)
	}))
	t.Cleanup(origin.Close)

	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	const namespace = "caddy-it"
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	skip_install_trust
	grace_period 1s
}
%s {
	cache {
		storage redis %s {
			namespace %s
		}
		storage_timeout 300ms
	}
	reverse_proxy %s
}
`, site, srv.URI, namespace, strings.TrimPrefix(origin.URL, "http://"))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})

	r := get(t, site+"/a")
	if r.status != 200 || r.body != "v1 /a" || !strings.Contains(r.cacheStatus, "stored") {
		t.Fatalf("first GET /a: %+v, want 200 \"v1 /a\" stored", r)
	}
	r = get(t, site+"/a")
	if r.status != 200 || r.body != "v1 /a" || !strings.Contains(r.cacheStatus, "hit") {
		t.Fatalf("second GET /a: %+v, want the stored \"v1 /a\" as a hit", r)
	}

	// The entry is in Redis, under the namespace.
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), namespace+":e:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys in Redis under %s:e:*: %q, %v; want the stored entry", namespace, keys, err)
	}

	// Redis down: every request is served by the origin, none fails.
	srv.Stop(t)
	before := originHits.Load()
	for i := range 5 {
		path := fmt.Sprintf("/down-%d", i%2)
		r := get(t, site+path)
		if r.status != 200 || !strings.HasSuffix(r.body, " "+path) {
			t.Fatalf("GET %s with Redis down: %+v, want 200 from the origin", path, r)
		}
	}
	if got := originHits.Load() - before; got != 5 {
		t.Fatalf("with Redis down the origin saw %d of 5 requests, want all 5", got)
	}

	// Redis back (empty): caching resumes without a reload. The first
	// requests may still fail to store while go-redis redials.
	srv.Start(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := get(t, site+"/b")
		if r.status != 200 || !strings.HasSuffix(r.body, " /b") {
			t.Fatalf("GET /b after Redis came back: %+v, want 200", r)
		}
		if strings.Contains(r.cacheStatus, "hit") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after Redis came back, GET /b is still not a hit: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	keys, err = rdb.Keys(context.Background(), namespace+":e:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys in the restarted Redis under %s:e:*: %q, %v; want the new entry", namespace, keys, err)
	}
}
