package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Partial content through a real Caddy on the default storage (SQLite in
// Caddy's data directory), with the default in-memory hot tier in front of
// it and without it (every hit then decodes the stored parts): a 206 is
// stored, sub-ranges (suffix and open ones too) come from it, a range
// outside it goes to the origin with the client's Range and is combined,
// and once the parts cover the representation a request without Range is
// a hit on the complete 200 (RFC 9111 §3.3, §3.4).
func TestPartialContentDefaultStorage(t *testing.T) {
	for _, tc := range []struct{ name, options string }{
		{"default configuration", "\n\t"},
		{"hot tier off", "\n\t\tmemory off\n\t"},
	} {
		t.Run(tc.name, func(t *testing.T) { partialContent(t, tc.options) })
	}
}

func partialContent(t *testing.T, options string) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 100) // 3600 bytes
	var (
		mu     sync.Mutex
		ranges []string
	)
	lastRange := func() string {
		mu.Lock()
		defer mu.Unlock()
		return ranges[len(ranges)-1]
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"rep-1"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	in := startCaddy(t, fmt.Sprintf("\tcache {%s}\n\treverse_proxy %s", options, o.addr()))

	part := func(r response, first, last int) {
		t.Helper()
		want := fmt.Sprintf("bytes %d-%d/%d", first, last, len(body))
		if r.status != http.StatusPartialContent || r.header.Get("Content-Range") != want || r.body != string(body[first:last+1]) {
			t.Fatalf("got %d %q (%d bytes), want 206 %q (Cache-Status %q)", r.status, r.header.Get("Content-Range"),
				len(r.body), want, r.header.Get("Cache-Status"))
		}
	}
	r := in.get("/video", "Range", "bytes=0-999")
	part(r, 0, 999)
	wantCacheStatus(t, r, "stored")
	r = in.get("/video", "Range", "bytes=100-199")
	part(r, 100, 199)
	wantCacheStatus(t, r, "hit")
	o.wantHits(t, 1)

	r = in.get("/video", "Range", "bytes=-600") // 3000-3599
	part(r, 3000, 3599)
	wantCacheStatus(t, r, "fwd=partial")
	if got := lastRange(); got != "bytes=-600" {
		t.Fatalf("origin saw Range %q, want the client's", got)
	}
	part(in.get("/video", "Range", "bytes=3500-"), 3500, 3599)
	part(in.get("/video", "Range", "bytes=-10"), 3590, 3599)
	o.wantHits(t, 2)

	// a request without Range while only parts are stored: forwarded, and
	// its 200 replaces them
	r = in.get("/video")
	if r.status != http.StatusOK || r.body != string(body) {
		t.Fatalf("full request: %d, %d bytes", r.status, len(r.body))
	}
	wantCacheStatus(t, r, "fwd=partial")
	o.wantHits(t, 3)
	wantCacheStatus(t, in.get("/video"), "hit")
	part(in.get("/video", "Range", "bytes=1000-1999"), 1000, 1999)
	o.wantHits(t, 3)

	// completion: parts of another URL combined into a complete 200
	part(in.get("/clip", "Range", "bytes=0-1799"), 0, 1799)
	r = in.get("/clip", "Range", "bytes=1800-")
	part(r, 1800, 3599)
	wantCacheStatus(t, r, "fwd=partial")
	r = in.get("/clip")
	if r.status != http.StatusOK || r.body != string(body) || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("completed parts: %d, %d bytes, Cache-Status %q", r.status, len(r.body), r.header.Get("Cache-Status"))
	}
	o.wantHits(t, 5)
	if _, err := os.Stat(filepath.Join(data, "caddy", "cache", "cache.db")); err != nil {
		t.Fatalf("the default SQLite store was not used: %v", err)
	}
}
