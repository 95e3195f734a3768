package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Isolation (issue 12): one site's, route's or store's responses must never
// be served to another, whatever the client writes in Host, the path or the
// query, and however many cache handlers a config has. Each defect test
// asserts the correct behaviour; the positive controls assert the sharing
// that is wanted.

// newIsoInstance allocates the admin endpoint and a first site port; the
// caller writes the site blocks (isoStart, isoReload).
func newIsoInstance(t *testing.T) *instance {
	t.Helper()
	in := &instance{t: t, port: freePort(t)}
	in.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.site = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	return in
}

// isoAdapt adapts whole site blocks under the harness's global options,
// formatted first so that the adapter has no indentation to warn about.
func (in *instance) isoAdapt(sites string) []byte {
	in.t.Helper()
	text := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	skip_install_trust
	grace_period 1s
}
%s
`, in.admin, sites)
	formatted := caddyfile.Format([]byte(text))
	cfg, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt(formatted, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		in.t.Fatalf("adapting Caddyfile: %v\n%s", err, formatted)
	}
	for _, w := range warns {
		in.t.Logf("adapt warning: %s", w.String())
	}
	return cfg
}

// isoStart loads the site blocks into the in-process Caddy.
func (in *instance) isoStart(sites string) {
	in.t.Helper()
	if err := caddy.Load(in.isoAdapt(sites), true); err != nil {
		in.t.Fatalf("loading config: %v", err)
	}
	in.t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			in.t.Errorf("stopping caddy: %v", err)
		}
	})
}

// isoReload posts new site blocks to the admin endpoint's /load.
func (in *instance) isoReload(sites string) {
	in.t.Helper()
	in.loadJSON(in.isoAdapt(sites))
}

// isoSite is one site block on the instance's port.
func (in *instance) isoSite(body string) string {
	return fmt.Sprintf("http://127.0.0.1:%d {\n%s\n}\n", in.port, body)
}

// wantNotHit fails unless the cache handled r (a Cache-Status is present)
// without serving it from the store.
func wantNotHit(t testing.TB, r response) {
	t.Helper()
	cs := r.header.Get("Cache-Status")
	if cs == "" {
		t.Fatalf("no Cache-Status (body %q): the request did not go through the cache", r.body)
	}
	if strings.Contains(cs, "; hit") {
		t.Fatalf("Cache-Status %q: served from the cache, want a miss (body %q)", cs, r.body)
	}
}

func wantBody(t testing.TB, r response, want string) {
	t.Helper()
	if r.body != want {
		t.Fatalf("body %q (Cache-Status %q), want %q", r.body, r.header.Get("Cache-Status"), want)
	}
}

// isoStats returns the live handlers' names with their store's entry counts.
func (in *instance) isoStats() map[string]int64 {
	in.t.Helper()
	var st struct {
		Handlers []struct {
			Handler string `json:"handler"`
			Entries int64  `json:"entries"`
			Error   string `json:"error"`
		} `json:"handlers"`
	}
	if code := in.api("GET", "/cache/stats", nil, &st); code != http.StatusOK {
		in.t.Fatalf("GET /cache/stats: %d", code)
	}
	out := map[string]int64{}
	for _, h := range st.Handlers {
		if h.Error != "" {
			in.t.Fatalf("stats of %s: %s", h.Handler, h.Error)
		}
		out[h.Handler] = h.Entries
	}
	return out
}

// isoKeys returns the keys of every entry of every live handler.
func (in *instance) isoKeys() []string {
	in.t.Helper()
	var l opsList
	if code := in.api("GET", "/cache/entries?limit=10000", nil, &l); code != http.StatusOK {
		in.t.Fatalf("GET /cache/entries: %d", code)
	}
	var keys []string
	for _, e := range l.Entries {
		keys = append(keys, e.Key)
	}
	return keys
}

// pathOrigin answers "<label> <path as received>", cacheable for a minute.
func pathOrigin(t *testing.T, label string) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %s", label, r.URL.EscapedPath())
	})
}

// queryOrigin echoes the raw query it received, cacheable for a minute.
func queryOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "q=%s", r.URL.RawQuery)
	})
}

// Defect 1: two handlers on two different stores share nothing, not even
// the in-process hot tier in front of them.
func TestIsolationSeparateStoresSeparateHotTiers(t *testing.T) {
	dir := t.TempDir()
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(fmt.Sprintf(`	@a header X-Route a
	route @a {
		cache {
			storage sqlite %s
		}
		header Cache-Control "max-age=60"
		respond "answer from A"
	}
	route {
		cache {
			storage sqlite %s
		}
		header Cache-Control "max-age=60"
		respond "answer from B"
	}`, filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"))))

	r := in.get("/x", "X-Route", "a")
	wantBody(t, r, "answer from A")
	wantCacheStatus(t, r, "stored")
	wantCacheStatus(t, in.get("/x", "X-Route", "a"), "hit")

	r = in.get("/x")
	wantBody(t, r, "answer from B")
	wantNotHit(t, r)
	wantCacheStatus(t, in.get("/x"), "hit")
	wantBody(t, in.get("/x", "X-Route", "a"), "answer from A")
}

// Defect 2: handlers without a name get a name derived from their storage
// config: distinct per store, and the same whatever the order of the
// handlers in the config.
func TestIsolationDefaultNamesPerStore(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	route := func(label, path string) string {
		return fmt.Sprintf(`	route @%[1]s {
		cache {
			storage sqlite %[2]s
		}
		header Cache-Control "max-age=60"
		respond "store %[1]s {path}"
	}
`, label, path)
	}
	matchers := "\t@a header X-Route a\n\t@b header X-Route b\n"
	in := newIsoInstance(t)
	abSites := in.isoSite(matchers + route("a", a) + route("b", b))
	baSites := in.isoSite(matchers + route("b", b) + route("a", a))
	// the reversed config really provisions the handlers in the other order
	if cfg := in.isoAdapt(baSites); bytes.Index(cfg, []byte("b.db")) > bytes.Index(cfg, []byte("a.db")) {
		t.Fatalf("reversed config still has a.db first: %s", cfg)
	}
	in.isoStart(abSites)

	// one entry in a.db, two in b.db
	for _, req := range []struct{ route, path string }{{"a", "/a1"}, {"b", "/b1"}, {"b", "/b2"}} {
		r := in.get(req.path, "X-Route", req.route)
		wantBody(t, r, "store "+req.route+" "+req.path)
		wantCacheStatus(t, r, "stored")
		wantCacheStatus(t, in.get(req.path, "X-Route", req.route), "hit")
	}

	before := in.isoStats()
	if len(before) != 2 {
		t.Fatalf("handlers %v, want two (one per store)", before)
	}
	for name := range before {
		if strings.HasSuffix(name, "e3b0c442") || strings.HasSuffix(name, "e3b0c442-2") {
			t.Fatalf("handlers %v: default name %q is the hash of an empty storage config, not of the store's", before, name)
		}
	}
	counts := map[int64]string{}
	for name, n := range before {
		counts[n] = name
	}
	if counts[1] == "" || counts[2] == "" {
		t.Fatalf("handlers %v, want one store with 1 entry (a.db) and one with 2 (b.db)", before)
	}
	t.Logf("default names: a.db %s, b.db %s", counts[1], counts[2])

	in.isoReload(baSites)
	after := in.isoStats()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after reloading with the handlers in the other order: name -> entries %v, want %v (each store keeps its name)", after, before)
	}
	// and the stores still answer as before
	wantCacheStatus(t, in.get("/a1", "X-Route", "a"), "hit")
	wantCacheStatus(t, in.get("/b2", "X-Route", "b"), "hit")
}

// Defect 3: handle_path strips the prefix, but /d1/pic.png and /d2/pic.png
// are different resources from different upstreams, on one store.
func TestIsolationHandlePathKeys(t *testing.T) {
	oa, ob := pathOrigin(t, "from A"), pathOrigin(t, "from B")
	in := newIsoInstance(t)
	name := t.Name()
	in.isoStart(in.isoSite(fmt.Sprintf(`	handle_path /d1/* {
		cache {
			storage memory {
				name %[1]s
			}
		}
		reverse_proxy %[2]s
	}
	handle_path /d2/* {
		cache {
			storage memory {
				name %[1]s
			}
		}
		reverse_proxy %[3]s
	}`, name, oa.addr(), ob.addr())))

	r := in.get("/d1/pic.png")
	wantBody(t, r, "from A /pic.png")
	wantCacheStatus(t, r, "stored")
	wantCacheStatus(t, in.get("/d1/pic.png"), "hit")

	r = in.get("/d2/pic.png")
	wantBody(t, r, "from B /pic.png")
	wantNotHit(t, r)
	ob.wantHits(t, 1)
	wantCacheStatus(t, in.get("/d2/pic.png"), "hit")
	oa.wantHits(t, 1)
}

// Defect 3, with two handle_path routes of different access on the same
// sqlite file and no names (so one shared cache): /public/report must not
// be served the page stored for /internal/report.
func TestIsolationHandlePathKeysSharedSQLite(t *testing.T) {
	pub, internal := pathOrigin(t, "public"), pathOrigin(t, "internal")
	db := filepath.Join(t.TempDir(), "cache.db")
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(fmt.Sprintf(`	handle_path /public/* {
		cache {
			storage sqlite %[1]s
		}
		reverse_proxy %[2]s
	}
	handle_path /internal/* {
		cache {
			storage sqlite %[1]s
		}
		reverse_proxy %[3]s
	}`, db, pub.addr(), internal.addr())))

	r := in.get("/internal/report")
	wantBody(t, r, "internal /report")
	wantCacheStatus(t, r, "stored")

	r = in.get("/public/report")
	wantBody(t, r, "public /report")
	wantNotHit(t, r)
	pub.wantHits(t, 1)
	wantCacheStatus(t, in.get("/public/report"), "hit")
	wantBody(t, in.get("/internal/report"), "internal /report")
	internal.wantHits(t, 1)
}

// Defect 4: the port in the key is the listener's, not the one the client
// writes in Host. Caddy's host matcher ignores the port, so a request to
// site B's port with site A's Host is served by site B: it must not be
// stored under site A's key.
func TestIsolationForgedHostPort(t *testing.T) {
	in := newIsoInstance(t)
	p1, p2 := in.port, freePort(t)
	name := t.Name()
	site := func(port int, body string) string {
		return fmt.Sprintf(`http://shop.test:%d {
	cache {
		storage memory {
			name %s
		}
	}
	route {
		header Cache-Control "max-age=60"
		respond %q
	}
}
`, port, name, body)
	}
	in.isoStart(site(p1, "site A") + site(p2, "site B (admin)"))
	hostA := fmt.Sprintf("shop.test:%d", p1)
	keyA := fmt.Sprintf("shop.test:%d/page", p1)

	forged := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/page", p2), "Host", hostA)
	wantBody(t, forged, "site B (admin)")
	for _, k := range in.isoKeys() {
		if strings.Contains(k, keyA) {
			t.Fatalf("after a request to port %d with Host %s: entry %q, stored under site A's key; entries %q", p2, hostA, k, in.isoKeys())
		}
	}

	r := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/page", p1), "Host", hostA)
	wantBody(t, r, "site A")
	wantNotHit(t, r)
	found := false
	for _, k := range in.isoKeys() {
		found = found || strings.Contains(k, keyA)
	}
	if !found {
		t.Fatalf("after a plain request to site A: no entry for %s; entries %q", keyA, in.isoKeys())
	}
	wantCacheStatus(t, do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/page", p1), "Host", hostA), "hit")
}

// startQuerySite is a site with ignore_query utm_* in front of o.
func startQuerySite(t *testing.T, o *origin) *instance {
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(fmt.Sprintf(`	cache {
		name %s
		storage memory {
			name %s
		}
		key {
			ignore_query utm_*
		}
	}
	reverse_proxy %s`, "iso-query", t.Name(), o.addr())))
	return in
}

// Defect 5, parameter cloaking: origins split the query at ';' too, so
// utm_x=1;id=2 carries id=2, and the response to it must never be stored
// as the response to ?id=1.
func TestIsolationQueryCloaking(t *testing.T) {
	o := queryOrigin(t)
	in := startQuerySite(t, o)
	r := in.get("/p?id=1&utm_x=1;id=2")
	wantBody(t, r, "q=id=1&utm_x=1;id=2")

	r = in.get("/p?id=1")
	wantBody(t, r, "q=id=1")
	wantNotHit(t, r)
}

// Defect 5: an ignored parameter's name is matched after percent-decoding.
func TestIsolationIgnoreQueryPercentEncodedName(t *testing.T) {
	o := queryOrigin(t)
	in := startQuerySite(t, o)
	wantCacheStatus(t, in.get("/q?utm%5Fsource=x&id=1"), "stored")
	r := in.get("/q?id=1")
	wantCacheStatus(t, r, "hit")
	o.wantHits(t, 1)
}

// Defect 5: percent-encoded unreserved characters are the characters
// (RFC 3986 §6.2.2.2), so /p%41th and /pAth are one URL.
func TestIsolationPathPercentEncodingNormalised(t *testing.T) {
	o := pathOrigin(t, "origin")
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(opsSite(t, o, "")))
	wantCacheStatus(t, in.get("/p%41th"), "stored")
	wantCacheStatus(t, in.get("/pAth"), "hit")
	o.wantHits(t, 1)
}

// Defect 5: an empty query is no query (RFC 3986 §6.2.3): /x? and /x are
// one URL.
func TestIsolationEmptyQueryNormalised(t *testing.T) {
	o := pathOrigin(t, "origin")
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(opsSite(t, o, "")))
	wantCacheStatus(t, in.get("/x?"), "stored")
	wantCacheStatus(t, in.get("/x"), "hit")
	o.wantHits(t, 1)
}

// Defect 5: purge normalises its URL as the key does.
func TestIsolationPurgeNormalisedURL(t *testing.T) {
	o := pathOrigin(t, "origin")
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(opsSite(t, o, "")))
	wantCacheStatus(t, in.get("/pUrge"), "stored")
	wantCacheStatus(t, in.get("/pUrge"), "hit")
	var p opsPurge
	if code := in.api("POST", "/cache/purge", map[string]any{"url": in.site + "/p%55rge"}, &p); code != http.StatusOK {
		t.Fatalf("purge: %d %+v", code, p)
	}
	r := in.get("/pUrge")
	if strings.Contains(r.header.Get("Cache-Status"), "; hit") {
		t.Fatalf("after purging %s/p%%55rge (removed %d): GET /pUrge is still a hit (Cache-Status %q)", in.site, p.Removed, r.header.Get("Cache-Status"))
	}
	wantNotHit(t, r)
	o.wantHits(t, 2)
}

// Defect 6: a successful POST /a? invalidates what GET /a? stored (RFC
// 9111 §4.4), the empty query included.
func TestIsolationUnsafeMethodEmptyQuery(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Method == http.MethodGet {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprintf(w, "%s %d", r.Method, n)
	})
	in := newIsoInstance(t)
	in.isoStart(in.isoSite(opsSite(t, o, "")))
	wantCacheStatus(t, in.get("/a?"), "stored")
	wantCacheStatus(t, in.get("/a?"), "hit")
	if r := do(t, http.MethodPost, in.site+"/a?"); r.status != http.StatusOK {
		t.Fatalf("POST /a?: %d %q", r.status, r.body)
	}
	r := in.get("/a?")
	wantNotHit(t, r)
	wantBody(t, r, "GET 3")
}

// sameStoreSite is two routes, chosen by X-Route, whose cache handlers use
// the sqlite file db with the extra options one and two.
func sameStoreSite(in *instance, db, one, two string) string {
	route := func(label, extra string) string {
		return fmt.Sprintf(`	route @%[1]s {
		cache {
			storage sqlite %[2]s
%[3]s		}
		header Cache-Control "max-age=60"
		respond "via %[1]s"
	}
`, label, db, extra)
	}
	return in.isoSite("\t@one header X-Route one\n\t@two header X-Route two\n" + route("one", one) + route("two", two))
}

// Positive control (passes today): two handlers on the same store with the
// same config and no name are one cache.
func TestIsolationSameStoreSharedByDefault(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cache.db")
	in := newIsoInstance(t)
	in.isoStart(sameStoreSite(in, db, "", ""))
	r := in.get("/s", "X-Route", "one")
	wantBody(t, r, "via one")
	wantCacheStatus(t, r, "stored")
	r = in.get("/s", "X-Route", "two")
	wantBody(t, r, "via one")
	wantCacheStatus(t, r, "hit")
}

// Defect 7: two handlers on the same store with different names are two
// caches.
func TestIsolationSameStoreDifferentNames(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cache.db")
	in := newIsoInstance(t)
	in.isoStart(sameStoreSite(in, db, "\t\t\tname iso-one\n", "\t\t\tname iso-two\n"))
	r := in.get("/s", "X-Route", "one")
	wantBody(t, r, "via one")
	wantCacheStatus(t, r, "stored")
	wantCacheStatus(t, in.get("/s", "X-Route", "one"), "hit")

	r = in.get("/s", "X-Route", "two")
	wantBody(t, r, "via two")
	wantNotHit(t, r)
	wantCacheStatus(t, in.get("/s", "X-Route", "two"), "hit")
	names := []string{}
	for n := range in.isoStats() {
		names = append(names, n)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "iso-one iso-two" {
		t.Fatalf("handlers %v, want iso-one iso-two", names)
	}
}
