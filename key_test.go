package cache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/storage"
)

func TestNormalTarget(t *testing.T) {
	cases := []struct {
		name        string
		path, query string
		ignore      []string
		want        string
	}{
		{"RFC 3986 6.2.2.2 unreserved escapes decoded", "/p%41th", "", nil, "/pAth"},
		{"RFC 3986 6.2.2.1 other escapes upper-cased", "/a%2fb", "q=%e2%82%ac", nil, "/a%2Fb?q=%E2%82%AC"},
		{"empty query dropped", "/x", "", nil, "/x"},
		{"empty path is /", "", "", nil, "/"},
		{"malformed escapes kept", "/%zz%4", "a=%", nil, "/%zz%4?a=%"},
		{"ignored parameter removed, order kept", "/k", "b=2&utm_x=1&a=1", []string{"utm_*"}, "/k?b=2&a=1"},
		{"cloaking: ; splits parameters too", "/p", "id=1&utm_x=1;id=2", []string{"utm_*"}, "/p?id=1;id=2"},
		{"names compared percent-decoded", "/q", "utm%5Fsource=x&id=1", []string{"utm_*"}, "/q?id=1"},
		{"all ignored: no query", "/q", "utm_a=1;utm_b=2", []string{"utm_*"}, "/q"},
		{"escapes normalised in the query", "/q", "n=%7e", nil, "/q?n=~"},
		{"an escaped dot stays escaped (never a dot segment)", "/f/%2e%2e/g", "", nil, "/f/%2E%2E/g"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalTarget(tc.path, tc.query, tc.ignore); got != tc.want {
				t.Fatalf("normalTarget(%q, %q) = %q, want %q", tc.path, tc.query, got, tc.want)
			}
		})
	}
}

func TestRequestAuthority(t *testing.T) {
	listener := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18090}
	cases := []struct {
		name  string
		host  string
		local net.Addr
		tls   bool
		want  string
	}{
		{"the listener's port, not the Host header's", "shop.test:18088", listener, false, "shop.test:18090"},
		{"the listener's port when Host has none", "shop.test", listener, false, "shop.test:18090"},
		{"lower case, no trailing dot", "Shop.Test.:18090", listener, false, "shop.test:18090"},
		{"default port omitted", "shop.test:8080", &net.TCPAddr{Port: 80}, false, "shop.test"},
		{"https default port omitted", "shop.test", &net.TCPAddr{Port: 443}, true, "shop.test"},
		{"IPv6 literal", "[::1]:1", listener, false, "[::1]:18090"},
		{"no listener (explain, purge): Host's port", "shop.test:18088", nil, false, "shop.test:18088"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tc.host
			if tc.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
			}
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			if got, _ := requestAuthority(r, scheme); got != tc.want {
				t.Fatalf("authority %q, want %q", got, tc.want)
			}
		})
	}
}

// rewriteTo makes a request look as if a Caddy rewrite had changed its
// path: the original request stays in the context.
func rewriteTo(r *http.Request, path string) *http.Request {
	orig := *r
	u := *r.URL
	orig.URL = &u
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig))
	r.URL.Path, r.URL.RawPath = path, ""
	return r
}

func echoPath(w http.ResponseWriter, r *http.Request, n int64) error {
	w.Header().Set("Cache-Control", "max-age=60")
	fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	return nil
}

// Two routes that rewrite one URL differently (a mobile rewrite) never
// share a response; the original URL keys both, so a purge of it removes
// both.
func TestRewrittenTargetSelectsAVariant(t *testing.T) {
	env := newEnv(t, "", echoPath)
	env.prep = func(r *http.Request) *http.Request {
		if r.Header.Get("X-Mobile") != "" {
			return rewriteTo(r, "/m"+r.URL.Path)
		}
		return r
	}
	desktop := env.get("/page")
	mobile := env.get("/page", "X-Mobile", "1")
	if desktop.body != "/page #1" || mobile.body != "/m/page #2" {
		t.Fatalf("desktop %q, mobile %q", desktop.body, mobile.body)
	}
	wantStatus(t, env.get("/page", "X-Mobile", "1"), "hit")
	if r := env.get("/page", "X-Mobile", "1"); r.body != "/m/page #2" {
		t.Fatalf("mobile hit %q", r.body)
	}
	// the desktop copy was replaced by the variant index (one URL, two
	// rewrites): it is fetched once more, never served the mobile body,
	// and then joins the index: both are hits from then on
	if r := env.get("/page"); r.body != "/page #3" {
		t.Fatalf("desktop got %q", r.body)
	}
	for i := 0; i < 2; i++ {
		d, m := env.get("/page"), env.get("/page", "X-Mobile", "1")
		wantStatus(t, d, "hit")
		wantStatus(t, m, "hit")
		if d.body != "/page #3" || m.body != "/m/page #2" {
			t.Fatalf("round %d: desktop %q, mobile %q", i, d.body, m.body)
		}
	}
	env.wantHits(3)
}

func TestKeyCookies(t *testing.T) {
	env := newEnv(t, `{"key": {"cookies": ["lang"]}}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		c, _ := r.Cookie("lang")
		w.Header().Set("Cache-Control", "max-age=60")
		if c != nil {
			fmt.Fprintf(w, "lang=%s #%d", c.Value, n)
		} else {
			fmt.Fprintf(w, "none #%d", n)
		}
		return nil
	})
	en := env.get("/", "Cookie", "lang=en; session=a")
	fr := env.get("/", "Cookie", "lang=fr; session=a")
	if en.body == fr.body {
		t.Fatalf("lang=en and lang=fr share %q", en.body)
	}
	// another cookie does not split the key
	if r := env.get("/", "Cookie", "session=b; lang=en"); r.body != en.body {
		t.Fatalf("same lang, other session: %q, want %q", r.body, en.body)
	}
	if r := env.get("/"); r.body == en.body || r.body == fr.body {
		t.Fatalf("no cookie got %q", r.body)
	}
	if !strings.Contains(env.h.cacheKey(httptest.NewRequest("GET", "/", nil)), "\ncookie:lang=") {
		t.Fatal("key has no cookie line")
	}
}

func TestKeyTemplate(t *testing.T) {
	env := newEnv(t, `{"key": {"template": "{http.request.uri.path}"}}`, echoPath)
	a := env.get("/t?x=1")
	b := env.get("/t?x=2") // the query is not in the template
	if a.body != b.body {
		t.Fatalf("template key without the query: %q then %q", a.body, b.body)
	}
	wantStatus(t, b, "hit")
	key := env.h.cacheKey(httptest.NewRequest("GET", "/t?x=3", nil))
	if key != env.h.scope+"/t" {
		t.Fatalf("key %q, want %q", key, env.h.scope+"/t")
	}
}

// request_cache_control ignore: a client cannot force an origin fetch.
func TestRequestCacheControlIgnore(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want string
	}{{"ignore", "hit"}, {"respect", "fwd=request"}} {
		t.Run(tc.mode, func(t *testing.T) {
			env := newEnv(t, `{"request_cache_control": "`+tc.mode+`"}`, echoPath)
			env.get("/r")
			wantStatus(t, env.get("/r", "Cache-Control", "no-cache"), tc.want)
			wantStatus(t, env.get("/r", "Pragma", "no-cache"), tc.want)
		})
	}
}

// Handlers with other names on one store never read each other's entries;
// the same name shares them.
func TestScopeSeparatesNames(t *testing.T) {
	store := `{"backend":"memory","name":"` + t.Name() + `"}`
	a := newEnv(t, `{"name": "a", "storage": `+store+`}`, echoPath)
	b := newEnv(t, `{"name": "b", "storage": `+store+`}`, echoPath)
	a.get("/s")
	if r := b.get("/s"); strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("b served a's entry: %v", r.header.Get("Cache-Status"))
	}
	if a.h.scope == b.h.scope || !strings.HasPrefix(a.h.scope, keyFormat) {
		t.Fatalf("scopes %q %q", a.h.scope, b.h.scope)
	}
}

func TestStartupLineAndSharedStoreWarning(t *testing.T) {
	store := `{"backend":"memory","name":"` + t.Name() + `"}`
	a := newEnv(t, `{"name": "one", "storage": `+store+`}`, echoPath)
	fields := map[string]string{}
	for _, f := range a.h.readyFields(a.h.ops.raw) {
		fields[f.Key] = f.String
	}
	if fields["name"] != "one" || fields["backend"] != "memory" || fields["location"] != "memory "+t.Name() || fields["hot_tier"] != "off" {
		t.Fatalf("start-up fields %v", fields)
	}
	registry.Lock()
	defer registry.Unlock()
	var cfg context.Context
	for _, r := range registry.list {
		if r.h == a.h {
			cfg = r.cfg
		}
	}
	if got := sharesStoreWith(a.h.storageID, "two", cfg); got != "one" {
		t.Fatalf("another name on the same store: warned about %q, want one", got)
	}
	if got := sharesStoreWith(a.h.storageID, "one", cfg); got != "" {
		t.Fatalf("the same name: warned about %q", got)
	}
	if got := sharesStoreWith("memory:elsewhere", "two", cfg); got != "" {
		t.Fatalf("another store: warned about %q", got)
	}
}

// storage memory with the hot-tier option is an error, not silence.
func TestMemoryOptionWithMemoryStore(t *testing.T) {
	h := &Handler{Memory: 64 << 20, StorageRaw: []byte(`{"backend":"memory","name":"x"}`)}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "max_size") {
		t.Fatalf("Validate: %v", err)
	}
}

// A Cache-Control written before the cache ran (the header directive,
// ordered before cache) is named in the detail of what it caused.
func TestCacheControlSetBeforeCache(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Add("Cache-Control", "max-age=0") // the origin's, added to the preset one
		fmt.Fprint(w, "x")
		return nil
	})
	// the handler sees a header map with Cache-Control already set
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "max-age=3600")
	req := httptest.NewRequest("GET", "/p", nil)
	if err := env.h.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return env.origin(w, r, 1)
	})); err != nil {
		t.Fatal(err)
	}
	if cs := rec.Header().Get("Cache-Status"); !strings.Contains(cs, "Cache-Control set before the cache ran") {
		t.Fatalf("Cache-Status %q does not say Cache-Control was set before the cache", cs)
	}
	// without a preset field the detail is the plain reason
	if cs := env.get("/q").header.Get("Cache-Status"); strings.Contains(cs, "before the cache") {
		t.Fatalf("Cache-Status %q", cs)
	}
}

// Entries under another key format (the unscoped keys of earlier
// versions) are never read.
func TestOldKeyFormatNotServed(t *testing.T) {
	env := newEnv(t, "", echoPath)
	old := &storage.Entry{
		Kind: storage.KindResponse, URL: env.srv.URL + "/old", Status: 200,
		Header: http.Header{"Cache-Control": {"max-age=600"}}, Body: []byte("old format"),
		ResponseTime: time.Now(), Lifetime: 10 * time.Minute, Expires: time.Now().Add(time.Hour),
	}
	if err := env.h.store.Put(context.Background(), env.srv.URL+"/old", old); err != nil {
		t.Fatal(err)
	}
	if r := env.get("/old"); r.body == "old format" || strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("an old-format entry was served: %q %q", r.body, r.header.Get("Cache-Status"))
	}
}
