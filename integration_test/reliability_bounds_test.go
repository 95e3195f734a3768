package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// One URL with thousands of Vary variants, requested concurrently, keeps at
// most max_variants (default 64) of them and cannot push the rest of the
// cache out.
func TestReliabilityVaryFlood(t *testing.T) {
	const (
		others    = 100
		flooders  = 8
		perFlood  = 250 // variants per flooder: 2000 in all
		bodyBytes = 1024
		maxVar    = 64 // the default max_variants
	)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		tag := r.URL.Path
		if r.URL.Path == "/v" {
			w.Header().Set("Vary", "X-Variant")
			tag += "#" + r.Header.Get("X-Variant")
		}
		io.WriteString(w, sumBody(tag+" "+strings.Repeat("x", bodyBytes)))
	})
	name := t.Name()
	in := startCaddyfile(t, loopbackSite("", fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t\tmax_size 512KiB\n\t\t}\n\t}\n\treverse_proxy %s", name, o.addr())))
	mem := memoryHandle(t, name)

	for i := 0; i < others; i++ {
		wantCacheStatus(t, in.get(fmt.Sprintf("/other/%d", i)), "stored")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: flooders}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for f := 0; f < flooders; f++ {
		wg.Add(1)
		go func(f int) {
			defer wg.Done()
			for k := 0; k < perFlood; k++ {
				req, _ := http.NewRequest(http.MethodGet, in.site+"/v", nil)
				req.Header.Set("X-Variant", fmt.Sprintf("%d-%d", f, k))
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), fmt.Sprintf("/v#%d-%d ", f, k)) {
					failed.Add(1)
				}
			}
		}(f)
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d flood requests failed or got another variant's body", n)
	}

	prefix := in.site + "/v\x00vary:"
	variants := 0
	for k := range storedKeys(t, mem) {
		if strings.HasPrefix(unscope(k), prefix) {
			variants++
		}
	}
	idx, err := lookupURL(t, mem, in.site+"/v")
	if err != nil || idx.Kind != storage.KindVary {
		t.Fatalf("no Vary index for /v: %v", err)
	}
	st, _ := mem.Stats(context.Background())
	t.Logf("vary flood: %d variants requested by %d clients; %d variant entries kept, index lists %d; store: %d entries, %d bytes, %d evictions",
		flooders*perFlood, flooders, variants, len(idx.Variants), st.Entries, st.Bytes, st.Evictions)
	if variants > maxVar {
		t.Errorf("%d variants of one URL are stored, want at most max_variants %d", variants, maxVar)
	}
	if len(idx.Variants) > maxVar {
		t.Errorf("the Vary index lists %d variants, want at most %d", len(idx.Variants), maxVar)
	}
	if st.Evictions > 0 {
		t.Errorf("the flood of one URL evicted %d entries", st.Evictions)
	}
	misses := 0
	for i := 0; i < others; i++ {
		r := in.get(fmt.Sprintf("/other/%d", i))
		if !strings.Contains(r.header.Get("Cache-Status"), "hit") {
			misses++
		}
	}
	if misses > 0 {
		t.Errorf("%d of %d other URLs were pushed out of the cache by one URL's variants", misses, others)
	}
}

// Keys are bounded: a request whose key would exceed storage.MaxKeyLen
// bypasses the cache, and no key passed to the store (variant keys
// included) is longer. Large headers are bounded by the server and are
// accounted in the entry size.
func TestReliabilityKeyAndHeaderBounds(t *testing.T) {
	const bigHeader = 256 << 10
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		if strings.HasPrefix(r.URL.Path, "/kl/vary") {
			w.Header().Set("Vary", "Accept-Language")
		}
		if r.URL.Path == "/bighdr" {
			w.Header().Set("X-Big", strings.Repeat("h", bigHeader))
		}
		fmt.Fprintf(w, "n=%d", n)
	})
	name := strings.ReplaceAll(t.Name(), "/", "_")
	in := startCaddyfile(t, func(admin string, port int) string {
		return globalOptions(admin, "") + fmt.Sprintf(`http://127.0.0.1:%d {
	handle /kl/* {
		cache {
			storage faultinject {
				name %s
			}
			key {
				headers X-Tenant
			}
		}
		reverse_proxy %s
	}
	handle {
		cache {
			storage memory {
				name %s
			}
		}
		reverse_proxy %s
	}
}
`, port, name, o.addr(), name, o.addr())
	})
	mem := memoryHandle(t, name)
	base := keyScopeLen + len(in.site) // the key is the scope and the URL: c2:…:http://127.0.0.1:port/path

	// a path just too long for a key
	long := "/kl/" + strings.Repeat("a", storage.MaxKeyLen-base-4+1)
	for i := 0; i < 2; i++ {
		wantCacheStatus(t, in.get(long), `detail="key-too-long"`)
	}
	// key headers count too
	for i := 0; i < 2; i++ {
		wantCacheStatus(t, in.get("/kl/tenant", "X-Tenant", strings.Repeat("t", storage.MaxKeyLen)), `detail="key-too-long"`)
	}
	// A primary key just under the limit whose response varies: the
	// variant keys it makes must stay within the limit too.
	for _, extra := range []int{0, 1, 20, 40, 60} {
		p := "/kl/vary" + strings.Repeat("b", storage.MaxKeyLen-base-len("/kl/vary")-len("\n"+"x-tenant:")-extra)
		r := in.get(p, "Accept-Language", "de")
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
	}
	fc := faultStats(name)
	t.Logf("keys: longest key passed to the store %d bytes (limit %d), %d storage calls", fc.maxKeyLen, storage.MaxKeyLen, fc.calls)
	if fc.calls == 0 {
		t.Fatal("the store was never called")
	}
	if fc.maxKeyLen > storage.MaxKeyLen {
		t.Errorf("a key of %d bytes was passed to the store, more than storage.MaxKeyLen %d", fc.maxKeyLen, storage.MaxKeyLen)
	}

	// Request headers beyond the server's limit (1 MiB) are refused
	// before any handler runs.
	r := in.get("/big-request", "X-Big", strings.Repeat("r", 2<<20))
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 2 MiB request header got status %d, want 431", r.status)
	}
	// A response with 256 KiB of headers is stored whole, and its
	// headers count in the entry's size (and so in the store's bound).
	first := in.get("/bighdr")
	second := in.get("/bighdr")
	wantCacheStatus(t, second, "hit")
	if second.body != first.body || len(second.header.Get("X-Big")) != bigHeader {
		t.Fatalf("a hit lost the large header or body: %d header bytes, body %q", len(second.header.Get("X-Big")), second.body)
	}
	e, err := lookupURL(t, mem, in.site+"/bighdr")
	if err != nil {
		t.Fatal(err)
	}
	if e.Size() < bigHeader {
		t.Errorf("entry size %d does not count its %d header bytes", e.Size(), bigHeader)
	}
}
