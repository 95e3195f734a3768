package integration

import (
	"fmt"
	"net/http"
	"testing"
)

func versionedOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintf(w, "v%d %s", n, r.URL.Path)
	})
}

// A stored response survives `caddy reload` with a changed option: the
// memory store lives in a pool that outlives the old config.
func TestHitSurvivesReload(t *testing.T) {
	o := versionedOrigin(t)
	site := func(opt string) string {
		return fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t}\n\t\t%s\n\t}\n\treverse_proxy %s", t.Name(), opt, o.addr())
	}
	in := startCaddy(t, site("max_entry_size 1MiB"))
	r := in.get("/page")
	wantCacheStatus(t, r, "fwd=uri-miss; stored")
	wantCacheStatus(t, in.get("/page"), "hit")
	in.reload(site("max_entry_size 2MiB"))
	r = in.get("/page")
	wantCacheStatus(t, r, "hit")
	if r.body != "v1 /page" {
		t.Fatalf("body %q", r.body)
	}
	// and once more with a resized store
	in.reload(fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t\tmax_size 32MiB\n\t\t}\n\t}\n\treverse_proxy %s", t.Name(), o.addr()))
	wantCacheStatus(t, in.get("/page"), "hit")
	o.wantHits(t, 1)
}

// The JSON form of the handler is accepted by the admin API's /load.
func TestJSONConfigThroughAdmin(t *testing.T) {
	o := versionedOrigin(t)
	in := startCaddy(t, "\trespond \"placeholder\"")
	cfg := fmt.Sprintf(`{
		"admin": {"listen": %q},
		"apps": {"http": {"servers": {"s": {
			"listen": ["127.0.0.1:%d"],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [
				{"handler": "cache", "storage": {"backend": "memory", "name": %q}, "ttl": "1m", "max_entry_size": 1048576, "lock_timeout": "2s"},
				{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
			]}]
		}}}}
	}`, in.admin, in.port, t.Name(), o.addr())
	in.loadJSON([]byte(cfg))
	wantCacheStatus(t, in.get("/j"), "stored")
	r := in.get("/j")
	wantCacheStatus(t, r, "hit")
	if r.body != "v1 /j" {
		t.Fatalf("body %q", r.body)
	}
	o.wantHits(t, 1)
}

// Through a real reverse_proxy: revalidation with a 304 from the origin.
func TestReverseProxyRevalidation(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"abc"`)
		if r.Header.Get("If-None-Match") == `"abc"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "full-%d", n)
	})
	in := startCaddy(t, fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t}\n\t}\n\treverse_proxy %s", t.Name(), o.addr()))
	r := in.get("/")
	if r.body != "full-1" {
		t.Fatalf("body %q", r.body)
	}
	r = in.get("/")
	if r.status != 200 || r.body != "full-1" {
		t.Fatalf("got %d %q, want the stored body after a 304", r.status, r.body)
	}
	wantCacheStatus(t, r, "fwd-status=304")
	o.wantHits(t, 2)
}
