package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// Two Caddy instances on one Redis: a response stored through one is a hit
// through the other.
func TestTwoInstancesShareRedis(t *testing.T) {
	rds := testservers.Redis(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "generated %d", n)
	})
	body := fmt.Sprintf("\tcache {\n\t\tstorage redis %s {\n\t\t\tnamespace %s\n\t\t}\n\t}\n\treverse_proxy %s", rds.URI, t.Name(), o.addr())
	// Two machines behind a load balancer listen on the same port (the
	// key has the listener's port): here two loopback addresses.
	port := freePort(t)
	startCaddyProcess(t, siteCaddyfileOn("127.0.0.1", port, body), t.TempDir(), fmt.Sprintf("127.0.0.1:%d", port))
	startCaddyProcess(t, siteCaddyfileOn("127.0.0.2", port, body), t.TempDir(), fmt.Sprintf("127.0.0.2:%d", port))
	a := fmt.Sprintf("http://127.0.0.1:%d/shared", port)
	b := fmt.Sprintf("http://127.0.0.2:%d/shared", port)
	// behind a load balancer both instances see the site's one host name
	wantCacheStatus(t, do(t, http.MethodGet, a, "Host", "www.example.test"), "stored")
	r := do(t, http.MethodGet, b, "Host", "www.example.test")
	wantCacheStatus(t, r, "hit")
	if r.body != "generated 1" {
		t.Fatalf("instance B got %q", r.body)
	}
	o.wantHits(t, 1)
}
