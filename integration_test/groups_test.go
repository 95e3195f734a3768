package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// HTTP Cache Groups (RFC 9875) through a real Caddy, on SQLite (the
// default backend, with its default memory hot tier) and on Redis: a
// response's Cache-Groups puts it in groups of its origin; a POST whose
// response carries Cache-Group-Invalidation removes that origin's members
// of the groups and nothing else; the admin API purges a group.
func TestCacheGroupsThroughCaddy(t *testing.T) {
	for _, bc := range []struct {
		name    string
		storage func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string {
			return "storage sqlite " + filepath.Join(t.TempDir(), "c.db")
		}},
		{"redis", func(t *testing.T) string {
			return fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", testservers.Redis(t).URI, safeName(t))
		}},
	} {
		t.Run(bc.name, func(t *testing.T) { testCacheGroups(t, bc.storage(t)) })
	}
}

func testCacheGroups(t *testing.T, storage string) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		q := r.URL.Query()
		if r.Method != http.MethodGet {
			if inv := q.Get("inv"); inv != "" {
				w.Header().Set("Cache-Group-Invalidation", inv)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if g := q.Get("g"); g != "" {
			w.Header().Set("Cache-Groups", g)
		}
		if inv := q.Get("inv"); inv != "" {
			w.Header().Set("Cache-Group-Invalidation", inv) // on a GET: ignored
		}
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "%s%s %d", r.Host, r.URL.Path, n)
	})
	in := newIsoInstance(t)
	in.isoStart(fmt.Sprintf("http://:%d {\n\tcache {\n\t\tname grp\n\t\t%s\n\t\tstorage_timeout 5s\n\t}\n\treverse_proxy %s\n}\n",
		in.port, storage, o.addr()))
	get := func(host, target string) response {
		t.Helper()
		return do(t, http.MethodGet, in.site+target, "Host", host)
	}
	const (
		list      = "/1?g=%22list%22"
		listOther = "/2?g=%22list%22,%20%22other%22"
		other     = "/3?g=%22other%22"
		none      = "/4"
	)
	for _, p := range []string{list, listOther, other, none} {
		wantCacheStatus(t, get("a.example", p), "stored")
	}
	r := get("b.example", list)
	wantCacheStatus(t, r, "stored")
	if cg := r.header.Get("Cache-Groups"); cg != `"list"` {
		t.Fatalf("Cache-Groups to the client %q, want it forwarded", cg)
	}
	r = get("a.example", list)
	wantCacheStatus(t, r, "hit")
	if cg := r.header.Get("Cache-Groups"); cg != `"list"` {
		t.Fatalf("Cache-Groups on a hit %q", cg)
	}

	// Cache-Group-Invalidation on the response to a GET is ignored.
	get("a.example", "/get?inv=%22list%22")
	for _, p := range []string{list, listOther, other, none} {
		wantCacheStatus(t, get("a.example", p), "hit")
	}

	r = do(t, http.MethodPost, in.site+"/items?inv=%22list%22", "Host", "a.example")
	if r.status != http.StatusNoContent {
		t.Fatalf("POST: %d", r.status)
	}
	hits := o.hits.Load()
	wantNotHit(t, get("a.example", list))
	wantNotHit(t, get("a.example", listOther))
	wantCacheStatus(t, get("a.example", other), "hit")
	wantCacheStatus(t, get("a.example", none), "hit")
	wantCacheStatus(t, get("b.example", list), "hit") // another origin
	if n := o.hits.Load() - hits; n != 2 {
		t.Fatalf("origin saw %d requests after the invalidation, want 2", n)
	}
	series := `caddy_http_cache_group_invalidations_total{handler="grp",source="response"}`
	if v := in.scrape(series); v != 1 {
		t.Fatalf("%s = %v, want 1", series, v)
	}

	// Admin API: group "other" of a.example (written without the port:
	// the listener's port is found as for a purge by url), then "list"
	// of every origin.
	var p opsPurge
	if code := in.api("POST", "/cache/purge", map[string]any{"group": "other", "origin": "http://a.example"}, &p); code != 200 || p.Removed != 2 {
		t.Fatalf("purge group other of a.example: %d %+v", code, p)
	}
	wantNotHit(t, get("a.example", other))
	wantCacheStatus(t, get("a.example", list), "hit")
	if code := in.api("POST", "/cache/purge", map[string]any{"group": "list"}, &p); code != 200 || p.Removed != 2 {
		t.Fatalf("purge group list: %d %+v", code, p)
	}
	wantNotHit(t, get("b.example", list))
	wantCacheStatus(t, get("a.example", none), "hit")
	if v := in.scrape(`caddy_http_cache_group_invalidations_total{handler="grp",source="purge"}`); v != 2 {
		t.Fatalf("purge group invalidations = %v, want 2", v)
	}

	// explain names the groups
	var ex struct {
		Results []struct {
			Entry struct {
				Groups []string `json:"groups"`
			} `json:"entry"`
		} `json:"results"`
	}
	u := fmt.Sprintf("http://a.example:%d/2?g=%%22list%%22,%%20%%22other%%22", in.port)
	get("a.example", listOther)
	if code := in.api("GET", "/cache/explain?url="+url.QueryEscape(u), nil, &ex); code != 200 ||
		len(ex.Results) != 1 || strings.Join(ex.Results[0].Entry.Groups, ",") != "list,other" {
		t.Fatalf("explain: %d %+v", code, ex)
	}
}
