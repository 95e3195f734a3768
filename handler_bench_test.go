package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The hit-path benchmarks serve stored responses straight into a writer that
// discards the body, so they measure the handler and the store alone:
// BenchmarkHit the memory store, BenchmarkHitHotTier SQLite behind the
// default memory hot tier, BenchmarkHitSQLite SQLite with the hot tier off.
// BenchmarkBaseline and BenchmarkRespond write the same header and body
// without a cache (a plain handler, and Caddy's own respond handler), so the
// hit/baseline ratio shows in one run:
//
//	go test -run '^$' -bench 'Hit|Baseline|Respond|MissStore' -benchmem .

var benchSizes = []struct {
	name string
	n    int
}{
	{"1KB", 1 << 10},
	{"16KB", 16 << 10},
	{"1MB", 1 << 20},
}

// benchHeader is the origin's response header: what a typical proxied,
// cacheable response carries, dated now so that it is fresh for an hour.
func benchHeader(n int) http.Header {
	return http.Header{
		"Cache-Control":  {"public, max-age=3600"},
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Content-Length": {strconv.Itoa(n)},
		"Etag":           {`"bench-` + strconv.Itoa(n) + `"`},
		"Last-Modified":  {"Mon, 02 Jan 2006 15:04:05 GMT"},
		"Date":           {time.Now().UTC().Format(http.TimeFormat)},
		"Server":         {"Caddy"},
	}
}

// benchWriter is a cheap http.ResponseWriter: a header map and a byte
// count. reset clears it between iterations, as a new response would start
// with an empty header.
type benchWriter struct {
	hdr    http.Header
	status int
	n      int64
}

func newBenchWriter() *benchWriter { return &benchWriter{hdr: make(http.Header, 16)} }

func (w *benchWriter) Header() http.Header { return w.hdr }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += int64(len(p))
	return len(p), nil
}

func (w *benchWriter) reset() {
	clear(w.hdr)
	w.status, w.n = 0, 0
}

// benchHandler provisions a handler from a JSON config on a memory store of
// its own.
func benchHandler(b *testing.B, config string) *Handler {
	b.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(config), h); err != nil {
		b.Fatalf("config: %v", err)
	}
	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"memory","name":%q,"max_size":1073741824}`, "bench:"+b.Name()))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatalf("provision: %v", err)
	}
	return h
}

// benchRequest is a GET prepared once, with a Replacer in its context as
// Caddy's server puts one there.
func benchRequest(target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("User-Agent", "bench/1.0")
	r.Header.Set("Accept", "*/*")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	return r.WithContext(ctx)
}

// benchOrigin answers with hdr and body and counts its calls.
func benchOrigin(hdr http.Header, body []byte, calls *atomic.Int64) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		h := w.Header()
		for k, v := range hdr {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(body)
		return err
	})
}

// benchWarm sends r through h until the response is stored, then checks that
// the next one is a hit with the whole body.
func benchWarm(b *testing.B, h *Handler, r *http.Request, next caddyhttp.Handler, size int) {
	b.Helper()
	w := newBenchWriter()
	if err := h.ServeHTTP(w, r, next); err != nil {
		b.Fatalf("warming: %v", err)
	}
	if cs := w.hdr.Get("Cache-Status"); !strings.Contains(cs, "stored") {
		b.Fatalf("warming: Cache-Status %q, want stored", cs)
	}
	w.reset()
	if err := h.ServeHTTP(w, r, next); err != nil {
		b.Fatalf("first hit: %v", err)
	}
	if cs := w.hdr.Get("Cache-Status"); !strings.Contains(cs, "; hit") {
		b.Fatalf("first hit: Cache-Status %q, want a hit", cs)
	}
	if w.n != int64(size) || w.status != http.StatusOK {
		b.Fatalf("first hit: status %d, %d body bytes, want 200 and %d", w.status, w.n, size)
	}
}

// benchRunHits serves r from the cache b.N times and checks the origin was not
// asked again.
func benchRunHits(b *testing.B, h *Handler, r *http.Request, next caddyhttp.Handler, calls *atomic.Int64, size int) {
	b.Helper()
	before := calls.Load()
	w := newBenchWriter()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := calls.Load() - before; n != 0 {
		b.Fatalf("origin called %d times during the hit loop, want 0", n)
	}
	if w.n != int64(size) {
		b.Fatalf("last hit wrote %d body bytes, want %d", w.n, size)
	}
}

// BenchmarkHit measures a fresh hit from the memory store.
func BenchmarkHit(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := bytes.Repeat([]byte("a"), sz.n)
			var calls atomic.Int64
			next := benchOrigin(benchHeader(sz.n), body, &calls)
			h := benchHandler(b, `{}`)
			r := benchRequest("http://example.com/bench/" + sz.name)
			benchWarm(b, h, r, next, sz.n)
			benchRunHits(b, h, r, next, &calls, sz.n)
		})
	}
}

// benchSQLite is the JSON config of a SQLite store on a file of its own in
// a temporary directory, with the memory hot tier at its default size, or
// off when hot is false.
func benchSQLite(b *testing.B, hot bool) string {
	b.Helper()
	st, err := json.Marshal(map[string]string{"backend": "sqlite", "path": filepath.Join(b.TempDir(), "cache.db")})
	if err != nil {
		b.Fatal(err)
	}
	if hot {
		return `{"storage":` + string(st) + `}`
	}
	return `{"storage":` + string(st) + `,"memory":-1}`
}

// benchCheckTier fails unless h has the hot tier exactly when hot is true,
// and a hot tier holds the warmed entries.
func benchCheckTier(b *testing.B, h *Handler, hot bool) {
	b.Helper()
	if !hot {
		if h.hot != nil {
			b.Fatal("memory -1: the handler has a hot tier")
		}
		return
	}
	if h.hot == nil {
		b.Fatal("default config: the handler has no hot tier")
	}
	st, err := h.hot.Stats(context.Background())
	if err != nil || st.Entries == 0 {
		b.Fatalf("hot tier after warming: %+v, %v; want entries", st, err)
	}
}

// benchHitSQLite is BenchmarkHit on SQLite, with or without the hot tier.
func benchHitSQLite(b *testing.B, hot bool) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := bytes.Repeat([]byte("a"), sz.n)
			var calls atomic.Int64
			next := benchOrigin(benchHeader(sz.n), body, &calls)
			h := benchHandler(b, benchSQLite(b, hot))
			r := benchRequest("http://example.com/bench/" + sz.name)
			benchWarm(b, h, r, next, sz.n)
			benchCheckTier(b, h, hot)
			benchRunHits(b, h, r, next, &calls, sz.n)
		})
	}
}

// BenchmarkHitHotTier measures a fresh hit with the default storage layout:
// SQLite on a file, behind the default memory hot tier, which answers.
func BenchmarkHitHotTier(b *testing.B) { benchHitSQLite(b, true) }

// BenchmarkHitSQLite measures a fresh hit read from SQLite itself: the hot
// tier is off (memory -1), so every hit reads and decodes a row.
func BenchmarkHitSQLite(b *testing.B) { benchHitSQLite(b, false) }

// BenchmarkHitParallel is BenchmarkHit/1KB from GOMAXPROCS goroutines at
// once, to show contention in the store or the handler.
func BenchmarkHitParallel(b *testing.B) {
	const size = 1 << 10
	body := bytes.Repeat([]byte("a"), size)
	var calls atomic.Int64
	next := benchOrigin(benchHeader(size), body, &calls)
	h := benchHandler(b, `{}`)
	benchWarm(b, h, benchRequest("http://example.com/bench/par"), next, size)
	before := calls.Load()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest("http://example.com/bench/par")
		w := newBenchWriter()
		for pb.Next() {
			w.reset()
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if n := calls.Load() - before; n != 0 {
		b.Fatalf("origin called %d times during the hit loop, want 0", n)
	}
}

// BenchmarkHitVary measures a hit on a response with Vary: Accept-Encoding:
// the Vary index lookup, the variant key and the variant lookup.
func BenchmarkHitVary(b *testing.B) {
	const size = 1 << 10
	body := bytes.Repeat([]byte("a"), size)
	hdr := benchHeader(size)
	hdr["Vary"] = []string{"Accept-Encoding"}
	var calls atomic.Int64
	next := benchOrigin(hdr, body, &calls)
	h := benchHandler(b, `{}`)
	r := benchRequest("http://example.com/bench/vary", "Accept-Encoding", "gzip, deflate, br")
	benchWarm(b, h, r, next, size)
	benchRunHits(b, h, r, next, &calls, size)
}

// BenchmarkMissStore measures a miss that is forwarded and stored: a new
// URL every iteration, 1 KB body.
func BenchmarkMissStore(b *testing.B) {
	benchMissLoop(b, benchHandler(b, `{}`))
}

// benchMissLoop requests a new URL (1 KB body) every iteration and checks
// that each went to the origin and the last was stored. It returns the
// handler's origin, the last request and its writer.
func benchMissLoop(b *testing.B, h *Handler) (caddyhttp.Handler, *http.Request, *benchWriter) {
	const size = 1 << 10
	body := bytes.Repeat([]byte("a"), size)
	var calls atomic.Int64
	next := benchOrigin(benchHeader(size), body, &calls)
	r := benchRequest("http://example.com/miss/0")
	w := newBenchWriter()
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r.URL.Path = "/miss/" + strconv.Itoa(i) // one small allocation of the benchmark itself
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := calls.Load(); got != int64(i) {
		b.Fatalf("origin called %d times for %d distinct URLs", got, i)
	}
	if cs := w.hdr.Get("Cache-Status"); !strings.Contains(cs, "stored") {
		b.Fatalf("last miss: Cache-Status %q, want stored", cs)
	}
	return next, r, w
}

// BenchmarkMissStoreSQLite is BenchmarkMissStore on SQLite: with the default
// hot tier (the entry is written to SQLite, then to the hot tier) and with
// the hot tier off (memory -1). The last URL must then be a hit.
func BenchmarkMissStoreSQLite(b *testing.B) {
	for _, tc := range []struct {
		name string
		hot  bool
	}{{"hot_tier", true}, {"memory_off", false}} {
		b.Run(tc.name, func(b *testing.B) {
			const size = 1 << 10
			h := benchHandler(b, benchSQLite(b, tc.hot))
			next, r, w := benchMissLoop(b, h)
			benchCheckTier(b, h, tc.hot)
			w.reset()
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Fatal(err)
			}
			if cs := w.hdr.Get("Cache-Status"); !strings.Contains(cs, "; hit") || w.n != size {
				b.Fatalf("after the loop: Cache-Status %q, %d body bytes; want a hit of %d", cs, w.n, size)
			}
		})
	}
}

// BenchmarkBaseline writes the hit's header fields and body with no cache:
// the floor any handler pays on this writer.
func BenchmarkBaseline(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := bytes.Repeat([]byte("a"), sz.n)
			hdr := benchHeader(sz.n)
			var calls atomic.Int64
			next := benchOrigin(hdr, body, &calls)
			r := benchRequest("http://example.com/bench/" + sz.name)
			w := newBenchWriter()
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				if err := next.ServeHTTP(w, r); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if w.n != int64(sz.n) || calls.Load() == 0 {
				b.Fatalf("wrote %d body bytes, want %d", w.n, sz.n)
			}
		})
	}
}

// BenchmarkRespond runs Caddy's own respond handler (StaticResponse) with
// the same header fields and body: what the load benchmark's baseline site
// does per request, minus the network.
func BenchmarkRespond(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			hdr := benchHeader(sz.n)
			delete(hdr, "Content-Length") // respond does not set it
			s := caddyhttp.StaticResponse{Body: strings.Repeat("a", sz.n), Headers: hdr}
			r := benchRequest("http://example.com/bench/" + sz.name)
			w := newBenchWriter()
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				if err := s.ServeHTTP(w, r, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if w.n != int64(sz.n) {
				b.Fatalf("wrote %d body bytes, want %d", w.n, sz.n)
			}
		})
	}
}
