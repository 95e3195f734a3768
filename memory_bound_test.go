package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// max_size bounds what a memory store holds in the process, not only its
// bodies: filled with ten times max_size of distinct responses through the
// handler, the live heap grows by at most max_size + 10 %. The origin
// allocates every header value afresh, as a proxied response's are.
func TestMemoryStoreBoundsLiveHeap(t *testing.T) {
	for _, tc := range []struct {
		size int
		vary bool // Vary: Accept-Encoding, so a Vary index entry per URL too
	}{{1 << 10, false}, {1 << 10, true}, {16 << 10, false}} {
		size := tc.size
		name := strconv.Itoa(size>>10) + "KB"
		if tc.vary {
			name += "_vary"
		}
		t.Run(name, func(t *testing.T) {
			const maxSize = 4 << 20
			h := new(Handler)
			h.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"memory","name":%q,"max_size":%d}`, t.Name(), maxSize))
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			t.Cleanup(cancel)
			if err := h.Provision(ctx); err != nil {
				t.Fatalf("provision: %v", err)
			}
			date := time.Now().UTC().Format(http.TimeFormat)
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				hdr := w.Header()
				hdr["Cache-Control"] = []string{strings.Clone("public, max-age=3600")}
				hdr["Content-Type"] = []string{strings.Clone("text/html; charset=utf-8")}
				hdr["Content-Length"] = []string{strconv.Itoa(size)}
				hdr["Etag"] = []string{`"` + r.URL.Path + `"`}
				hdr["Last-Modified"] = []string{strings.Clone("Mon, 02 Jan 2006 15:04:05 GMT")}
				hdr["Date"] = []string{strings.Clone(date)}
				hdr["Server"] = []string{strings.Clone("origin")}
				if tc.vary {
					hdr["Vary"] = []string{strings.Clone("Accept-Encoding")}
				}
				w.WriteHeader(http.StatusOK)
				_, err := w.Write(make([]byte, size))
				return err
			})
			before := liveHeap()
			n := 10 * maxSize / size
			for i := range n {
				r := httptest.NewRequest(http.MethodGet, "http://example.com/some/path/of/a/page/"+strconv.Itoa(i), nil)
				r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, r, next); err != nil {
					t.Fatal(err)
				}
				if i == 0 && !strings.Contains(w.Header().Get("Cache-Status"), "stored") {
					t.Fatalf("Cache-Status %q, want stored", w.Header().Get("Cache-Status"))
				}
			}
			st := h.stats(context.Background()) // applies pending evictions
			if st.Evictions == 0 || st.Bytes > maxSize {
				t.Fatalf("after %d responses of %d bytes: %+v, want evictions and at most %d bytes", n, size, st, maxSize)
			}
			grown := int64(liveHeap()) - int64(before)
			t.Logf("%d entries held, %d bytes counted, live heap grew by %d bytes (%.0f per entry)",
				st.Entries, st.Bytes, grown, float64(grown)/float64(st.Entries))
			if limit := int64(maxSize * 11 / 10); grown > limit {
				t.Fatalf("live heap grew by %d bytes holding %d entries, want at most %d (max_size + 10 %%)", grown, st.Entries, limit)
			}
			runtime.KeepAlive(h)
		})
	}
}
