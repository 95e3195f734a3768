package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// testEnv is a cache handler provisioned on its own memory store, served by
// an httptest server, in front of an origin written as a Go function.
type testEnv struct {
	t      *testing.T
	h      *Handler
	srv    *httptest.Server
	hits   atomic.Int64
	origin func(w http.ResponseWriter, r *http.Request, n int64) error
	clock  *fakeClock
	// prep, when set, changes each request before the handler sees it
	// (e.g. a rewrite, as Caddy's rewrite handlers do)
	prep func(r *http.Request) *http.Request
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newEnv provisions a handler from a JSON config (storage defaults to a
// memory store unique to the test) in front of origin.
func newEnv(t *testing.T, config string, origin func(w http.ResponseWriter, r *http.Request, n int64) error) *testEnv {
	t.Helper()
	if config == "" {
		config = "{}"
	}
	h := new(Handler)
	if err := json.Unmarshal([]byte(config), h); err != nil {
		t.Fatalf("config: %v", err)
	}
	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"memory","name":%q}`, t.Name()))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	env := &testEnv{t: t, h: h, origin: origin}
	// The clock starts at real time so that the store's own expiry (real
	// time) agrees; tests advance it to age entries.
	env.clock = &fakeClock{t: time.Now()}
	h.now = env.clock.Now
	env.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		r = r.WithContext(ctx)
		if env.prep != nil {
			r = env.prep(r)
		}
		err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			n := env.hits.Add(1)
			return env.origin(w, r, n)
		}))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(env.srv.Close)
	return env
}

type result struct {
	status int
	header http.Header
	body   string
}

func (e *testEnv) do(method, path string, hdr ...string) result {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func (e *testEnv) get(path string, hdr ...string) result {
	e.t.Helper()
	return e.do(http.MethodGet, path, hdr...)
}

func (e *testEnv) wantHits(n int64) {
	e.t.Helper()
	if got := e.hits.Load(); got != n {
		e.t.Fatalf("origin saw %d requests, want %d", got, n)
	}
}

func wantStatus(t *testing.T, r result, sub string) {
	t.Helper()
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, sub) {
		t.Fatalf("Cache-Status %q, want it to contain %q", cs, sub)
	}
}

func wantBody(t *testing.T, r result, body string) {
	t.Helper()
	if r.body != body {
		t.Fatalf("body %q, want %q", r.body, body)
	}
}

// fixed answers every request with the given headers and "body-N".
func fixed(hdr ...string) func(http.ResponseWriter, *http.Request, int64) error {
	return func(w http.ResponseWriter, r *http.Request, n int64) error {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		body := fmt.Sprintf("body-%d", n)
		if w.Header().Get("Content-Length") == "" && w.Header().Get("Transfer-Encoding") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body))) // as most origins send it
		}
		fmt.Fprint(w, body)
		return nil
	}
}

func TestMissThenHit(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	r1 := env.get("/a")
	wantStatus(t, r1, "Caddy; fwd=uri-miss; stored")
	wantBody(t, r1, "body-1")
	env.clock.Advance(5 * time.Second)
	r2 := env.get("/a")
	wantStatus(t, r2, "Caddy; hit; ttl=55")
	wantBody(t, r2, "body-1")
	if age := r2.header.Get("Age"); age != "5" {
		t.Fatalf("Age %q, want 5", age)
	}
	if cl := r2.header.Get("Content-Length"); cl != "6" {
		t.Fatalf("Content-Length %q, want 6", cl)
	}
	env.wantHits(1)
	// another URL is another entry
	wantBody(t, env.get("/b"), "body-2")
	// HEAD is answered from the stored GET, without a body
	r3 := env.do(http.MethodHead, "/a")
	wantStatus(t, r3, "hit")
	if r3.body != "" {
		t.Fatalf("HEAD got a body %q", r3.body)
	}
	env.wantHits(2)
}

func TestExpiredEntryIsRefetched(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=10"))
	wantBody(t, env.get("/"), "body-1")
	env.clock.Advance(11 * time.Second)
	r := env.get("/")
	wantBody(t, r, "body-2")
	wantStatus(t, r, "fwd=uri-miss") // no validator: dropped when it expired
	env.wantHits(2)
}

func TestHeadMissStoresTheGet(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	r := env.do(http.MethodHead, "/h")
	if r.body != "" {
		t.Fatalf("HEAD got a body %q", r.body)
	}
	wantBody(t, env.get("/h"), "body-1")
	env.wantHits(1)
}

func TestVary(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding, X-Lang")
		fmt.Fprintf(w, "%s|%s|%d", r.Header.Get("Accept-Encoding"), r.Header.Get("X-Lang"), n)
		return nil
	})
	wantBody(t, env.get("/v", "Accept-Encoding", "gzip", "X-Lang", "en"), "gzip|en|1")
	wantBody(t, env.get("/v", "Accept-Encoding", "br", "X-Lang", "en"), "br|en|2")
	r := env.get("/v", "Accept-Encoding", "gzip", "X-Lang", "en")
	wantBody(t, r, "gzip|en|1")
	wantStatus(t, r, "hit")
	wantBody(t, env.get("/v", "Accept-Encoding", "br", "X-Lang", "en"), "br|en|2")
	// a different value of a selecting header is another variant
	r = env.get("/v", "Accept-Encoding", "gzip", "X-Lang", "fr")
	wantBody(t, r, "gzip|fr|3")
	wantStatus(t, r, "fwd=vary-miss")
	// absent selecting header is its own variant
	wantBody(t, env.get("/v", "Accept-Encoding", "gzip"), "gzip||4")
	env.wantHits(4)
}

func TestMaxVariants(t *testing.T) {
	env := newEnv(t, `{"max_variants": 2}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "X-V")
		fmt.Fprintf(w, "%s-%d", r.Header.Get("X-V"), n)
		return nil
	})
	for _, v := range []string{"a", "b", "c"} {
		env.get("/", "X-V", v)
	}
	// a was the oldest of three with room for two: dropped
	wantBody(t, env.get("/", "X-V", "c"), "c-3")
	wantBody(t, env.get("/", "X-V", "b"), "b-2")
	wantBody(t, env.get("/", "X-V", "a"), "a-4")
}

func TestVaryStarNotStored(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60", "Vary", "*"))
	env.get("/")
	r := env.get("/")
	wantBody(t, r, "body-2")
}

func TestRevalidation304(t *testing.T) {
	var sawINM, sawIMS atomic.Value
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		sawINM.Store(r.Header.Get("If-None-Match"))
		sawIMS.Store(r.Header.Get("If-Modified-Since"))
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("X-Refreshed", "yes")
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	wantBody(t, env.get("/r"), "body-1")
	env.clock.Advance(15 * time.Second)
	r := env.get("/r")
	if r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	wantBody(t, r, "body-1")
	wantStatus(t, r, "fwd=stale; fwd-status=304")
	if got := sawINM.Load(); got != `"v1"` {
		t.Fatalf("origin saw If-None-Match %q", got)
	}
	if got := sawIMS.Load(); got != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Fatalf("origin saw If-Modified-Since %q", got)
	}
	if r.header.Get("X-Refreshed") != "yes" {
		t.Fatalf("304 header not merged into the response: %v", r.header)
	}
	// freshened: a hit again, with the merged header
	env.clock.Advance(2 * time.Second)
	r = env.get("/r")
	wantStatus(t, r, "hit")
	wantBody(t, r, "body-1")
	if r.header.Get("X-Refreshed") != "yes" {
		t.Fatalf("merged header not stored")
	}
	env.wantHits(2)
}

func TestRevalidationGets200(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=10", "ETag", `"x"`))
	env.get("/")
	env.clock.Advance(11 * time.Second)
	r := env.get("/")
	wantBody(t, r, "body-2")
	wantStatus(t, r, "fwd=stale; fwd-status=200; stored")
	wantBody(t, env.get("/"), "body-2")
	env.wantHits(2)
}

func TestRevalidationErrorPassesThrough(t *testing.T) {
	fail := atomic.Bool{}
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "down")
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"x"`)
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/")
	env.clock.Advance(11 * time.Second)
	fail.Store(true)
	r := env.get("/")
	if r.status != http.StatusServiceUnavailable || r.body != "down" {
		t.Fatalf("got %d %q, want the origin's 503", r.status, r.body)
	}
}

func TestClientConditionalOnHit(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60", "ETag", `"e1"`))
	env.get("/")
	r := env.get("/", "If-None-Match", `"e1"`)
	if r.status != http.StatusNotModified {
		t.Fatalf("status %d, want 304", r.status)
	}
	if r.header.Get("ETag") != `"e1"` || r.header.Get("Cache-Status") == "" {
		t.Fatalf("304 header %v", r.header)
	}
	r = env.get("/", "If-None-Match", `"other"`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200", r.status)
	}
	env.wantHits(1)
}

func TestRangeOnHit(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "0123456789")
		return nil
	})
	env.get("/f")
	r := env.get("/f", "Range", "bytes=2-4")
	if r.status != http.StatusPartialContent || r.body != "234" {
		t.Fatalf("got %d %q, want 206 \"234\"", r.status, r.body)
	}
	if cr := r.header.Get("Content-Range"); cr != "bytes 2-4/10" {
		t.Fatalf("Content-Range %q", cr)
	}
	r = env.get("/f", "Range", "bytes=20-30")
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("status %d, want 416", r.status)
	}
	env.wantHits(1)
}

func TestNotStored(t *testing.T) {
	cases := []struct {
		name   string
		hdr    []string
		req    []string
		detail string
	}{
		{"response no-store", []string{"Cache-Control", "max-age=60, no-store"}, nil, ""},
		{"response private", []string{"Cache-Control", "private, max-age=60"}, nil, ""},
		{"Set-Cookie", []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, nil, ""},
		{"Authorization without public", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}, ""},
		{"request no-store", []string{"Cache-Control", "max-age=60"}, []string{"Cache-Control", "no-store"}, ""},
		{"no freshness for 302", []string{"Location", "/x"}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, "", fixed(tc.hdr...))
			r1 := env.get("/", tc.req...)
			if strings.Contains(r1.header.Get("Cache-Status"), "stored") {
				t.Fatalf("Cache-Status %q claims stored", r1.header.Get("Cache-Status"))
			}
			r2 := env.get("/", tc.req...)
			wantBody(t, r2, "body-2")
			env.wantHits(2)
		})
	}
}

func TestAuthorizationWithPublicIsStored(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "public, max-age=60"))
	env.get("/", "Authorization", "Bearer a")
	wantBody(t, env.get("/", "Authorization", "Bearer a"), "body-1")
}

func TestStoreSetCookieOption(t *testing.T) {
	env := newEnv(t, `{"store_set_cookie": true}`, fixed("Cache-Control", "max-age=60", "Set-Cookie", "a=b"))
	env.get("/")
	wantBody(t, env.get("/"), "body-1")
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.Header().Set("Content-Location", "http://elsewhere.example/x")
			w.WriteHeader(http.StatusCreated)
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s-%d", r.URL.Path, n)
		return nil
	})
	env.get("/target")
	env.get("/other")
	wantBody(t, env.get("/target"), "/target-1")
	r := env.do(http.MethodPost, "/target")
	if r.status != http.StatusCreated {
		t.Fatalf("POST status %d", r.status)
	}
	wantBody(t, env.get("/target"), "/target-4")
	wantBody(t, env.get("/other"), "/other-5")
}

func TestFailedUnsafeMethodKeepsEntry(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusForbidden)
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/")
	env.do(http.MethodDelete, "/")
	wantBody(t, env.get("/"), "body-1")
}

func TestCoalescing(t *testing.T) {
	gate := make(chan struct{})
	var arrived atomic.Int64
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		<-gate
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	inner := env.srv.Config.Handler
	env.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		inner.ServeHTTP(w, r)
	})
	const clients = 100
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bodies[i] = env.get("/c").body
		}(i)
	}
	for arrived.Load() < clients {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	env.wantHits(1)
	for i, b := range bodies {
		if b != "body-1" {
			t.Fatalf("client %d got %q", i, b)
		}
	}
}

func TestCoalescingPrivateNotShared(t *testing.T) {
	gate := make(chan struct{})
	var arrived atomic.Int64
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		<-gate
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprintf(w, "for-%s", r.Header.Get("X-Client"))
		return nil
	})
	inner := env.srv.Config.Handler
	env.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		inner.ServeHTTP(w, r)
	})
	const clients = 50
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bodies[i] = env.get("/p", "X-Client", fmt.Sprint(i)).body
		}(i)
	}
	for arrived.Load() < clients {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i, b := range bodies {
		if want := fmt.Sprintf("for-%d", i); b != want {
			t.Fatalf("client %d got %q, want %q", i, b, want)
		}
	}
	env.wantHits(clients)
}

func TestTruncatedBodyNotStored(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "only part of it")
		return nil
	})
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/t", nil)
	if resp, err := env.srv.Client().Do(req); err == nil {
		_, _ = io.ReadAll(resp.Body) // unexpected EOF expected
		resp.Body.Close()
	}
	if resp, err := env.srv.Client().Do(req); err == nil {
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	env.wantHits(2)
}

func TestOriginErrorNotStored(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "partial")
		return fmt.Errorf("upstream broke")
	})
	env.get("/")
	env.get("/")
	env.wantHits(2)
}

func TestOversizeStreamsAndIsNotStored(t *testing.T) {
	big := strings.Repeat("x", 4096)
	env := newEnv(t, `{"max_entry_size": 1024}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		// no Content-Length: written in chunks
		for i := 0; i < 4; i++ {
			fmt.Fprint(w, big[:1024])
			http.NewResponseController(w).Flush()
		}
		return nil
	})
	r := env.get("/big")
	wantBody(t, r, big)
	r = env.get("/big")
	wantBody(t, r, big)
	env.wantHits(2)
}

func TestOversizeWithContentLength(t *testing.T) {
	big := strings.Repeat("y", 2048)
	env := newEnv(t, `{"max_entry_size": 1024}`, fixed("Cache-Control", "max-age=60", "Content-Length", "2048"))
	env.origin = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "2048")
		fmt.Fprint(w, big)
		return nil
	}
	r := env.get("/")
	wantBody(t, r, big)
	if strings.Contains(r.header.Get("Cache-Status"), "stored") {
		t.Fatalf("Cache-Status %q", r.header.Get("Cache-Status"))
	}
	env.get("/")
	env.wantHits(2)
}

func TestEventStreamNotStored(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60", "Content-Type", "text/event-stream"))
	env.get("/")
	env.get("/")
	env.wantHits(2)
}

func TestRequestNoCacheRevalidates(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	env.get("/")
	r := env.get("/", "Cache-Control", "no-cache")
	wantBody(t, r, "body-2")
	wantBody(t, env.get("/", "Cache-Control", "max-age=0"), "body-3")
	wantBody(t, env.get("/"), "body-3")
}

func TestOnlyIfCached(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	r := env.get("/", "Cache-Control", "only-if-cached")
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", r.status)
	}
	env.wantHits(0)
	env.get("/")
	r = env.get("/", "Cache-Control", "only-if-cached")
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200 from cache", r.status)
	}
}

func TestTTLConfig(t *testing.T) {
	env := newEnv(t, `{"ttl": "30s", "ttl_rules": [{"match": "/never/*", "ttl": "no-store"}, {"match": "/short/*", "ttl": "5s"}]}`,
		fixed("X-No-Freshness", "1"))
	env.get("/x")
	env.get("/short/a")
	env.get("/never/a")
	env.clock.Advance(10 * time.Second)
	wantBody(t, env.get("/x"), "body-1")       // default ttl 30s
	wantBody(t, env.get("/short/a"), "body-4") // rule 5s: expired
	wantBody(t, env.get("/never/a"), "body-5") // not stored
}

func TestOriginFreshnessWinsOverTTL(t *testing.T) {
	env := newEnv(t, `{"ttl": "1h"}`, fixed("Cache-Control", "max-age=5"))
	env.get("/")
	env.clock.Advance(10 * time.Second)
	wantBody(t, env.get("/"), "body-2")
}

func TestCacheControlIgnore(t *testing.T) {
	env := newEnv(t, `{"ttl": "1h", "cache_control": "ignore"}`, fixed("Cache-Control", "no-cache, max-age=0"))
	env.get("/")
	env.clock.Advance(10 * time.Second)
	wantBody(t, env.get("/"), "body-1")
	// private is still honoured
	env2 := newEnv(t, `{"ttl": "1h", "cache_control": "ignore"}`, fixed("Cache-Control", "private"))
	env2.get("/")
	wantBody(t, env2.get("/"), "body-2")
}

func TestKeyIgnoreQueryAndHeaders(t *testing.T) {
	env := newEnv(t, `{"key": {"ignore_query": ["utm_*", "fbclid"], "headers": ["X-Tenant"]}}`,
		fixed("Cache-Control", "max-age=60"))
	env.get("/?a=1&utm_source=x", "X-Tenant", "t1")
	wantBody(t, env.get("/?a=1&fbclid=9", "X-Tenant", "t1"), "body-1")
	wantBody(t, env.get("/?a=1", "X-Tenant", "t2"), "body-2")
	wantBody(t, env.get("/?a=2", "X-Tenant", "t1"), "body-3")
	// invalidation reaches every key-header variant of the URL
	env.do(http.MethodPut, "/?a=1")
	wantBody(t, env.get("/?a=1", "X-Tenant", "t1"), "body-5")
	wantBody(t, env.get("/?a=1", "X-Tenant", "t2"), "body-6")
}

func TestBypass(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	for _, hdr := range [][]string{{"X-HTTP-Method-Override", "DELETE"}, {"Upgrade", "websocket"}} {
		r := env.get("/", hdr...)
		wantStatus(t, r, "fwd=bypass")
	}
	r := env.do(http.MethodOptions, "/")
	wantStatus(t, r, "fwd=bypass")
	wantBody(t, env.get("/"), "body-4")
}

func TestMethodsOption(t *testing.T) {
	env := newEnv(t, `{"methods": ["GET"]}`, fixed("Cache-Control", "max-age=60"))
	env.get("/")
	r := env.do(http.MethodHead, "/")
	wantStatus(t, r, "fwd=bypass")
}

func TestStatusOption(t *testing.T) {
	env := newEnv(t, `{"status": [200]}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/")
	wantBody(t, env.get("/"), "body-2") // 404 not heuristically cacheable here
}

func TestPlaceholders(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60"))
	var got atomic.Value
	inner := env.srv.Config.Handler
	_ = inner
	env.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		_ = env.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			env.hits.Add(1)
			return env.origin(w, r, 1)
		}))
		s, _ := repl.GetString("http.cache.status")
		k, _ := repl.GetString("http.cache.key")
		got.Store(s + " " + k)
	})
	env.get("/p?q=1")
	if g := got.Load().(string); !strings.HasPrefix(g, "miss http://127.0.0.1:") || !strings.HasSuffix(g, "/p?q=1") {
		t.Fatalf("placeholders %q", g)
	}
	env.get("/p?q=1")
	if g := got.Load().(string); !strings.HasPrefix(g, "hit ") {
		t.Fatalf("placeholders %q", g)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	release := make(chan struct{})
	var refreshes atomic.Int64
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		if n > 1 {
			refreshes.Add(1)
			<-release
		}
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/")
	env.clock.Advance(15 * time.Second)
	// several stale requests: all served stale at once, one background refresh
	for i := 0; i < 5; i++ {
		r := env.get("/")
		wantBody(t, r, "body-1")
		wantStatus(t, r, `detail="stale-while-revalidate"`)
	}
	close(release)
	// the refresh lands in the store: wait for it (bounded)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := env.get("/")
		if r.body == "body-2" {
			wantStatus(t, r, "hit")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refresh never stored; last body %q", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("%d background refreshes, want exactly 1", n)
	}
}

func TestStaleWhileRevalidateConfigDefault(t *testing.T) {
	env := newEnv(t, `{"stale_while_revalidate": "1m"}`, fixed("Cache-Control", "max-age=10"))
	env.get("/")
	env.clock.Advance(15 * time.Second)
	r := env.get("/")
	wantBody(t, r, "body-1")
	wantStatus(t, r, "stale-while-revalidate")
}

func TestStaleIfError(t *testing.T) {
	var mode atomic.Int32 // 0 ok, 1 503, 2 error without response
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		switch mode.Load() {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "origin down")
			return nil
		case 2:
			return fmt.Errorf("dial tcp: connection refused")
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		fmt.Fprintf(w, "original-%d", n)
		return nil
	})
	env.get("/")
	env.clock.Advance(15 * time.Second)
	mode.Store(1)
	r := env.get("/")
	if r.status != 200 || r.body != "original-1" {
		t.Fatalf("got %d %q, want the stale 200", r.status, r.body)
	}
	wantStatus(t, r, `fwd=stale; fwd-status=503`)
	wantStatus(t, r, `detail="stale-if-error"`)
	mode.Store(2)
	r = env.get("/")
	if r.status != 200 || r.body != "original-1" {
		t.Fatalf("got %d %q, want the stale 200 on a connection failure", r.status, r.body)
	}
	// past the window, the error passes through
	env.clock.Advance(2 * time.Minute)
	mode.Store(1)
	r = env.get("/")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d past stale-if-error, want 503", r.status)
	}
}

func TestStaleIfErrorNotWithMustRevalidate(t *testing.T) {
	fail := atomic.Bool{}
	env := newEnv(t, `{"stale_if_error": "1h"}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		if fail.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return nil
		}
		w.Header().Set("Cache-Control", "max-age=10, must-revalidate")
		w.Header().Set("ETag", `"a"`)
		fmt.Fprint(w, "x")
		return nil
	})
	env.get("/")
	env.clock.Advance(15 * time.Second)
	fail.Store(true)
	if r := env.get("/"); r.status != http.StatusBadGateway {
		t.Fatalf("status %d, want the origin's 502 (must-revalidate)", r.status)
	}
}

// RFC 9213 §2.1: the targeted fields a cache used are forwarded by default
// (a CDN downstream obeys them too); Surrogate-Control is removed, as the
// Edge Architecture specification asks, unless forward_targeted is set;
// strip_targeted removes them all.
func TestTargetedCacheControl(t *testing.T) {
	origin := fixed("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60", "Surrogate-Control", "max-age=30")
	env := newEnv(t, "", origin)
	for i, want := range []string{"body-1", "body-1"} {
		r := env.get("/")
		wantBody(t, r, want)
		if got := r.header.Get("CDN-Cache-Control"); got != "max-age=60" {
			t.Fatalf("response %d: CDN-Cache-Control %q, want it forwarded (RFC 9213 §2.1)", i+1, got)
		}
		if r.header.Get("Surrogate-Control") != "" {
			t.Fatalf("response %d: Surrogate-Control forwarded by default", i+1)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("response %d: Cache-Control %q, want it passed on", i+1, r.header.Get("Cache-Control"))
		}
	}

	fwd := newEnv(t, `{"forward_targeted": true}`, origin)
	fwd.get("/")
	r := fwd.get("/")
	wantBody(t, r, "body-1")
	if r.header.Get("Surrogate-Control") != "max-age=30" || r.header.Get("CDN-Cache-Control") != "max-age=60" {
		t.Fatalf("forward_targeted: Surrogate-Control %q, CDN-Cache-Control %q, want both", r.header.Get("Surrogate-Control"), r.header.Get("CDN-Cache-Control"))
	}

	strip := newEnv(t, `{"targeted_fields": ["Caddy-Cache-Control", "CDN-Cache-Control", "Surrogate-Control"], "strip_targeted": true}`,
		fixed("CDN-Cache-Control", "no-store", "Caddy-Cache-Control", "max-age=60", "Surrogate-Control", "max-age=5"))
	for i := range 2 {
		r := strip.get("/")
		wantBody(t, r, "body-1")
		for _, f := range []string{"Caddy-Cache-Control", "CDN-Cache-Control", "Surrogate-Control"} {
			if r.header.Get(f) != "" {
				t.Fatalf("strip_targeted, response %d: %s sent to the client", i+1, f)
			}
		}
	}
}

// RFC 9213 §2.1: a CDN-Cache-Control that is not a valid Structured Field
// Dictionary, or whose max-age is not an Integer, is ignored and
// Cache-Control governs.
func TestTargetedInvalidFallsBack(t *testing.T) {
	for _, v := range []string{"max-age=10000, &&&&&", `max-age="10000"`, "max-age =10000", "MAX-AGE=10000"} {
		t.Run(v, func(t *testing.T) {
			env := newEnv(t, "", fixed("Cache-Control", "no-store", "CDN-Cache-Control", v))
			env.get("/")
			r := env.get("/")
			wantBody(t, r, "body-2")
			if r.header.Get("CDN-Cache-Control") != v {
				t.Fatalf("CDN-Cache-Control %q, want %q forwarded", r.header.Get("CDN-Cache-Control"), v)
			}
		})
	}
	env := newEnv(t, "", fixed("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10000"))
	env.get("/")
	wantBody(t, env.get("/"), "body-1")
}

func TestForwardAndStripTargetedConflict(t *testing.T) {
	h := &Handler{ForwardTargeted: true, StripTargeted: true}
	err := h.Validate()
	if err == nil || !strings.Contains(err.Error(), "forward_targeted") || !strings.Contains(err.Error(), "strip_targeted") {
		t.Fatalf("Validate() = %v, want an error naming forward_targeted and strip_targeted", err)
	}
}

func TestRequestFreshnessDirectives(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=60", "ETag", `"e"`))
	env.get("/")
	env.clock.Advance(30 * time.Second)
	// 9111 §5.2.1.1 max-age: older than the client accepts → revalidate
	r := env.get("/", "Cache-Control", "max-age=10")
	wantStatus(t, r, "fwd=request")
	// 9111 §5.2.1.3 min-fresh: must stay fresh 45s more, has 30s → revalidate
	env.clock.Advance(30 * time.Second) // entry revalidated above: age 30 again
	r = env.get("/", "Cache-Control", "min-fresh=45")
	wantStatus(t, r, "fwd=request")
	// 9111 §5.2.1.2 max-stale: a stale response is acceptable within it
	env.clock.Advance(70 * time.Second) // 10s stale
	r = env.get("/", "Cache-Control", "max-stale=20")
	wantStatus(t, r, "hit")
	if r.header.Get("Age") != "70" {
		t.Fatalf("Age %q, want 70", r.header.Get("Age"))
	}
	r = env.get("/", "Cache-Control", "max-stale=5")
	wantStatus(t, r, "fwd=stale")
}

func TestMaxStaleNotWithMustRevalidate(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", "max-age=10, must-revalidate", "ETag", `"e"`))
	env.get("/")
	env.clock.Advance(20 * time.Second)
	r := env.get("/", "Cache-Control", "max-stale=60")
	wantStatus(t, r, "fwd=stale")
	env.wantHits(2)
}

func TestVaryNormalisation(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "accept-encoding")
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/", "Accept-Encoding", "gzip, br")
	// 9111 §4.1: list order, case and whitespace do not select another variant
	wantBody(t, env.get("/", "Accept-Encoding", "br,GZIP"), "body-1")
	wantBody(t, env.get("/", "Accept-Encoding", "  gzip ,  br  "), "body-1")
	wantBody(t, env.get("/", "Accept-Encoding", "gzip"), "body-2")
}

func TestQualifiedNoCacheStripsField(t *testing.T) {
	env := newEnv(t, "", fixed("Cache-Control", `max-age=60, no-cache="X-Secret", private="X-User"`, "X-Secret", "s3cr3t", "X-User", "alice"))
	r := env.get("/")
	if r.header.Get("X-Secret") == "" {
		t.Fatal("the first client must get the origin's full response")
	}
	r = env.get("/")
	wantStatus(t, r, "hit")
	if r.header.Get("X-Secret") != "" || r.header.Get("X-User") != "" {
		t.Fatalf("fields named by no-cache=/private= served from the cache: %v", r.header)
	}
}

func TestInvalidExpiresIsStale(t *testing.T) {
	env := newEnv(t, "", fixed("Expires", "0", "Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT"))
	env.get("/")
	wantBody(t, env.get("/"), "body-2")
}

// After a response that cannot be stored, concurrent misses for the URL go
// to the origin together instead of queueing behind one another.
func TestUncacheableURLNotCoalesced(t *testing.T) {
	const clients = 10
	var atOrigin atomic.Int64
	release := make(chan struct{})
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if n > 1 {
			atOrigin.Add(1)
			<-release
		}
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprintf(w, "for-%s", r.Header.Get("X-Client"))
		return nil
	})
	wantBody(t, env.get("/u", "X-Client", "first"), "for-first")
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bodies[i] = env.get("/u", "X-Client", fmt.Sprint(i)).body
		}(i)
	}
	// all of them reach the origin at once (bounded wait: with coalescing
	// only one would, until lock_timeout)
	deadline := time.Now().Add(5 * time.Second)
	for atOrigin.Load() < clients && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := atOrigin.Load()
	close(release)
	wg.Wait()
	if got != clients {
		t.Fatalf("%d of %d concurrent requests for an uncacheable URL reached the origin together", got, clients)
	}
	for i, b := range bodies {
		if want := fmt.Sprintf("for-%d", i); b != want {
			t.Fatalf("client %d got %q", i, b)
		}
	}
}

// Event streams are told by their media type, whatever its case and
// parameters.
func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true, " text/event-stream ;x=1": true,
		"text/event-streams": false, "text/html": false, "": false, "text/event-stream extra": false,
	} {
		if got := isEventStream(ct); got != want {
			t.Errorf("isEventStream(%q) = %v, want %v", ct, got, want)
		}
	}
}
