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
	portA, portB := freePort(t), freePort(t)
	startCaddyProcess(t, siteCaddyfile(portA, body), t.TempDir(), fmt.Sprintf("127.0.0.1:%d", portA))
	startCaddyProcess(t, siteCaddyfile(portB, body), t.TempDir(), fmt.Sprintf("127.0.0.1:%d", portB))
	a := fmt.Sprintf("http://127.0.0.1:%d/shared", portA)
	b := fmt.Sprintf("http://127.0.0.1:%d/shared", portB)
	// behind a load balancer both instances see the site's one host name
	wantCacheStatus(t, do(t, http.MethodGet, a, "Host", "www.example.test"), "stored")
	r := do(t, http.MethodGet, b, "Host", "www.example.test")
	wantCacheStatus(t, r, "hit")
	if r.body != "generated 1" {
		t.Fatalf("instance B got %q", r.body)
	}
	o.wantHits(t, 1)
}
