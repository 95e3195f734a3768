package cache

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// etagOrigin answers with an ETag and max-age=1; a revalidation gets a 304
// carrying the fields in on304.
func etagOrigin(on304 ...string) func(http.ResponseWriter, *http.Request, int64) error {
	return func(w http.ResponseWriter, r *http.Request, n int64) error {
		if r.Header.Get("If-None-Match") == `"v1"` {
			for i := 0; i+1 < len(on304); i += 2 {
				w.Header().Add(on304[i], on304[i+1])
			}
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprintf(w, "body-%d", n)
		return nil
	}
}

// RFC 9111 §4.3.4: the 304's fields replace the stored ones, so a 304 that
// says private (or no-store) makes the updated response one a shared cache
// must not reuse: it is removed, and only this client gets it.
func TestRevalidation304MakesItUnstorable(t *testing.T) {
	for _, tc := range []struct{ name, cc, detail string }{
		{"9111 4.3.4 a 304 with private removes the entry", "private, max-age=60", "private"},
		{"9111 4.3.4 a 304 with no-store removes the entry", "no-store", "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, "", etagOrigin("Cache-Control", tc.cc))
			env.get("/p")
			env.clock.Advance(5 * time.Second)
			r := env.get("/p", "Cookie", "user=a")
			wantStatus(t, r, "fwd-status=304")
			if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "stored") || !strings.Contains(cs, tc.detail) {
				t.Fatalf("Cache-Status %q: want not stored, detail %q", cs, tc.detail)
			}
			if r.body != "body-1" {
				t.Fatalf("the revalidating client got %q", r.body)
			}
			if _, err := env.h.store.Get(context.Background(), env.h.cacheKey(reqFor(env, "/p"))); err == nil {
				t.Fatal("the entry is still stored")
			}
			other := env.get("/p", "Cookie", "user=b")
			if strings.Contains(other.header.Get("Cache-Status"), "hit") {
				t.Fatalf("another client got a hit: %q", other.header.Get("Cache-Status"))
			}
		})
	}
}

func reqFor(env *testEnv, path string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, env.srv.URL+path, nil)
	return r
}

// A Set-Cookie on a 304 reaches the client that triggered the revalidation
// and is never stored.
func TestRevalidation304SetCookieForwarded(t *testing.T) {
	env := newEnv(t, "", etagOrigin("Cache-Control", "max-age=60", "Set-Cookie", "session=rotated"))
	env.get("/s")
	env.clock.Advance(5 * time.Second)
	r := env.get("/s")
	wantStatus(t, r, "fwd-status=304; stored")
	if got := r.header.Get("Set-Cookie"); got != "session=rotated" {
		t.Fatalf("Set-Cookie %q, want the 304's", got)
	}
	hit := env.get("/s")
	wantStatus(t, hit, "hit")
	if got := hit.header.Get("Set-Cookie"); got != "" {
		t.Fatalf("the 304's Set-Cookie was stored: %q on a hit", got)
	}
}

// RFC 9110 §6.6.1: a response stored without Date gets one.
func TestDateAddedWhenStored(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header()["Date"] = nil // net/http adds one unless told not to
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
		return nil
	})
	env.get("/d")
	e, err := env.h.store.Get(context.Background(), env.h.cacheKey(reqFor(env, "/d")))
	if err != nil {
		t.Fatal(err)
	}
	d, err := http.ParseTime(e.Header.Get("Date"))
	if err != nil || d.Sub(env.clock.Now()).Abs() > 2*time.Second {
		t.Fatalf("stored Date %q (%v)", e.Header.Get("Date"), err)
	}
}

// RFC 9211 §2: an upstream cache's Cache-Status member is kept and ours
// follows it, on the miss and on hits.
func TestCacheStatusAppended(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60", "Cache-Status", "Origin; hit"))
	for _, want := range []string{"fwd=uri-miss", "hit"} {
		r := env.get("/c")
		got := r.header.Values("Cache-Status")
		if len(got) != 2 || got[0] != "Origin; hit" || !strings.Contains(got[1], want) {
			t.Fatalf("Cache-Status %q, want the upstream member then ours (%s)", got, want)
		}
	}
}

// RFC 9110 §14.2: a Range with an unknown unit is ignored (200 on a hit as
// on a miss); §14.1.2: bytes=-0 selects nothing (416).
func TestRangeOnHits(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	env.get("/r")
	r := env.get("/r", "Range", "items=0-5")
	if r.status != http.StatusOK || r.body != "body-1" {
		t.Fatalf("unknown range unit: %d %q, want 200 and the whole body", r.status, r.body)
	}
	wantStatus(t, r, "hit")
	r = env.get("/r", "Range", "bytes=-0")
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != "bytes */6" {
		t.Fatalf("bytes=-0: %d %q", r.status, r.header.Get("Content-Range"))
	}
	r = env.get("/r", "Range", "bytes=0-3")
	if r.status != http.StatusPartialContent || r.body != "body" {
		t.Fatalf("bytes=0-3: %d %q", r.status, r.body)
	}
}

// barrier lets n origin requests meet: each waits until all n are in
// flight at once, or until a deadline (then it reports that it waited in
// vain, i.e. the requests were queued behind each other).
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) meet() bool {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// concurrently sends one request per header set at once and returns the
// bodies.
func concurrently(env *testEnv, path string, hdrs ...[]string) []string {
	out := make([]string, len(hdrs))
	var wg sync.WaitGroup
	for i, h := range hdrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = env.get(path, h...).body
		}()
	}
	wg.Wait()
	return out
}

// An oversized chunked body marks its key hit-for-miss as soon as the
// spool overflows, so concurrent requests stop queueing behind it: in
// each round all three reach the origin together.
func TestOversizedChunkedIsHitForMiss(t *testing.T) {
	var round atomic.Pointer[barrier]
	env := newEnv(t, `{"max_entry_size": 100}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte(strings.Repeat("a", 150))) // chunked: past the bound at once
		http.NewResponseController(w).Flush()
		if !round.Load().meet() {
			w.Write([]byte("QUEUED"))
		}
		w.Write([]byte(strings.Repeat("b", 150)))
		return nil
	})
	for i := 0; i < 2; i++ {
		round.Store(newBarrier(3))
		for _, b := range concurrently(env, "/big", nil, nil, nil) {
			if strings.Contains(b, "QUEUED") || len(b) != 300 {
				t.Fatalf("round %d: requests queued behind an oversized chunked response (%d bytes)", i, len(b))
			}
		}
	}
}

// Coalescing honours Vary: once the response says it varies on Cookie,
// requests with other cookies go to the origin at once.
func TestCoalescingHonoursVary(t *testing.T) {
	var round atomic.Pointer[barrier]
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Vary", "Cookie")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		if !round.Load().meet() {
			return nil // short body: the client sees an error, never stored
		}
		w.Write([]byte("ok"))
		return nil
	})
	users := [][]string{{"Cookie", "u=1"}, {"Cookie", "u=2"}, {"Cookie", "u=3"}, {"Cookie", "u=4"}}
	for i := 0; i < 2; i++ {
		round.Store(newBarrier(4))
		for _, b := range concurrently(env, "/v", users...) {
			if b != "ok" {
				t.Fatalf("round %d: users with different cookies waited for each other (%q)", i, b)
			}
		}
		env.clock.Advance(2 * time.Second) // stale: every user misses again
	}
}

// RFC 5861: the stale-while-revalidate refresh is a full GET: the client's
// Range is not forwarded, and the entry becomes fresh.
func TestBackgroundRefreshIsAFullGET(t *testing.T) {
	var seen sync.Map // hit number -> Range sent
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		seen.Store(n, r.Header.Get("Range")+"|"+r.Header.Get("If-None-Match"))
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		fmt.Fprintf(w, "version-%d", n)
		return nil
	})
	env.get("/swr")
	env.clock.Advance(20 * time.Second)
	r := env.get("/swr", "Range", "bytes=0-3", "If-None-Match", `"other"`)
	if r.status != http.StatusPartialContent || r.body != "vers" {
		t.Fatalf("stale range: %d %q", r.status, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for env.hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	v, ok := seen.Load(int64(2))
	if !ok {
		t.Fatal("no background refresh reached the origin")
	}
	if v.(string) != "|" {
		t.Fatalf("the refresh carried the client's Range|If-None-Match %q", v)
	}
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if fresh := env.get("/swr"); strings.Contains(fresh.header.Get("Cache-Status"), "hit; ttl=1") && fresh.body == "version-2" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the entry did not become fresh after the refresh")
}

// Cache-Status says stored only for a response whose storing is under way
// with a known length; {http.cache.stored} says what happened.
func TestStoredOnlyWhenStored(t *testing.T) {
	env := newEnv(t, `{"max_entry_size": 100}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		body := strings.Repeat("x", 50)
		if r.URL.Path == "/big" {
			body = strings.Repeat("x", 300)
		}
		if r.URL.Query().Has("len") {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for i := 0; i < len(body); i += 10 {
			w.Write([]byte(body[i : i+10]))
			http.NewResponseController(w).Flush()
		}
		return nil
	})
	stored := make(chan string, 1)
	env.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		_ = env.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return env.origin(w, r, env.hits.Add(1))
		}))
		v, _ := repl.Get("http.cache.stored")
		d, _ := repl.GetString("http.cache.detail")
		stored <- fmt.Sprint(v) + " " + d // after the response: read below once it is set
	})
	for _, tc := range []struct{ path, cs, placeholder string }{
		{"/small?len", "; stored", "true "},
		{"/small", `detail="store-if-complete"`, "true "},
		{"/big", `detail="store-if-complete"`, "false too large"},
	} {
		r := env.get(tc.path)
		if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, tc.cs) || (tc.cs != "; stored" && strings.Contains(cs, "stored;")) {
			t.Fatalf("%s: Cache-Status %q, want %q", tc.path, cs, tc.cs)
		}
		if got := <-stored; got != tc.placeholder {
			t.Fatalf("%s: {http.cache.stored} {http.cache.detail} = %q, want %q", tc.path, got, tc.placeholder)
		}
	}
}

// Web cache deception: a ttl rule for *.css does not make a private page
// requested as /account;x.css (with the victim's cookie) shared.
func TestTTLRuleWebCacheDeception(t *testing.T) {
	env := newEnv(t, `{"ttl_rules": [{"match": "*.css", "ttl": "1h"}]}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		if strings.HasPrefix(r.URL.Path, "/account") {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "account page of %s #%d", r.Header.Get("Cookie"), n)
			return nil
		}
		w.Header().Set("Content-Type", "text/css")
		if r.URL.Query().Has("public") {
			w.Header().Set("Cache-Control", "public")
		}
		fmt.Fprintf(w, "body{} #%d", n)
		return nil
	})
	victim := env.get("/account;x.css", "Cookie", "session=victim")
	if !strings.Contains(victim.body, "victim") {
		t.Fatalf("victim got %q", victim.body)
	}
	if r := env.get("/account;x.css"); strings.Contains(r.body, "victim") {
		t.Fatalf("a cookie-less client got the victim's page: %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
	// a text/html response does not take the *.css lifetime even without cookies
	env.get("/account/y.css")
	if r := env.get("/account/y.css"); strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("an HTML page took the *.css rule: %s", r.header.Get("Cache-Status"))
	}
	// a real stylesheet requested with a cookie is not stored by the rule…
	env.get("/site.css", "Cookie", "session=a")
	if r := env.get("/site.css"); strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("a response to a request with Cookie took the rule: %s", r.header.Get("Cache-Status"))
	}
	// …unless the origin says public; without a cookie it is
	env.get("/pub.css?public", "Cookie", "session=a")
	wantStatus(t, env.get("/pub.css?public"), "hit")
	env.get("/plain.css")
	wantStatus(t, env.get("/plain.css"), "hit")
}

func TestTTLRuleTypes(t *testing.T) {
	cases := []struct {
		match string
		types []string
		ct    string
		want  bool
	}{
		{"*.css", nil, "text/css; charset=utf-8", true},
		{"*.css", nil, "text/html", false},
		{"*.css", nil, "", false},
		{"/static/*.js", nil, "application/javascript", true},
		{"*.json", nil, "application/ld+json", true},
		{"*.png", nil, "image/png", true},
		{"*.css", []string{"text/*"}, "text/x-css", true},
		{"/static/*", nil, "text/html", true}, // no extension: any type
		{"*.unknownext", nil, "text/html", true},
	}
	for _, tc := range cases {
		r := TTLRule{Match: tc.match, TTL: "1h", ContentTypes: tc.types}
		if err := r.parse(); err != nil {
			t.Fatal(err)
		}
		if got := r.typeAllowed(tc.ct); got != tc.want {
			t.Errorf("rule %s %v, Content-Type %q: %v, want %v", tc.match, tc.types, tc.ct, got, tc.want)
		}
	}
	if err := (&TTLRule{Match: "*.css", TTL: "1h", ContentTypes: []string{"css"}}).parse(); err == nil {
		t.Error("a content type without a slash was accepted")
	}
}

// A small chunked response (no Content-Length, no flush) is held until it
// is complete: it then goes out with its length and Cache-Status stored.
func TestSmallChunkedHeldAndStored(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		for i := 0; i < 5; i++ {
			fmt.Fprintf(w, "part%d ", i) // several writes, length unknown
		}
		return nil
	})
	r := env.get("/c")
	wantStatus(t, r, "fwd=uri-miss; stored")
	if r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) || r.body != "part0 part1 part2 part3 part4 " {
		t.Fatalf("Content-Length %q, body %q", r.header.Get("Content-Length"), r.body)
	}
	wantStatus(t, env.get("/c"), "hit")
}
