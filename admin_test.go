package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
)

// opsEnv is a testEnv whose handler has a name, unregistered when the test
// ends.
func opsEnv(t *testing.T, config string, origin func(w http.ResponseWriter, r *http.Request, n int64) error) *testEnv {
	t.Helper()
	var m map[string]any
	if config == "" {
		config = "{}"
	}
	if err := json.Unmarshal([]byte(config), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["name"]; !ok {
		m["name"] = "t-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	b, _ := json.Marshal(m)
	env := newEnv(t, string(b), origin)
	t.Cleanup(func() { _ = env.h.Cleanup() })
	return env
}

func (e *testEnv) name() string { return e.h.ops.name }

// admin sends a request to the admin API's handler and decodes the JSON
// answer into out (when not nil).
func admin(t *testing.T, method, target string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, target, rd)
	rec := httptest.NewRecorder()
	adminMux().ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, target, ct)
	}
	raw := rec.Body.Bytes()
	var probe any
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, target, err, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, target, raw, err)
		}
	}
	return rec.Code
}

type listAnswer struct {
	Entries    []entryInfo `json:"entries"`
	NextCursor string      `json:"next_cursor"`
}

type errAnswer struct {
	Error string `json:"error"`
}

func keysOf(entries []entryInfo) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

func wantKeys(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("keys\n got %q\nwant %q", got, want)
	}
}

// tagged answers with max-age=60 and the tags given by the query (?k=a+b).
func tagged(w http.ResponseWriter, r *http.Request, n int64) error {
	w.Header().Set("Cache-Control", "max-age=60")
	if k := r.URL.Query().Get("k"); k != "" {
		w.Header().Set("Surrogate-Key", k)
	}
	if c := r.URL.Query().Get("c"); c != "" {
		w.Header().Set("Cache-Tag", c)
	}
	body := fmt.Sprintf("body-%d", n)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	fmt.Fprint(w, body)
	return nil
}

func TestAdminListAndInspect(t *testing.T) {
	testAdminList(t, opsEnv(t, "", tagged), "memory")
}

// The same on SQLite behind the hot tier, whose listing pages walk the file
// in key order from the cursor on (storage.OrderedLister) instead of the
// whole store.
func TestAdminListSQLite(t *testing.T) {
	cfg := fmt.Sprintf(`{"storage": {"backend": "sqlite", "path": %q}}`, filepath.Join(t.TempDir(), "list.db"))
	testAdminList(t, opsEnv(t, cfg, tagged), "sqlite")
}

func testAdminList(t *testing.T, env *testEnv, backend string) {
	t.Helper()
	base := env.srv.URL
	for _, p := range []string{"/b?k=x", "/a/1?k=x+y", "/a/2?c=z", "/c"} {
		wantStatus(t, env.get(p), "stored")
	}
	q := "/cache/entries?handler=" + env.name()
	var ans listAnswer
	if code := admin(t, "GET", q, nil, &ans); code != 200 {
		t.Fatalf("list: %d", code)
	}
	wantKeys(t, keysOf(ans.Entries), base+"/a/1?k=x+y", base+"/a/2?c=z", base+"/b?k=x", base+"/c")
	e := ans.Entries[0]
	if e.Handler != env.name() || e.Backend != backend || e.Status != 200 || e.Size != 6 || !e.Fresh || e.Kind != "response" {
		t.Fatalf("entry %+v", e)
	}
	if strings.Join(e.Tags, ",") != "x,y" || e.URL != base+"/a/1?k=x+y" {
		t.Fatalf("tags %q url %q", e.Tags, e.URL)
	}
	if d := e.FreshUntil.Sub(e.StoredAt); d != 60*time.Second {
		t.Fatalf("fresh_until - stored_at = %v, want 60s", d)
	}

	// pages of 3 then 1, following next_cursor
	var p1, p2 listAnswer
	admin(t, "GET", q+"&limit=3", nil, &p1)
	if len(p1.Entries) != 3 || p1.NextCursor == "" {
		t.Fatalf("page 1: %d entries, cursor %q", len(p1.Entries), p1.NextCursor)
	}
	admin(t, "GET", q+"&limit=3&cursor="+url.QueryEscape(p1.NextCursor), nil, &p2)
	wantKeys(t, keysOf(p2.Entries), base+"/c")
	if p2.NextCursor != "" {
		t.Fatalf("last page has a cursor %q", p2.NextCursor)
	}
	// the last key works as a cursor with one handler in scope
	admin(t, "GET", q+"&cursor="+url.QueryEscape(base+"/a/2?c=z"), nil, &p2)
	wantKeys(t, keysOf(p2.Entries), base+"/b?k=x", base+"/c")

	// filters
	admin(t, "GET", q+"&prefix="+url.QueryEscape(base+"/a/"), nil, &ans)
	wantKeys(t, keysOf(ans.Entries), base+"/a/1?k=x+y", base+"/a/2?c=z")
	admin(t, "GET", q+"&tag=x", nil, &ans)
	wantKeys(t, keysOf(ans.Entries), base+"/a/1?k=x+y", base+"/b?k=x")
	admin(t, "GET", q+"&tag=z", nil, &ans)
	wantKeys(t, keysOf(ans.Entries), base+"/a/2?c=z")
	admin(t, "GET", q+"&host=other.example", nil, &ans)
	wantKeys(t, keysOf(ans.Entries))
	host := strings.TrimPrefix(base, "http://")
	admin(t, "GET", q+"&host="+host+"&limit=1", nil, &ans)
	wantKeys(t, keysOf(ans.Entries), base+"/a/1?k=x+y")

	// inspect one, with and without body
	var info entryInfo
	key := base + "/a/1?k=x+y"
	if code := admin(t, "GET", "/cache/entries/"+url.PathEscape(key), nil, &info); code != 200 {
		t.Fatalf("inspect: %d", code)
	}
	if info.Key != key || info.Header.Get("Cache-Control") != "max-age=60" || info.Body != nil {
		t.Fatalf("inspect: %+v", info)
	}
	if info.Header.Get("Surrogate-Key") != "" {
		t.Fatalf("Surrogate-Key stored although stripped: %q", info.Header.Get("Surrogate-Key"))
	}
	admin(t, "GET", "/cache/entries/"+url.PathEscape(key)+"?body=1&handler="+env.name(), nil, &info)
	if info.Body == nil || *info.Body != "body-2" {
		t.Fatalf("inspect body: %v", info.Body)
	}

	// errors
	for _, c := range []struct {
		method, target string
		code           int
		msg            string
	}{
		{"GET", "/cache/entries/" + url.PathEscape(base+"/nope"), 404, "not in the cache"},
		{"GET", q + "&limit=0", 400, "limit"},
		{"GET", q + "&limit=x", 400, "limit"},
		{"GET", q + "&cursor=%25%25", 400, "cursor"},
		{"GET", "/cache/entries?handler=no-such-handler", 404, "no-such-handler"},
		{"POST", "/cache/entries", 405, "use GET"},
		{"GET", "/cache/purge", 405, "use POST"},
		{"GET", "/cache/nothing", 404, "no such cache API route"},
	} {
		var ea errAnswer
		if code := admin(t, c.method, c.target, nil, &ea); code != c.code || !strings.Contains(ea.Error, c.msg) {
			t.Errorf("%s %s: %d %q, want %d and an error containing %q", c.method, c.target, code, ea.Error, c.code, c.msg)
		}
	}
}

type purgeAns struct {
	DryRun  bool          `json:"dry_run"`
	Removed int           `json:"removed"`
	Results []purgeResult `json:"results"`
}

func purgeOK(t *testing.T, env *testEnv, body map[string]any) purgeAns {
	t.Helper()
	body["handler"] = env.name()
	var ans purgeAns
	if code := admin(t, "POST", "/cache/purge", body, &ans); code != 200 {
		t.Fatalf("purge %v: %d %+v", body, code, ans)
	}
	if len(ans.Results) != 1 || ans.Results[0].Handler != env.name() || ans.Results[0].Error != "" {
		t.Fatalf("purge %v: results %+v", body, ans.Results)
	}
	return ans
}

// A url purge removes every Vary variant; a dry run removes nothing.
func TestAdminPurgeURLVariants(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/v", "Accept-Language", "en")
	env.get("/v", "Accept-Language", "de")
	env.get("/other", "Accept-Language", "en")
	env.wantHits(3)
	ans := purgeOK(t, env, map[string]any{"url": env.srv.URL + "/v", "dry_run": true})
	if !ans.DryRun || ans.Removed != 2 || len(ans.Results[0].Keys) != 2 {
		t.Fatalf("dry run: %+v", ans)
	}
	for _, k := range ans.Results[0].Keys {
		if !strings.HasPrefix(k, env.srv.URL+"/v#vary=") {
			t.Fatalf("dry run key %q is not a variant of /v", k)
		}
	}
	wantStatus(t, env.get("/v", "Accept-Language", "en"), "hit")
	ans = purgeOK(t, env, map[string]any{"url": env.srv.URL + "/v"})
	if ans.DryRun || ans.Removed != 2 {
		t.Fatalf("purge: %+v", ans)
	}
	wantStatus(t, env.get("/v", "Accept-Language", "en"), "fwd=uri-miss")
	wantStatus(t, env.get("/v", "Accept-Language", "de"), "fwd=vary-miss")
	wantStatus(t, env.get("/other", "Accept-Language", "en"), "hit")
	// a second purge finds nothing
	if ans := purgeOK(t, env, map[string]any{"url": env.srv.URL + "/nothing"}); ans.Removed != 0 {
		t.Fatalf("purge of an absent URL: %+v", ans)
	}
}

// With key headers, a url purge removes every key-header variant; an
// ignored query parameter does not matter.
func TestAdminPurgeURLKeyHeaders(t *testing.T) {
	env := opsEnv(t, `{"key": {"headers": ["X-Tenant"], "ignore_query": ["utm_*"]}}`, fixed("Cache-Control", "max-age=60"))
	env.get("/k?a=1", "X-Tenant", "one")
	env.get("/k?a=1&utm_source=x", "X-Tenant", "two")
	env.get("/k?a=2", "X-Tenant", "one")
	ans := purgeOK(t, env, map[string]any{"url": env.srv.URL + "/k?a=1&utm_medium=y"})
	if ans.Removed != 2 {
		t.Fatalf("purge: %+v", ans)
	}
	wantStatus(t, env.get("/k?a=1", "X-Tenant", "one"), "fwd=uri-miss")
	wantStatus(t, env.get("/k?a=1", "X-Tenant", "two"), "fwd=uri-miss")
	wantStatus(t, env.get("/k?a=2", "X-Tenant", "one"), "hit")
}

func TestAdminPurgePrefixHostTagAll(t *testing.T) {
	env := opsEnv(t, "", tagged)
	load := func() {
		for _, p := range []string{"/p/1?k=red", "/p/2?c=red,blue", "/q?k=blue"} {
			env.get(p)
		}
	}
	count := func() int {
		var ans listAnswer
		admin(t, "GET", "/cache/entries?handler="+env.name(), nil, &ans)
		return len(ans.Entries)
	}
	load()
	if n := count(); n != 3 {
		t.Fatalf("%d entries stored, want 3", n)
	}
	if ans := purgeOK(t, env, map[string]any{"prefix": strings.ToUpper(env.srv.URL[:4]) + env.srv.URL[4:] + "/p/", "dry_run": true}); ans.Removed != 2 {
		t.Fatalf("prefix dry run: %+v", ans)
	}
	if n := count(); n != 3 {
		t.Fatalf("dry run removed entries: %d left", n)
	}
	if ans := purgeOK(t, env, map[string]any{"prefix": env.srv.URL + "/p/"}); ans.Removed != 2 {
		t.Fatalf("prefix: %+v", ans)
	}
	if n := count(); n != 1 {
		t.Fatalf("after prefix purge: %d entries, want 1", n)
	}
	load()
	if ans := purgeOK(t, env, map[string]any{"tag": "red"}); ans.Removed != 2 {
		t.Fatalf("tag red: %+v", ans)
	}
	wantStatus(t, env.get("/q?k=blue"), "hit")
	wantStatus(t, env.get("/p/1?k=red"), "fwd=uri-miss")
	if ans := purgeOK(t, env, map[string]any{"tag": "blue", "dry_run": true}); ans.Removed != 1 {
		t.Fatalf("tag blue dry run: %+v", ans)
	}
	if ans := purgeOK(t, env, map[string]any{"host": "elsewhere.example"}); ans.Removed != 0 {
		t.Fatalf("host elsewhere: %+v", ans)
	}
	if ans := purgeOK(t, env, map[string]any{"host": strings.TrimPrefix(env.srv.URL, "http://")}); ans.Removed != 2 {
		t.Fatalf("host: %+v", ans)
	}
	load()
	if ans := purgeOK(t, env, map[string]any{"all": true}); ans.Removed != 3 {
		t.Fatalf("all: %+v", ans)
	}
	if n := count(); n != 0 {
		t.Fatalf("after purge all: %d entries", n)
	}
}

func TestAdminPurgeBadRequests(t *testing.T) {
	env := opsEnv(t, "", tagged)
	for _, c := range []struct {
		body any
		code int
		msg  string
	}{
		{nil, 400, "JSON object is required"},
		{`{"url":`, 400, "body"},
		{`{"url": "http://x/"} {}`, 400, "more than one"},
		{`{"path": "/"}`, 400, "unknown field"},
		{map[string]any{}, 400, "exactly one"},
		{map[string]any{"url": "http://x/", "tag": "t"}, 400, "exactly one"},
		{map[string]any{"url": "/relative"}, 400, "absolute"},
		{map[string]any{"url": "ftp://x/"}, 400, "absolute"},
		{map[string]any{"prefix": "example.com/"}, 400, "http://"},
		{map[string]any{"host": "example.com/x"}, 400, "host"},
		{map[string]any{"all": true, "handler": "no-such"}, 404, "no-such"},
	} {
		var ea errAnswer
		if code := admin(t, "POST", "/cache/purge", c.body, &ea); code != c.code || !strings.Contains(ea.Error, c.msg) {
			t.Errorf("purge %v: %d %q, want %d and an error containing %q", c.body, code, ea.Error, c.code, c.msg)
		}
	}
	_ = env
}

func TestAdminExpired(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age="+strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("ETag", `"e"`)
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/10")
	env.get("/100")
	env.clock.Advance(50 * time.Second)
	var ans purgeAns
	body := map[string]any{"handler": env.name(), "dry_run": true}
	if code := admin(t, "POST", "/cache/expired", body, &ans); code != 200 || ans.Removed != 0 {
		t.Fatalf("expired dry run: %d %+v", code, ans)
	}
	body["stale"] = true
	if code := admin(t, "POST", "/cache/expired", body, &ans); code != 200 || ans.Removed != 1 {
		t.Fatalf("stale dry run: %d %+v", code, ans)
	}
	delete(body, "dry_run")
	if code := admin(t, "POST", "/cache/expired", body, &ans); code != 200 || ans.Removed != 1 ||
		ans.Results[0].Keys[0] != env.srv.URL+"/10" {
		t.Fatalf("stale: %d %+v", code, ans)
	}
	wantStatus(t, env.get("/100"), "hit")
	wantStatus(t, env.get("/10"), "fwd=uri-miss")
	// an empty body is fine
	if code := admin(t, "POST", "/cache/expired?x", "", &ans); code != 200 {
		t.Fatalf("empty body: %d", code)
	}
}

func TestAdminStats(t *testing.T) {
	env := opsEnv(t, "", fixed("Cache-Control", "max-age=60"))
	env.get("/a")
	env.get("/a")
	env.get("/a")
	env.get("/b")
	env.do("POST", "/a")
	var ans struct {
		Handlers []handlerStats `json:"handlers"`
	}
	if code := admin(t, "GET", "/cache/stats?handler="+env.name(), nil, &ans); code != 200 || len(ans.Handlers) != 1 {
		t.Fatalf("stats: %d %+v", code, ans)
	}
	s := ans.Handlers[0]
	// the POST invalidated /a
	if s.Hits != 2 || s.Misses != 2 || s.Bypass != 1 || s.Entries != 1 || s.Bytes <= 6 || s.HitRatio != 0.5 || s.Backend != "memory" {
		t.Fatalf("stats %+v", s)
	}
}

// Surrogate keys are recorded from both fields and never reach the client,
// on a miss or on a hit.
func TestSurrogateKeysStripped(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Add("Surrogate-Key", "a  b\ta")
		w.Header().Add("Surrogate-Key", "c")
		w.Header().Set("Cache-Tag", "d, e,,a")
		fmt.Fprint(w, "x")
		return nil
	})
	for i, r := range []result{env.get("/s"), env.get("/s")} {
		if r.header.Get("Surrogate-Key") != "" || r.header.Get("Cache-Tag") != "" {
			t.Fatalf("response %d carries surrogate keys: %v", i, r.header)
		}
	}
	e, err := env.h.store.Get(context.Background(), env.h.scope+env.srv.URL+"/s")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Tags, " "); got != "a b c d e" {
		t.Fatalf("tags %q, want a b c d e", got)
	}
	if e.Header.Get("Surrogate-Key") != "" || e.Header.Get("Cache-Tag") != "" {
		t.Fatalf("stored header carries surrogate keys: %v", e.Header)
	}
}

func TestSurrogateKeysOptions(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Surrogate-Key", "a b")
		w.Header().Set("X-Tags", "c,d e")
		fmt.Fprint(w, "x")
		return nil
	}
	t.Run("strip off", func(t *testing.T) {
		env := opsEnv(t, `{"surrogate_keys": {"strip": false}}`, origin)
		for _, r := range []result{env.get("/"), env.get("/")} {
			if r.header.Get("Surrogate-Key") != "a b" {
				t.Fatalf("Surrogate-Key %q, want it kept", r.header.Get("Surrogate-Key"))
			}
		}
		e, _ := env.h.store.Get(context.Background(), env.h.scope+env.srv.URL+"/")
		if strings.Join(e.Tags, " ") != "a b" {
			t.Fatalf("tags %q", e.Tags)
		}
	})
	t.Run("custom header", func(t *testing.T) {
		env := opsEnv(t, `{"surrogate_keys": {"headers": ["x-tags"]}}`, origin)
		r := env.get("/")
		if r.header.Get("X-Tags") != "" || r.header.Get("Surrogate-Key") != "a b" {
			t.Fatalf("header %v", r.header)
		}
		e, _ := env.h.store.Get(context.Background(), env.h.scope+env.srv.URL+"/")
		if strings.Join(e.Tags, " ") != "c d e" {
			t.Fatalf("tags %q", e.Tags)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		env := opsEnv(t, `{"surrogate_keys": {"disabled": true}}`, origin)
		r := env.get("/")
		if r.header.Get("Surrogate-Key") != "a b" {
			t.Fatalf("header %v", r.header)
		}
		e, _ := env.h.store.Get(context.Background(), env.h.scope+env.srv.URL+"/")
		if len(e.Tags) != 0 {
			t.Fatalf("tags %q recorded while disabled", e.Tags)
		}
	})
}

func TestStoredEntryStrippedOnServe(t *testing.T) {
	// an entry stored with the field (strip was off) does not show it
	// once strip is on: same store, new handler
	origin := fixed("Cache-Control", "max-age=60", "Surrogate-Key", "k")
	off := opsEnv(t, `{"name": "off", "surrogate_keys": {"strip": false}}`, origin)
	off.get("/")
	on := &Handler{Name: "off"} // the same name: the same cache
	on.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"memory","name":%q}`, t.Name()))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := on.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer on.Cleanup()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", off.srv.URL+"/", nil)
	if err := on.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Header().Get("Cache-Status"), "hit") || rec.Header().Get("Surrogate-Key") != "" {
		t.Fatalf("served %v", rec.Header())
	}
}

func explainOne(t *testing.T, env *testEnv, path string, hdr ...string) explainResult {
	t.Helper()
	q := url.Values{"url": {env.srv.URL + path}, "handler": {env.name()}}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "method" {
			q.Set("method", hdr[i+1])
			continue
		}
		q.Add("header", hdr[i]+": "+hdr[i+1])
	}
	var ans struct {
		Results []explainResult `json:"results"`
	}
	if code := admin(t, "GET", "/cache/explain?"+q.Encode(), nil, &ans); code != 200 || len(ans.Results) != 1 {
		t.Fatalf("explain %s: %d %+v", path, code, ans)
	}
	return ans.Results[0]
}

func wantExplain(t *testing.T, r explainResult, outcome, reason string) {
	t.Helper()
	if r.Outcome != outcome || !strings.Contains(r.Reason, reason) {
		t.Fatalf("explain: %s %q, want %s and a reason containing %q", r.Outcome, r.Reason, outcome, reason)
	}
}

func TestAdminExplain(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		switch r.URL.Path {
		case "/etag":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"v1"`)
		case "/plain":
			w.Header().Set("Cache-Control", "max-age=60, stale-if-error=3600")
		case "/cookie":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "a=1")
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/vary":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
		}
		fmt.Fprint(w, "x")
		return nil
	})
	for _, p := range []string{"/etag", "/plain", "/cookie", "/nostore"} {
		env.get(p)
	}
	env.get("/vary", "Accept-Language", "en")
	env.clock.Advance(10 * time.Second)

	r := explainOne(t, env, "/etag")
	wantExplain(t, r, "hit", "fresh: age 10s of max-age=60, ttl 50s")
	if r.Key != env.srv.URL+"/etag" || r.Entry == nil || r.Entry.Status != 200 {
		t.Fatalf("explain result %+v", r)
	}
	wantExplain(t, explainOne(t, env, "/etag", "If-None-Match", `"v1"`), "hit", "304")
	wantExplain(t, explainOne(t, env, "/etag", "Cache-Control", "no-cache"), "revalidate", "request no-cache")
	wantExplain(t, explainOne(t, env, "/etag", "Cache-Control", "max-age=5"), "revalidate", "request max-age=5 exceeded")
	wantExplain(t, explainOne(t, env, "/cookie"), "miss", "not stored: Set-Cookie")
	wantExplain(t, explainOne(t, env, "/nostore"), "miss", "not stored: no-store")
	wantExplain(t, explainOne(t, env, "/never"), "miss", "not in the cache")
	wantExplain(t, explainOne(t, env, "/never", "Cache-Control", "only-if-cached"), "miss", "504")
	wantExplain(t, explainOne(t, env, "/vary", "Accept-Language", "en"), "hit", "fresh")
	wantExplain(t, explainOne(t, env, "/vary", "Accept-Language", "de"), "miss", `vary mismatch: no stored variant for Accept-Language="de" (1 variant(s) stored`)
	wantExplain(t, explainOne(t, env, "/etag", "method", "POST"), "bypass", "unsafe method POST")
	wantExplain(t, explainOne(t, env, "/etag", "method", "OPTIONS"), "bypass", "never served from the cache")
	wantExplain(t, explainOne(t, env, "/etag", "Upgrade", "websocket"), "bypass", "upgrade")

	env.clock.Advance(62 * time.Second)
	wantExplain(t, explainOne(t, env, "/etag"), "revalidate", "stale: max-age=60 exceeded by 12s; would revalidate with If-None-Match")
	wantExplain(t, explainOne(t, env, "/plain"), "miss", "stale: max-age=60 exceeded by 12s; no validator")
	wantExplain(t, explainOne(t, env, "/plain", "Cache-Control", "max-stale=20"), "stale", "served stale: stale by 12s")

	// explain changes nothing: still a hit afterwards for the fresh one
	env.clock.Advance(-72 * time.Second)
	wantStatus(t, env.get("/etag"), "hit")

	for _, c := range []struct{ q, msg string }{
		{"", "url: required"},
		{"url=/relative", "absolute"},
		{"url=http://x/&header=NoColon", "Name:Value"},
		{"url=http://x/&method=G%20T", "method"},
	} {
		var ea errAnswer
		if code := admin(t, "GET", "/cache/explain?"+c.q, nil, &ea); code != 400 || !strings.Contains(ea.Error, c.msg) {
			t.Errorf("explain %q: %d %q, want 400 and %q", c.q, code, ea.Error, c.msg)
		}
	}
}

func TestResultCounters(t *testing.T) {
	fail := false
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if fail {
			w.WriteHeader(http.StatusBadGateway)
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
		if r.URL.Path == "/etag" {
			w.Header().Set("ETag", `"e"`)
			if r.Header.Get("If-None-Match") == `"e"` {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
		}
		fmt.Fprint(w, "x")
		return nil
	})
	want := func(hit, stale, reval, miss, bypass float64) {
		t.Helper()
		got := env.h.ops.metrics.counts()
		exp := [numResults]float64{hit, stale, reval, miss, bypass, 0}
		if got != exp {
			t.Fatalf("counts (hit stale revalidated miss bypass error) = %v, want %v", got, exp)
		}
	}
	env.get("/a")
	env.get("/a")
	want(1, 0, 0, 1, 0)
	env.do("DELETE", "/b")
	env.do("GET", "/c", "Upgrade", "websocket")
	want(1, 0, 0, 1, 2)
	env.get("/etag")
	env.clock.Advance(20 * time.Second)
	env.get("/etag") // 304: revalidated
	want(1, 0, 1, 2, 2)
	fail = true
	env.get("/a") // stale, origin 502: stale-if-error
	want(1, 1, 1, 2, 2)
	fail = false
	env.get("/a") // stale without validator: refetched, a miss
	want(1, 1, 1, 3, 2)
}

func TestHTTPPurge(t *testing.T) {
	origin := fixed("Cache-Control", "max-age=60")
	t.Run("allowed", func(t *testing.T) {
		env := opsEnv(t, `{"purge": {"match": [{"remote_ip": {"ranges": ["127.0.0.1/8"]}}]}}`, origin)
		env.get("/p")
		r := env.do("PURGE", "/p")
		var body struct {
			Purged int      `json:"purged"`
			Keys   []string `json:"keys"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 200 || body.Purged != 1 {
			t.Fatalf("PURGE: %d %s", r.status, r.body)
		}
		wantStatus(t, env.get("/p"), "fwd=uri-miss")
		env.wantHits(2)
	})
	t.Run("not allowed", func(t *testing.T) {
		env := opsEnv(t, `{"purge": {"method": "BAN", "match": [{"remote_ip": {"ranges": ["10.0.0.0/8"]}}]}}`, origin)
		env.get("/p")
		r := env.do("BAN", "/p")
		if r.status != http.StatusMethodNotAllowed || !strings.Contains(r.body, "not allowed") {
			t.Fatalf("BAN from a disallowed address: %d %s", r.status, r.body)
		}
		wantStatus(t, env.get("/p"), "hit")
		env.wantHits(1)
	})
	t.Run("off by default", func(t *testing.T) {
		env := opsEnv(t, "", origin)
		env.get("/p")
		r := env.do("PURGE", "/p")
		// forwarded to the origin like any unsafe method
		if r.status != 200 || r.body != "body-2" {
			t.Fatalf("PURGE without purge option: %d %s", r.status, r.body)
		}
	})
}

func TestOpsValidation(t *testing.T) {
	for _, c := range []struct{ config, msg string }{
		{`{"name": "has space"}`, "name"},
		{`{"purge": {}}`, "request matcher is required"},
		{`{"purge": {"method": "GET", "match": [{"remote_ip": {"ranges": ["127.0.0.1"]}}]}}`, "GET and HEAD"},
		{`{"purge": {"method": "P URGE", "match": [{"remote_ip": {"ranges": ["127.0.0.1"]}}]}}`, "method token"},
		{`{"surrogate_keys": {"headers": ["a b"]}}`, "surrogate_keys headers"},
	} {
		h := new(Handler)
		if err := json.Unmarshal([]byte(c.config), h); err != nil {
			t.Fatal(err)
		}
		h.StorageRaw = json.RawMessage(`{"backend":"memory","name":"validation"}`)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one containing %q", c.config, err, c.msg)
		}
	}
}

// provisionNamed provisions a handler in ctx and returns it.
func provisionNamed(t *testing.T, ctx caddy.Context, name string) (*Handler, error) {
	h := &Handler{Name: name, StorageRaw: json.RawMessage(`{"backend":"memory","name":"registry"}`)}
	err := h.Provision(ctx)
	return h, err
}

func TestRegistryAcrossReloads(t *testing.T) {
	names := func() []string {
		var out []string
		for _, h := range liveHandlers() {
			if strings.HasPrefix(h.ops.name, "reg-") || strings.HasPrefix(h.ops.name, "memory-") {
				out = append(out, h.ops.name)
			}
		}
		slices.Sort(out)
		return out
	}
	before := names()
	ctx1, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()
	old, err := provisionNamed(t, ctx1, "reg-a")
	if err != nil {
		t.Fatal(err)
	}
	// the same name on the same storage: one cache, shared on purpose
	same, err := provisionNamed(t, ctx1, "reg-a")
	if err != nil || same.scope != old.scope {
		t.Fatalf("second reg-a on the same storage in one config: %v", err)
	}
	_ = same.Cleanup()
	// the same name on another storage is an error
	other := &Handler{Name: "reg-a", StorageRaw: json.RawMessage(`{"backend":"memory","name":"registry-other"}`)}
	if err := other.Provision(ctx1); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reg-a on another storage in one config: %v", err)
	}
	_ = other.Cleanup()
	// auto names: stable, the same for handlers on the same storage,
	// different for another storage
	a1, _ := provisionNamed(t, ctx1, "")
	a2, _ := provisionNamed(t, ctx1, "")
	if !strings.HasPrefix(a1.ops.name, "memory-") || a2.ops.name != a1.ops.name || a1.ops.name == "memory-e3b0c442" {
		t.Fatalf("auto names %q %q", a1.ops.name, a2.ops.name)
	}
	a3 := &Handler{StorageRaw: json.RawMessage(`{"name":"registry-3","backend":"memory"}`)}
	if err := a3.Provision(ctx1); err != nil {
		t.Fatal(err)
	}
	if a3.ops.name == a1.ops.name || !strings.HasPrefix(a3.ops.name, "memory-") {
		t.Fatalf("auto names on two stores: %q %q", a1.ops.name, a3.ops.name)
	}
	_ = a3.Cleanup()
	// reload: the new config provisions before the old is cleaned up
	ctx2, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	cur, err := provisionNamed(t, ctx2, "reg-a")
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := provisionNamed(t, ctx2, "")
	if b1.ops.name != a1.ops.name {
		t.Fatalf("auto name changed across a reload: %q then %q", a1.ops.name, b1.ops.name)
	}
	if handlerNamed("reg-a") != cur {
		t.Fatal("reg-a does not resolve to the newest handler")
	}
	// the old config goes away: the new handlers stay
	for _, h := range []*Handler{old, a1, a2} {
		_ = h.Cleanup()
	}
	if handlerNamed("reg-a") != cur || handlerNamed(a1.ops.name) != b1 {
		t.Fatalf("after cleaning the old config: %v", names())
	}
	// with two handlers in scope, a raw key cursor is ambiguous
	var ea errAnswer
	if code := admin(t, "GET", "/cache/entries?cursor="+url.QueryEscape("http://x/"), nil, &ea); code != 400 || !strings.Contains(ea.Error, "handler=") {
		t.Fatalf("raw cursor without handler: %d %q", code, ea.Error)
	}
	_ = cur.Cleanup()
	_ = b1.Cleanup()
	if got := names(); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("registry after cleanup %v, want %v", got, before)
	}
}

type coldOnly struct{ storage.Store }

func (c coldOnly) Cold() storage.Store { return c.Store }

type indexed struct {
	storage.Store
	keys []string
}

func (i indexed) KeysForTag(context.Context, string) ([]string, error) { return i.keys, nil }

func TestOptionalThroughColdTier(t *testing.T) {
	ix := indexed{keys: []string{"k"}}
	if got, ok := optional[storage.TagIndex](coldOnly{ix}); !ok || got == nil {
		t.Fatal("TagIndex of the cold tier not found")
	}
	if _, ok := optional[storage.Expirer](coldOnly{ix}); ok {
		t.Fatal("found an Expirer that is not there")
	}
}

// A store with a tag index is purged through it, not by walking.
func TestPurgeByTagUsesIndex(t *testing.T) {
	env := opsEnv(t, "", tagged)
	env.get("/i?k=x")
	env.get("/j?k=x")
	// the index knows only /i (and a key that no longer exists)
	env.h.ops.raw = indexed{Store: env.h.ops.raw, keys: []string{env.h.scope + env.srv.URL + "/i?k=x", env.h.scope + env.srv.URL + "/gone", "c2:00000000:" + env.srv.URL + "/j?k=x"}}
	if ans := purgeOK(t, env, map[string]any{"tag": "x"}); ans.Removed != 1 || ans.Results[0].Keys[0] != env.srv.URL+"/i?k=x" {
		t.Fatalf("purge by tag through the index: %+v", ans)
	}
	wantStatus(t, env.get("/j?k=x"), "hit")
}

// outcomeOf maps the Cache-Status of a response to the explain outcome it
// stands for.
func outcomeOf(cs string) string {
	switch {
	case strings.Contains(cs, "fwd=bypass"):
		return outcomeBypass
	case strings.Contains(cs, "; hit") && (strings.Contains(cs, "detail=") || strings.Contains(cs, "ttl=-")):
		return outcomeStale
	case strings.Contains(cs, "; hit"):
		return outcomeHit
	case strings.Contains(cs, "fwd-status="):
		return outcomeRevalidate
	}
	return outcomeMiss
}

// explain and ServeHTTP make one decision: for every outcome, what explain
// says is what the next request gets.
func TestExplainAgreesWithHandler(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		switch r.URL.Path {
		case "/etag":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
		case "/swr":
			w.Header().Set("Cache-Control", "max-age=60, stale-while-revalidate=600")
		case "/plain": // kept an hour past freshness (for stale-if-error)
			w.Header().Set("Cache-Control", "max-age=60, stale-if-error=3600")
		}
		fmt.Fprint(w, "x")
		return nil
	})
	cases := []struct {
		name    string
		advance time.Duration // before explain, from the first store
		path    string
		hdr     []string
		want    string
	}{
		{"fresh", 10 * time.Second, "/plain", nil, outcomeHit},
		{"not stored yet", 0, "/new", nil, outcomeMiss},
		{"request no-cache, validator", 10 * time.Second, "/etag", []string{"Cache-Control", "no-cache"}, outcomeRevalidate},
		{"request max-age=0", 10 * time.Second, "/plain", []string{"Cache-Control", "max-age=0"}, outcomeMiss},
		{"stale, validator", 70 * time.Second, "/etag", nil, outcomeRevalidate},
		{"stale, no validator", 70 * time.Second, "/plain", nil, outcomeMiss},
		{"stale, max-stale", 70 * time.Second, "/plain", []string{"Cache-Control", "max-stale=60"}, outcomeStale},
		{"RFC 5861 stale-while-revalidate window", 70 * time.Second, "/swr", nil, outcomeStale},
		{"upgrade", 0, "/plain", []string{"Upgrade", "websocket"}, outcomeBypass},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("%s?case=%d", tc.path, i)
			if tc.path != "/new" {
				env.get(p)
			}
			env.clock.Advance(tc.advance)
			defer env.clock.Advance(-tc.advance)
			got := explainOne(t, env, p, tc.hdr...)
			if got.Outcome != tc.want {
				t.Fatalf("explain: %s (%s), want %s", got.Outcome, got.Reason, tc.want)
			}
			cs := env.get(p, tc.hdr...).header.Get("Cache-Status")
			if served := outcomeOf(cs); served != got.Outcome {
				t.Fatalf("explain said %s (%s); the handler answered %q (%s)", got.Outcome, got.Reason, cs, served)
			}
		})
	}
}

// sweepEnv is an opsEnv on a sweeptest store (or sweepnocount, when
// counting is false) named store, whose clock is the env's fake clock. The
// origin answers max-age=<path>, without validators, so that entries expire
// exactly when they go stale.
func sweepEnv(t *testing.T, name, store string, counting bool) (*testEnv, *sweepStore) {
	t.Helper()
	backend := "sweeptest"
	if !counting {
		backend = "sweepnocount"
	}
	cfg := fmt.Sprintf(`{"name": %q, "memory": -1, "storage": {"backend": %q, "name": %q}}`, name, backend, store)
	env := opsEnv(t, cfg, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age="+strings.TrimPrefix(r.URL.Path, "/"))
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	var st *sweepStore
	switch s := env.h.ops.raw.(type) {
	case *sweepStore:
		st = s
	case *countingSweepStore:
		st = &s.sweepStore
	default:
		t.Fatalf("store is a %T", env.h.ops.raw)
	}
	st.setClock(env.clock.Now)
	return env, st
}

func expiredCall(t *testing.T, body map[string]any) purgeAns {
	t.Helper()
	var ans purgeAns
	if code := admin(t, "POST", "/cache/expired", body, &ans); code != 200 {
		t.Fatalf("expired %v: %d %+v", body, code, ans)
	}
	return ans
}

// A store that sweeps expired entries itself (storage.Expirer) never lists
// them, so the dry run of POST /cache/expired asks it to count them: the
// dry run reports what the real run then removes.
func TestAdminExpiredDryRunCountsSweep(t *testing.T) {
	env, st := sweepEnv(t, "t-expired-sweep", t.Name(), true)
	for _, p := range []string{"/10", "/20", "/30", "/1000"} {
		env.get(p)
	}
	env.clock.Advance(60 * time.Second)
	if n := st.held(); n != 4 {
		t.Fatalf("store holds %d entries, want 4", n)
	}
	dry := expiredCall(t, map[string]any{"handler": env.name(), "dry_run": true})
	real := expiredCall(t, map[string]any{"handler": env.name()})
	if dry.Removed != 3 || real.Removed != dry.Removed {
		t.Fatalf("dry run would remove %d, the real run removed %d; want 3 both", dry.Removed, real.Removed)
	}
	if n := st.held(); n != 1 {
		t.Fatalf("store holds %d entries after the sweep, want 1", n)
	}
	if again := expiredCall(t, map[string]any{"handler": env.name(), "dry_run": true}); again.Removed != 0 {
		t.Fatalf("dry run after the sweep: %+v", again)
	}
	wantStatus(t, env.get("/1000"), "hit")
}

// Two handlers on one store: the store's sweep is counted once, as the
// real run removes it once.
func TestAdminExpiredDryRunSharedStore(t *testing.T) {
	a, st := sweepEnv(t, "t-expired-shared-a", t.Name(), true)
	b, _ := sweepEnv(t, "t-expired-shared-b", t.Name(), true)
	a.get("/10")
	b.get("/10")
	b.get("/20")
	a.clock.Advance(60 * time.Second)
	b.clock.Advance(60 * time.Second)
	ours := func(ans purgeAns) int {
		n := 0
		for _, r := range ans.Results {
			if r.Handler == a.name() || r.Handler == b.name() {
				n += r.Removed
			}
		}
		return n
	}
	dry := ours(expiredCall(t, map[string]any{"dry_run": true}))
	real := ours(expiredCall(t, map[string]any{}))
	if dry != 3 || real != 3 {
		t.Fatalf("dry run would remove %d, the real run removed %d; want 3 both", dry, real)
	}
	if n := st.held(); n != 0 {
		t.Fatalf("store holds %d entries, want 0", n)
	}
}

// A store that sweeps but cannot count says so in a dry run instead of
// reporting 0.
func TestAdminExpiredDryRunUncounted(t *testing.T) {
	env, _ := sweepEnv(t, "t-expired-uncounted", t.Name(), false)
	env.get("/10")
	env.clock.Advance(60 * time.Second)
	var ans struct {
		Removed int `json:"removed"`
		Results []struct {
			Removed   int  `json:"removed"`
			Uncounted bool `json:"uncounted"`
		} `json:"results"`
	}
	if code := admin(t, "POST", "/cache/expired", map[string]any{"handler": env.name(), "dry_run": true}, &ans); code != 200 ||
		len(ans.Results) != 1 || !ans.Results[0].Uncounted {
		t.Fatalf("dry run: %d %+v", code, ans)
	}
	real := expiredCall(t, map[string]any{"handler": env.name()})
	if real.Removed != 1 {
		t.Fatalf("real run: %+v", real)
	}
}

// varyLang answers max-age=60 with Vary: Accept-Language and the language
// in the body.
func varyLang(w http.ResponseWriter, r *http.Request, n int64) error {
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Vary", "Accept-Language")
	fmt.Fprintf(w, "%s-%d", r.Header.Get("Accept-Language"), n)
	return nil
}

// inspectKey answers GET /cache/entries/<key>?body=1 for a key as shown.
func inspectKey(t *testing.T, env *testEnv, key string) (int, entryInfo) {
	t.Helper()
	var info entryInfo
	code := admin(t, "GET", "/cache/entries/"+url.PathEscape(key)+"?body=1&handler="+env.name(), nil, &info)
	return code, info
}

// Vary variants have a printable key, <primary>#vary=<32 hex>, that the
// listing, explain, purge and the index show and inspect takes back (the
// stored form with its NUL is still accepted).
func TestAdminVariantKeys(t *testing.T) {
	env := opsEnv(t, "", varyLang)
	env.get("/v", "Accept-Language", "en")
	env.get("/v", "Accept-Language", "de")
	var ans listAnswer
	if code := admin(t, "GET", "/cache/entries?handler="+env.name(), nil, &ans); code != 200 || len(ans.Entries) != 2 {
		t.Fatalf("list: %d %+v", code, ans)
	}
	bodies := map[string]string{}
	for _, e := range ans.Entries {
		prefix := env.srv.URL + "/v#vary="
		if !strings.HasPrefix(e.Key, prefix) || len(e.Key) != len(prefix)+32 || !isLowerHex(e.Key[len(prefix):]) {
			t.Fatalf("variant key %q, want %s and 32 hex digits", e.Key, prefix)
		}
		code, info := inspectKey(t, env, e.Key)
		if code != 200 || info.Key != e.Key || info.Body == nil || info.Vary["Accept-Language"] == "" {
			t.Fatalf("inspect %q: %d %+v", e.Key, code, info)
		}
		if !strings.HasPrefix(*info.Body, info.Vary["Accept-Language"]+"-") {
			t.Fatalf("inspect %q: body %q for Accept-Language %q", e.Key, *info.Body, info.Vary["Accept-Language"])
		}
		bodies[e.Key] = *info.Body
		// the stored form, NUL and all, works too
		raw := strings.Replace(e.Key, "#vary=", "\x00vary:", 1)
		if code, info := inspectKey(t, env, raw); code != 200 || info.Key != e.Key || *info.Body != bodies[e.Key] {
			t.Fatalf("inspect %q: %d %+v", raw, code, info)
		}
	}
	// the Vary index lists its variants in the same form
	var idx listAnswer
	admin(t, "GET", "/cache/entries?index=1&handler="+env.name(), nil, &idx)
	var variants []string
	for _, e := range idx.Entries {
		if e.Kind == "vary-index" {
			variants = e.Variants
		}
	}
	slices.Sort(variants)
	wantKeys(t, variants, keysOf(ans.Entries)...)
	// explain names the variant a request selects in the same form
	r := explainOne(t, env, "/v", "Accept-Language", "de")
	if code, info := inspectKey(t, env, r.VariantKey); code != 200 || !strings.HasPrefix(*info.Body, "de-") ||
		r.Entry == nil || r.Entry.Key != r.VariantKey {
		t.Fatalf("explain variant_key %q: %d %+v", r.VariantKey, code, info)
	}
	// a shown key works as a cursor
	var p2 listAnswer
	admin(t, "GET", "/cache/entries?limit=1&handler="+env.name()+"&cursor="+url.QueryEscape(ans.Entries[0].Key), nil, &p2)
	wantKeys(t, keysOf(p2.Entries), ans.Entries[1].Key)
	var p1 listAnswer
	admin(t, "GET", "/cache/entries?limit=1&handler="+env.name(), nil, &p1)
	admin(t, "GET", "/cache/entries?limit=1&handler="+env.name()+"&cursor="+p1.NextCursor, nil, &p2)
	wantKeys(t, append(keysOf(p1.Entries), keysOf(p2.Entries)...), keysOf(ans.Entries)...)
	// purge results use it
	pa := purgeOK(t, env, map[string]any{"url": env.srv.URL + "/v", "dry_run": true})
	wantKeys(t, pa.Results[0].Keys, keysOf(ans.Entries)...)
	// not a variant: 404 naming the key as given
	var ea errAnswer
	missing := env.srv.URL + "/v#vary=" + strings.Repeat("0", 32)
	if code := admin(t, "GET", "/cache/entries/"+url.PathEscape(missing)+"?handler="+env.name(), nil, &ea); code != 404 ||
		!strings.Contains(ea.Error, missing) {
		t.Fatalf("inspect %q: %d %q", missing, code, ea.Error)
	}
}

// A primary key that itself ends like a printable variant key (a client
// sent a raw '#' in the query) can still be inspected: the variant is
// tried first, then the key as given.
func TestAdminVariantKeyLookalike(t *testing.T) {
	env := opsEnv(t, "", tagged)
	target := "/x?a#vary=" + strings.Repeat("ab", 16)
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, strings.TrimPrefix(env.srv.URL, "http://"))
	raw, _ := io.ReadAll(conn)
	conn.Close()
	// a raw '#' is not a valid request target (RFC 9112 §3.2): the cache
	// steps aside, so no key can end in "#vary=…"
	if !strings.Contains(string(raw), `fwd=bypass; detail="fragment"`) {
		t.Fatalf("a target with a raw '#' was not bypassed:\n%s", raw)
	}
	var ans listAnswer
	admin(t, "GET", "/cache/entries?handler="+env.name(), nil, &ans)
	wantKeys(t, keysOf(ans.Entries))
}

// The default SQLite store counts its sweep for a dry run (real time: an
// entry stored with max-age=1 expires a second later).
func TestAdminExpiredDryRunSQLite(t *testing.T) {
	path := t.TempDir() + "/cache.db"
	env := opsEnv(t, fmt.Sprintf(`{"memory": -1, "storage": {"backend": "sqlite", "path": %q}}`, path),
		func(w http.ResponseWriter, r *http.Request, n int64) error {
			w.Header().Set("Cache-Control", "max-age="+strings.TrimPrefix(r.URL.Path, "/"))
			fmt.Fprintf(w, "body-%d", n)
			return nil
		})
	env.get("/1")
	env.get("/1000")
	time.Sleep(1100 * time.Millisecond)
	env.clock.Advance(1100 * time.Millisecond)
	dry := expiredCall(t, map[string]any{"handler": env.name(), "dry_run": true})
	real := expiredCall(t, map[string]any{"handler": env.name()})
	if dry.Removed != 1 || real.Removed != 1 {
		t.Fatalf("dry run would remove %d, the real run removed %d; want 1 both", dry.Removed, real.Removed)
	}
}

// The routes return their errors as caddy.APIError values (not wrapped:
// Caddy's admin endpoint asserts the type) with the status users see.
func TestAdminErrorsAreAPIErrors(t *testing.T) {
	env := opsEnv(t, "", tagged)
	for _, c := range []struct {
		method, target string
		status         int
		msg            string
	}{
		{"GET", "/cache/entries?limit=0", 400, `limit "0"`},
		{"GET", "/cache/entries?status=600", 400, `status "600"`},
		{"GET", "/cache/entries?older_than=0s", 400, `older_than "0s"`},
		{"GET", "/cache/entries?handler=no-such", 404, `handler "no-such"`},
		{"GET", "/cache/entries/" + url.PathEscape(env.srv.URL+"/none"), 404, "not in the cache"},
		{"DELETE", "/cache/purge", 405, "use POST"},
		{"GET", "/cache/other", 404, "no such cache API route"},
	} {
		rec := httptest.NewRecorder()
		err := new(AdminAPI).serve(rec, httptest.NewRequest(c.method, c.target, nil))
		ae, ok := err.(caddy.APIError) //nolint:errorlint // Caddy asserts the type
		if !ok || ae.HTTPStatus != c.status || !strings.Contains(ae.Error(), c.msg) {
			t.Errorf("%s %s: %T %v, want a caddy.APIError %d containing %q", c.method, c.target, err, err, c.status, c.msg)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("%s %s: the route wrote %q itself; Caddy writes the error", c.method, c.target, rec.Body.String())
		}
	}
	// A wrapped API error keeps its status and the outer message; any
	// other error is a 500.
	for _, c := range []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("handler x: %w", badRequest("bad thing")), 400, "handler x: bad thing"},
		{fmt.Errorf("handler x: %w", io.ErrUnexpectedEOF), 500, "handler x: unexpected EOF"},
		{notFound("gone"), 404, "gone"},
	} {
		ae, ok := asAPIError(c.err).(caddy.APIError) //nolint:errorlint // Caddy asserts the type
		if !ok || ae.HTTPStatus != c.status || ae.Error() != c.msg {
			t.Errorf("asAPIError(%v) = %+v, want status %d and %q", c.err, ae, c.status, c.msg)
		}
	}
	if asAPIError(nil) != nil {
		t.Error("asAPIError(nil) is not nil")
	}
}

// A tag purge on the SQLite store (exact tag index, batch delete) removes
// every tagged entry, more than one delete batch of them, from the store
// and from the hot tier, and nothing else.
func TestAdminPurgeTagSQLiteBatches(t *testing.T) {
	for _, hot := range []int{-1, 1 << 20} {
		t.Run(fmt.Sprintf("memory_%d", hot), func(t *testing.T) {
			path := t.TempDir() + "/cache.db"
			env := opsEnv(t, fmt.Sprintf(`{"memory": %d, "storage": {"backend": "sqlite", "path": %q}}`, hot, path), tagged)
			const n = 600
			for i := range n {
				env.get(fmt.Sprintf("/r/%d?k=red", i))
			}
			env.get("/b?k=blue")
			for i := range n {
				wantStatus(t, env.get(fmt.Sprintf("/r/%d?k=red", i)), "hit")
			}
			ans := purgeOK(t, env, map[string]any{"tag": "red"})
			if ans.Removed != n || len(ans.Results[0].Keys) != n {
				t.Fatalf("tag red: removed %d, %d keys; want %d", ans.Removed, len(ans.Results[0].Keys), n)
			}
			for i := range n {
				wantStatus(t, env.get(fmt.Sprintf("/r/%d?k=red", i)), "fwd=uri-miss")
			}
			wantStatus(t, env.get("/b?k=blue"), "hit")
		})
	}
}
