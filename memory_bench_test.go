package cache

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkMemoryPerEntry fills a memory store with distinct responses (4
// KB and 16 KB bodies, the origin's usual header) through the handler and
// reports the live heap per stored entry, and its overhead beyond the body,
// as the metrics heap-B/entry and overhead-B/entry; hit-overhead-B/entry is
// the overhead once every entry was hit once (equal: a hit keeps nothing per
// entry, see prepared.go). Run it with -benchtime
// Nx to choose how many entries (e.g. 20000x).
func BenchmarkMemoryPerEntry(b *testing.B) {
	for _, size := range []int{4 << 10, 16 << 10} {
		b.Run(strconv.Itoa(size>>10)+"KB", func(b *testing.B) {
			h := benchHandler(b, `{}`)
			body := bytes.Repeat([]byte("a"), size)
			var calls atomic.Int64
			next := benchOrigin(benchHeader(size), body, &calls)
			r := benchRequest("http://example.com/fill/0")
			w := newBenchWriter()
			before := liveHeap()
			rssBefore := rss()
			n := 0
			for b.Loop() {
				n++
				r.URL.Path = "/fill/" + strconv.Itoa(n)
				w.reset()
				if err := h.ServeHTTP(w, r, next); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := h.stats(r.Context()); st.Entries != int64(n) {
				b.Fatalf("stored %d entries (%s), want %d", st.Entries, st.Error, n)
			}
			if r := rss(); r > 0 && rssBefore > 0 {
				// the collector's headroom shows here (GOGC, GOMEMLIMIT)
				b.ReportMetric(float64(r-rssBefore)/float64(n), "rss-B/entry")
			}
			per := float64(liveHeap()-before) / float64(n)
			b.ReportMetric(per, "heap-B/entry")
			b.ReportMetric(per-float64(size), "overhead-B/entry")
			// a hit must not make entries hold more (prepared.go)
			for i := 1; i <= n; i++ {
				r.URL.Path = "/fill/" + strconv.Itoa(i)
				w.reset()
				if err := h.ServeHTTP(w, r, next); err != nil {
					b.Fatal(err)
				}
			}
			if calls.Load() != int64(n) {
				b.Fatalf("origin called %d times for %d entries and one hit of each", calls.Load(), n)
			}
			hit := float64(liveHeap()-before) / float64(n)
			b.ReportMetric(hit-float64(size), "hit-overhead-B/entry")
			runtime.KeepAlive(h)
		})
	}
}

// rss is the resident set size of the process (Linux), or 0.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
