package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// A response stored with the persistent storage survives a restart of the
// Caddy process.
func TestHitSurvivesRestart(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "generated %d", n)
	})
	home := t.TempDir()
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := siteCaddyfile(port, fmt.Sprintf("\tcache {\n\t\tstorage sqlite\n\t}\n\treverse_proxy %s", o.addr()))
	p := startCaddyProcess(t, cfg, home, fmt.Sprintf("127.0.0.1:%d", port))
	r := do(t, http.MethodGet, site+"/persist")
	wantCacheStatus(t, r, "stored")
	wantCacheStatus(t, do(t, http.MethodGet, site+"/persist"), "hit")
	p.stop()
	startCaddyProcess(t, cfg, home, fmt.Sprintf("127.0.0.1:%d", port))
	r = do(t, http.MethodGet, site+"/persist")
	wantCacheStatus(t, r, "hit")
	if r.body != "generated 1" {
		t.Fatalf("body %q after restart", r.body)
	}
	o.wantHits(t, 1)
}
