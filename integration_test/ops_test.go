package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// Operating the cache through a running Caddy: the admin API on the admin
// endpoint, HTTP purge on the site, metrics on the admin /metrics.

// admin sends a request to the admin endpoint and decodes the JSON answer.
func (in *instance) api(method, path string, body any, out any) int {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+in.admin+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		in.t.Fatalf("%s %s: %d, Content-Type %q: %s", method, path, resp.StatusCode, ct, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			in.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

type opsEntry struct {
	Handler string              `json:"handler"`
	Backend string              `json:"backend"`
	Key     string              `json:"key"`
	URL     string              `json:"url"`
	Status  int                 `json:"status"`
	Size    int64               `json:"size"`
	Tags    []string            `json:"tags"`
	Fresh   bool                `json:"fresh"`
	Header  map[string][]string `json:"header"`
	Body    *string             `json:"body"`
}

type opsList struct {
	Entries    []opsEntry `json:"entries"`
	NextCursor string     `json:"next_cursor"`
}

type opsPurge struct {
	DryRun  bool `json:"dry_run"`
	Removed int  `json:"removed"`
	Results []struct {
		Handler string   `json:"handler"`
		Backend string   `json:"backend"`
		Removed int      `json:"removed"`
		Keys    []string `json:"keys"`
		Error   string   `json:"error"`
	} `json:"results"`
}

type opsExplain struct {
	Results []struct {
		Handler string `json:"handler"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"results"`
}

// opsOrigin answers by path: tags from ?k=, Set-Cookie on /cookie, an
// already stale response with an ETag on /old.
func opsOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		if k := r.URL.Query().Get("k"); k != "" {
			w.Header().Set("Surrogate-Key", k)
		}
		switch r.URL.Path {
		case "/cookie":
			w.Header().Set("Set-Cookie", "session=1")
		case "/old":
			w.Header().Set("Age", "100")
			w.Header().Set("ETag", `"old"`)
			if r.Header.Get("If-None-Match") == `"old"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprintf(w, "v%d %s", n, r.URL.Path)
	})
}

// opsBackend is a storage block for the ops tests, unique to the test.
type opsBackend struct {
	name    string
	storage func(t *testing.T) string
}

// opsBackends are the backends the admin API is tested on.
var opsBackends = []opsBackend{
	{"memory", func(t *testing.T) string {
		return fmt.Sprintf("storage memory {\n\t\t\tname %s\n\t\t}", t.Name())
	}},
	{"sqlite", func(t *testing.T) string {
		return fmt.Sprintf("storage sqlite {\n\t\t\tpath %s\n\t\t}", filepath.Join(t.TempDir(), "cache.db"))
	}},
	{"redis", func(t *testing.T) string {
		return fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", testservers.Redis(t).URI, safeName(t))
	}},
}

// forEachBackend runs test once per backend in opsBackends.
func forEachBackend(t *testing.T, test func(t *testing.T, storage string)) {
	for _, b := range opsBackends {
		t.Run(b.name, func(t *testing.T) { test(t, b.storage(t)) })
	}
}

func opsSite(t *testing.T, o *origin, extra string) string {
	return opsSiteOn(fmt.Sprintf("storage memory {\n\t\t\tname %s\n\t\t}", t.Name()), o, extra)
}

func opsSiteOn(storage string, o *origin, extra string) string {
	return fmt.Sprintf("\tcache {\n\t\tname ops\n\t\t%s\n%s\t}\n\treverse_proxy %s", storage, extra, o.addr())
}

func (in *instance) list(query string) opsList {
	in.t.Helper()
	var l opsList
	if code := in.api("GET", "/cache/entries?handler=ops"+query, nil, &l); code != 200 {
		in.t.Fatalf("list: %d", code)
	}
	return l
}

func (in *instance) purge(body map[string]any) opsPurge {
	in.t.Helper()
	body["handler"] = "ops"
	var p opsPurge
	if code := in.api("POST", "/cache/purge", body, &p); code != 200 || len(p.Results) != 1 || p.Results[0].Error != "" {
		in.t.Fatalf("purge %v: %d %+v", body, code, p)
	}
	return p
}

func TestOpsListInspectPurge(t *testing.T) { forEachBackend(t, testOpsListInspectPurge) }

func testOpsListInspectPurge(t *testing.T, storage string) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSiteOn(storage, o, ""))
	for _, p := range []string{"/a?k=red", "/b?k=red+blue", "/dir/c", "/dir/d?k=blue"} {
		r := in.get(p)
		wantCacheStatus(t, r, "stored")
		if r.header.Get("Surrogate-Key") != "" {
			t.Fatalf("%s: Surrogate-Key reached the client: %q", p, r.header.Get("Surrogate-Key"))
		}
	}
	l := in.list("")
	if len(l.Entries) != 4 || l.Entries[0].Key != in.site+"/a?k=red" || l.Entries[0].Handler != "ops" ||
		l.Entries[0].Backend != strings.Fields(storage)[1] || !l.Entries[0].Fresh || strings.Join(l.Entries[1].Tags, " ") != "red blue" {
		t.Fatalf("list: %+v", l)
	}
	// pagination
	p1 := in.list("&limit=3")
	if len(p1.Entries) != 3 || p1.NextCursor == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	p2 := in.list("&limit=3&cursor=" + url.QueryEscape(p1.NextCursor))
	if len(p2.Entries) != 1 || p2.Entries[0].Key != in.site+"/dir/d?k=blue" || p2.NextCursor != "" {
		t.Fatalf("page 2: %+v", p2)
	}
	if l := in.list("&tag=blue"); len(l.Entries) != 2 {
		t.Fatalf("tag blue: %+v", l)
	}

	// inspect, through the escaped key in the path
	var e opsEntry
	key := in.site + "/b?k=red+blue"
	if code := in.api("GET", "/cache/entries/"+url.PathEscape(key)+"?body=1", nil, &e); code != 200 {
		t.Fatalf("inspect: %d", code)
	}
	if e.Key != key || e.Status != 200 || e.Body == nil || *e.Body != "v2 /b" || e.Header["Cache-Control"][0] != "public, max-age=60" {
		t.Fatalf("inspect: %+v", e)
	}
	var ea struct{ Error string }
	if code := in.api("GET", "/cache/entries/"+url.PathEscape(in.site+"/none"), nil, &ea); code != 404 || ea.Error == "" {
		t.Fatalf("inspect of an absent key: %d %q", code, ea.Error)
	}
	if code := in.api("POST", "/cache/purge", map[string]any{"url": "x", "tag": "y"}, &ea); code != 400 || ea.Error == "" {
		t.Fatalf("bad purge: %d %q", code, ea.Error)
	}

	// purge by url: dry run first
	if p := in.purge(map[string]any{"url": in.site + "/a?k=red", "dry_run": true}); !p.DryRun || p.Removed != 1 {
		t.Fatalf("url dry run: %+v", p)
	}
	wantCacheStatus(t, in.get("/a?k=red"), "hit")
	if p := in.purge(map[string]any{"url": in.site + "/a?k=red"}); p.Removed != 1 {
		t.Fatalf("url: %+v", p)
	}
	wantCacheStatus(t, in.get("/a?k=red"), "fwd=uri-miss")

	// by prefix
	if p := in.purge(map[string]any{"prefix": in.site + "/dir/", "dry_run": true}); p.Removed != 2 {
		t.Fatalf("prefix dry run: %+v", p)
	}
	if p := in.purge(map[string]any{"prefix": in.site + "/dir/"}); p.Removed != 2 {
		t.Fatalf("prefix: %+v", p)
	}
	wantCacheStatus(t, in.get("/dir/c"), "fwd=uri-miss")

	// by tag
	if p := in.purge(map[string]any{"tag": "red", "dry_run": true}); p.Removed != 2 {
		t.Fatalf("tag dry run: %+v", p)
	}
	if p := in.purge(map[string]any{"tag": "red"}); p.Removed != 2 {
		t.Fatalf("tag: %+v", p)
	}
	wantCacheStatus(t, in.get("/b?k=red+blue"), "fwd=uri-miss")
	wantCacheStatus(t, in.get("/dir/c"), "hit")

	// stats
	var st struct {
		Handlers []struct {
			Handler      string
			Entries      int64
			Hits, Misses int64
			HitRatio     float64 `json:"hit_ratio"`
		}
	}
	if code := in.api("GET", "/cache/stats?handler=ops", nil, &st); code != 200 || len(st.Handlers) != 1 {
		t.Fatalf("stats: %d %+v", code, st)
	}
	if s := st.Handlers[0]; s.Entries != 2 || s.Hits != 2 || s.Misses != 7 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestOpsExplain(t *testing.T) { forEachBackend(t, testOpsExplain) }

func testOpsExplain(t *testing.T, storage string) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSiteOn(storage, o, ""))
	in.get("/page")
	in.get("/cookie")
	in.get("/old")
	explain := func(q string) (string, string) {
		t.Helper()
		var ex opsExplain
		if code := in.api("GET", "/cache/explain?handler=ops&url="+url.QueryEscape(in.site)+q, nil, &ex); code != 200 || len(ex.Results) != 1 {
			t.Fatalf("explain %s: %d %+v", q, code, ex)
		}
		return ex.Results[0].Outcome, ex.Results[0].Reason
	}
	for _, c := range []struct{ q, outcome, reason string }{
		{"/page", "hit", "fresh: age "},
		{"/page&header=" + url.QueryEscape("Cache-Control: no-cache"), "miss", "request no-cache"},
		{"/cookie", "miss", "not stored: Set-Cookie"},
		{"/never", "miss", "not in the cache"},
		{"/old", "revalidate", "stale: max-age=60 exceeded by 40s; would revalidate with If-None-Match"},
		{"/page&method=DELETE", "bypass", "unsafe method DELETE"},
	} {
		outcome, reason := explain(c.q)
		if outcome != c.outcome || !strings.Contains(reason, c.reason) {
			t.Errorf("explain %s: %s %q, want %s and %q", c.q, outcome, reason, c.outcome, c.reason)
		}
	}
	// and what explain said happens
	wantCacheStatus(t, in.get("/old"), "fwd=stale; fwd-status=304")
	o.wantHits(t, 4)
}

// The admin routes exist only on the admin endpoint: on the site, /cache/
// is just a path that goes to the origin, and nothing is purged.
func TestOpsPurgeAPINotOnSite(t *testing.T) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSite(t, o, ""))
	in.get("/page")
	req, _ := http.NewRequest("POST", in.site+"/cache/purge", strings.NewReader(`{"all": true}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "v2 /cache/purge" {
		t.Fatalf("site answered POST /cache/purge with %d %q, want the origin's answer", resp.StatusCode, b)
	}
	r := in.get("/cache/entries")
	if r.body != "v3 /cache/entries" {
		t.Fatalf("site answered GET /cache/entries with %q", r.body)
	}
	wantCacheStatus(t, in.get("/page"), "hit")
	if l := in.list(""); len(l.Entries) != 2 {
		t.Fatalf("entries after site requests: %+v", l)
	}
}

func TestOpsHTTPPurge(t *testing.T) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSite(t, o, "\t\tpurge {\n\t\t\tremote_ip 127.0.0.1/8\n\t\t}\n"))
	in.get("/page")
	r := do(t, "PURGE", in.site+"/page")
	if r.status != 200 || !strings.Contains(r.body, `"purged":1`) {
		t.Fatalf("PURGE: %d %s", r.status, r.body)
	}
	wantCacheStatus(t, in.get("/page"), "fwd=uri-miss")

	// from an address the matcher does not allow: 405, nothing removed
	in.reload(opsSite(t, o, "\t\tpurge BAN {\n\t\t\tremote_ip 10.0.0.0/8\n\t\t}\n"))
	wantCacheStatus(t, in.get("/page"), "hit")
	r = do(t, "BAN", in.site+"/page")
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("BAN from 127.0.0.1: %d %s", r.status, r.body)
	}
	wantCacheStatus(t, in.get("/page"), "hit")
	o.wantHits(t, 2)
}

// scrape returns the value of one series on the admin endpoint's /metrics.
func (in *instance) scrape(series string) float64 {
	in.t.Helper()
	resp, err := client.Get("http://" + in.admin + "/metrics")
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				in.t.Fatalf("metrics line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func TestOpsMetrics(t *testing.T) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSite(t, o, ""))
	hits := `caddy_http_cache_requests_total{handler="ops",result="hit"}`
	misses := `caddy_http_cache_requests_total{handler="ops",result="miss"}`
	entries := `caddy_http_cache_entries{backend="memory",handler="ops"}`
	in.get("/m1")
	in.get("/m1")
	in.get("/m1")
	in.get("/m2")
	if h, m, e := in.scrape(hits), in.scrape(misses), in.scrape(entries); h != 2 || m != 2 || e != 2 {
		t.Fatalf("after traffic: hits %v misses %v entries %v, want 2 2 2", h, m, e)
	}
	// counters keep counting across a reload
	in.reload(opsSite(t, o, "\t\tmax_entry_size 2MiB\n"))
	in.get("/m1")
	if h := in.scrape(hits); h != 3 {
		t.Fatalf("hits after reload %v, want 3", h)
	}
}

// Storage operations of a non-memory backend are timed on /metrics.
func TestOpsStorageTimings(t *testing.T) {
	o := opsOrigin(t)
	in := startCaddy(t, opsSiteOn(fmt.Sprintf("storage sqlite %s\n\t\tmemory off", filepath.Join(t.TempDir(), "c.db")), o, ""))
	series := `caddy_http_cache_storage_operation_duration_seconds_count{backend="sqlite",op="get"}`
	before := in.scrape(series)
	if before < 0 {
		before = 0
	}
	in.get("/t1")
	in.get("/t1")
	in.get("/t2")
	if v := in.scrape(series); v-before < 3 {
		t.Fatalf("sqlite get count grew by %v, want at least 3", v-before)
	}
}
