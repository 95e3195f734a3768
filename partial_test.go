package cache

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rangeOrigin serves a representation with http.ServeContent (ranges,
// multipart, If-Range, conditionals) and records the Range of each request.
type rangeOrigin struct {
	mu     sync.Mutex
	body   []byte
	etag   string
	cc     string
	ranges []string // Range of each request, "" when none
}

func newRangeOrigin(size int) *rangeOrigin {
	b := make([]byte, size)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36]
	}
	return &rangeOrigin{body: b, etag: `"v1"`, cc: "max-age=60"}
}

func (o *rangeOrigin) set(etag string, body []byte) {
	o.mu.Lock()
	o.etag, o.body = etag, body
	o.mu.Unlock()
}

func (o *rangeOrigin) serve(w http.ResponseWriter, r *http.Request, _ int64) error {
	o.mu.Lock()
	o.ranges = append(o.ranges, r.Header.Get("Range"))
	body, etag, cc := o.body, o.etag, o.cc
	o.mu.Unlock()
	w.Header().Set("Cache-Control", cc)
	w.Header().Set("Content-Type", "text/plain")
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

func (o *rangeOrigin) lastRange() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ranges) == 0 {
		return "(none)"
	}
	return o.ranges[len(o.ranges)-1]
}

// wantPart checks a 206 answer: its Content-Range and body.
func wantPart(t *testing.T, r result, body []byte, first, last int) {
	t.Helper()
	if r.status != http.StatusPartialContent {
		t.Fatalf("status %d (Cache-Status %q), want 206", r.status, r.header.Get("Cache-Status"))
	}
	want := fmt.Sprintf("bytes %d-%d/%d", first, last, len(body))
	if cr := r.header.Get("Content-Range"); cr != want {
		t.Fatalf("Content-Range %q, want %q", cr, want)
	}
	if r.body != string(body[first:last+1]) {
		t.Fatalf("body %q, want %q", r.body, body[first:last+1])
	}
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(last-first+1) {
		t.Fatalf("Content-Length %q, want %d", cl, last-first+1)
	}
}

// RFC 9111 §3.3: a 206 is stored and answers a later request for a range
// within it, including suffix and open ranges.
func TestPartialStoredAndReused(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	r := env.get("/f", "Range", "bytes=0-49")
	wantPart(t, r, o.body, 0, 49)
	wantStatus(t, r, "fwd=uri-miss; stored")

	r = env.get("/f", "Range", "bytes=10-19")
	wantPart(t, r, o.body, 10, 19)
	wantStatus(t, r, "hit")
	if r.header.Get("Etag") != `"v1"` || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("stored header fields missing: %v", r.header)
	}
	r = env.get("/f", "Range", "bytes=40-")
	wantStatus(t, r, "fwd=partial") // 40-99: not all stored
	wantPart(t, r, o.body, 40, 99)
	env.wantHits(2)
	// now 0-99 is stored: the combined parts are a complete 200
	r = env.get("/f")
	if r.status != http.StatusOK || r.body != string(o.body) || r.header.Get("Content-Length") != "100" {
		t.Fatalf("complete: %d %q (Content-Length %q)", r.status, r.body, r.header.Get("Content-Length"))
	}
	wantStatus(t, r, "hit")
	if r.header.Get("Content-Range") != "" {
		t.Fatalf("a 200 with Content-Range %q", r.header.Get("Content-Range"))
	}
	wantPart(t, env.get("/f", "Range", "bytes=-5"), o.body, 95, 99)
	env.wantHits(2)
}

// RFC 9110 §14.1.2: suffix and open ranges are answered from the stored
// parts when they lie within one; parts with the same validator are
// combined (RFC 9111 §3.4) until they make a complete 200.
func TestPartialSuffixAndCompletion(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	wantPart(t, env.get("/f", "Range", "bytes=-10"), o.body, 90, 99) // stored: 90-99
	r := env.get("/f", "Range", "bytes=-5")
	wantPart(t, r, o.body, 95, 99)
	wantStatus(t, r, "hit")
	wantPart(t, env.get("/f", "Range", "bytes=92-"), o.body, 92, 99)
	r = env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "fwd=partial")
	wantPart(t, r, o.body, 0, 9)
	if got := o.lastRange(); got != "bytes=0-9" {
		t.Fatalf("origin saw Range %q, want the client's", got)
	}
	env.wantHits(2)
	// two parts stored now: 0-9 and 90-99
	wantPart(t, env.get("/f", "Range", "bytes=5-9"), o.body, 5, 9)
	wantPart(t, env.get("/f", "Range", "bytes=90-95"), o.body, 90, 95)
	r = env.get("/f", "Range", "bytes=5-95") // across the gap
	wantStatus(t, r, "fwd=partial")
	wantPart(t, r, o.body, 5, 95)
	env.wantHits(3)
	// 0-99 complete
	r = env.get("/f")
	if r.status != http.StatusOK || r.body != string(o.body) {
		t.Fatalf("complete: %d %q", r.status, r.body)
	}
	wantStatus(t, r, "hit")
	// 416 from the stored representation
	r = env.get("/f", "Range", "bytes=100-")
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != "bytes */100" {
		t.Fatalf("bytes=100-: %d %q", r.status, r.header.Get("Content-Range"))
	}
	env.wantHits(3)
}

// RFC 9111 §3.3: stored parts never answer a request for the whole
// representation; its 200 replaces them.
func TestPartialNoRangeIsAMiss(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-9")
	r := env.get("/f")
	if r.status != http.StatusOK || r.body != string(o.body) {
		t.Fatalf("full request: %d %q", r.status, r.body)
	}
	wantStatus(t, r, "fwd=partial")
	wantStatus(t, r, "stored")
	if got := o.lastRange(); got != "" {
		t.Fatalf("origin saw Range %q on a full request", got)
	}
	wantPart(t, env.get("/f", "Range", "bytes=50-59"), o.body, 50, 59)
	wantStatus(t, env.get("/f"), "hit")
	env.wantHits(2)
}

// RFC 9111 §3.4: a part whose validator differs from the stored parts'
// replaces them.
func TestPartialValidatorChangeReplaces(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-49")
	v2 := bytes.ToUpper(o.body)
	o.set(`"v2"`, v2)
	r := env.get("/f", "Range", "bytes=50-99")
	wantPart(t, r, v2, 50, 99)
	wantStatus(t, r, "stored")
	// the v1 part is gone: 0-49 is fetched again, not served from v1
	r = env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "fwd=partial")
	wantPart(t, r, v2, 0, 9)
	r = env.get("/f", "Range", "bytes=60-69")
	wantStatus(t, r, "hit")
	if r.header.Get("Etag") != `"v2"` {
		t.Fatalf("ETag %q, want the newest part's", r.header.Get("Etag"))
	}
	env.wantHits(3)
	// the two v2 parts do not cover 10-49 yet
	wantStatus(t, env.get("/f"), "fwd=partial")
}

// A part larger than max_entry_size is not stored; parts whose sum would
// exceed it are not combined (the newest part replaces them).
func TestPartialMaxEntrySize(t *testing.T) {
	o := newRangeOrigin(4000)
	env := newEnv(t, `{"max_entry_size": 1000}`, o.serve)
	r := env.get("/f", "Range", "bytes=0-1499")
	wantPart(t, r, o.body, 0, 1499)
	if strings.Contains(r.header.Get("Cache-Status"), "stored") {
		t.Fatalf("a part over max_entry_size stored: %q", r.header.Get("Cache-Status"))
	}
	wantStatus(t, env.get("/f", "Range", "bytes=0-9"), "fwd=uri-miss")
	wantStatus(t, env.get("/f", "Range", "bytes=0-9"), "hit")
	wantStatus(t, env.get("/f", "Range", "bytes=2000-2999"), "stored") // 10 + 1000 bytes: replaces
	wantStatus(t, env.get("/f", "Range", "bytes=2500-2509"), "hit")
	wantStatus(t, env.get("/f", "Range", "bytes=0-9"), "fwd=partial")
	env.wantHits(4)
}

// RFC 9111 §3.3: only single-part 206s with a strong validator are stored.
func TestPartialNotStored(t *testing.T) {
	cases := []struct {
		name, etag, rng string
	}{
		{"multipart/byteranges", `"v1"`, "bytes=0-1, 5-6"},
		{"weak ETag", `W/"v1"`, "bytes=0-9"},
		{"no validator", "", "bytes=0-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newRangeOrigin(100)
			o.etag = tc.etag
			env := newEnv(t, "", o.serve)
			r := env.get("/f", "Range", tc.rng)
			if r.status != http.StatusPartialContent || strings.Contains(r.header.Get("Cache-Status"), "stored") {
				t.Fatalf("%d, Cache-Status %q", r.status, r.header.Get("Cache-Status"))
			}
			wantStatus(t, env.get("/f", "Range", "bytes=0-1"), "fwd=uri-miss")
			env.wantHits(2)
		})
	}
	t.Run("unknown complete length", func(t *testing.T) {
		env := newEnv(t, "", func(w http.ResponseWriter, _ *http.Request, _ int64) error {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Range", "bytes 0-3/*")
			w.Header().Set("Content-Length", "4")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write([]byte("abcd"))
			return nil
		})
		wantStatus(t, env.get("/f", "Range", "bytes=0-3"), "fwd=uri-miss")
		wantStatus(t, env.get("/f", "Range", "bytes=0-3"), "fwd=uri-miss")
		env.wantHits(2)
	})
}

// RFC 9110 §13.1.5: If-Range is evaluated against the stored parts'
// validator; when it does not match, the client wants the whole
// representation and the request goes to the origin.
func TestPartialIfRange(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-49")
	r := env.get("/f", "Range", "bytes=0-9", "If-Range", `"v1"`)
	wantStatus(t, r, "hit")
	wantPart(t, r, o.body, 0, 9)
	r = env.get("/f", "Range", "bytes=0-9", "If-Range", `"v0"`)
	wantStatus(t, r, "fwd=partial")
	if r.status != http.StatusOK || r.body != string(o.body) {
		t.Fatalf("If-Range mismatch: %d %q, want the whole representation", r.status, r.body)
	}
	env.wantHits(2)
}

// RFC 9111 §3.4: the combined entry's freshness comes from the newest part.
func TestPartialFreshnessFromNewestPart(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-9")
	env.clock.Advance(50 * time.Second)
	env.get("/f", "Range", "bytes=50-59")
	env.clock.Advance(30 * time.Second) // the first part alone would be 80s old
	r := env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "hit")
	if age := r.header.Get("Age"); age != "30" {
		t.Fatalf("Age %q, want 30 (the newest part's)", age)
	}
	env.wantHits(2)
}

// A stale part is revalidated for the range it answers: the origin gets
// the client's Range with If-None-Match, and a 304 freshens the parts.
func TestPartialRevalidation(t *testing.T) {
	o := newRangeOrigin(100)
	o.cc = "max-age=10"
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-49")
	env.clock.Advance(20 * time.Second)
	r := env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "fwd=stale; fwd-status=304")
	wantPart(t, r, o.body, 0, 9)
	if got := o.lastRange(); got != "bytes=0-9" {
		t.Fatalf("revalidation sent Range %q, want the client's", got)
	}
	r = env.get("/f", "Range", "bytes=20-29")
	wantStatus(t, r, "hit")
	wantPart(t, r, o.body, 20, 29)
	env.wantHits(2)
}

// An entry holds at most maxParts parts: one more replaces the set.
func TestPartialMaxParts(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	for i := 0; i < maxParts; i++ {
		env.get("/f", "Range", fmt.Sprintf("bytes=%d-%d", 2*i, 2*i))
	}
	wantStatus(t, env.get("/f", "Range", "bytes=0-0"), "hit")
	wantStatus(t, env.get("/f", "Range", fmt.Sprintf("bytes=%d-%d", 2*maxParts-2, 2*maxParts-2)), "hit")
	env.wantHits(maxParts)
	env.get("/f", "Range", "bytes=90-90") // one part too many
	wantStatus(t, env.get("/f", "Range", "bytes=90-90"), "hit")
	wantStatus(t, env.get("/f", "Range", "bytes=0-0"), "fwd=partial")
}

// explain describes a partial entry: the ranges stored, and whether the
// request's range is served from them.
func TestPartialExplain(t *testing.T) {
	o := newRangeOrigin(100)
	env := opsEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-9")
	env.get("/f", "Range", "bytes=50-59")
	r := explainOne(t, env, "/f", "Range", "bytes=2-5")
	wantExplain(t, r, "hit", "served from the stored parts (partial: bytes 0-9, 50-59 of 100 stored)")
	if r.Entry == nil || r.Entry.Status != http.StatusPartialContent ||
		strings.Join(r.Entry.Ranges, ",") != "bytes 0-9/100,bytes 50-59/100" {
		t.Fatalf("entry %+v", r.Entry)
	}
	wantExplain(t, explainOne(t, env, "/f", "Range", "bytes=5-55"), "miss", "range not stored")
	wantExplain(t, explainOne(t, env, "/f"), "miss", "no Range: only parts are stored")
	wantExplain(t, explainOne(t, env, "/f", "Range", "bytes=0-1", "If-Range", `"v0"`), "miss", "If-Range does not match")
}

// Stale parts: stale-while-revalidate refreshes them in the background for
// the range they answered; stale-if-error serves the range from them.
func TestPartialStale(t *testing.T) {
	t.Run("stale-while-revalidate", func(t *testing.T) {
		o := newRangeOrigin(100)
		o.cc = "max-age=10, stale-while-revalidate=600"
		var inm sync.Map
		env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
			inm.Store(n, r.Header.Get("If-None-Match"))
			return o.serve(w, r, n)
		})
		env.get("/f", "Range", "bytes=0-49")
		env.clock.Advance(20 * time.Second)
		r := env.get("/f", "Range", "bytes=0-9")
		wantStatus(t, r, "stale-while-revalidate")
		wantPart(t, r, o.body, 0, 9)
		deadline := time.Now().Add(10 * time.Second)
		for env.hits.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		env.wantHits(2)
		if v, _ := inm.Load(int64(2)); v != `"v1"` || o.lastRange() != "bytes=0-9" {
			t.Fatalf("background refresh sent If-None-Match %q, Range %q", v, o.lastRange())
		}
		// the 304 freshened the parts (wait for the write to land)
		for time.Now().Before(deadline) {
			if strings.Contains(env.get("/f", "Range", "bytes=20-29").header.Get("Cache-Status"), "hit;") {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		r = env.get("/f", "Range", "bytes=20-29")
		wantStatus(t, r, "hit;")
		wantPart(t, r, o.body, 20, 29)
	})
	t.Run("stale-if-error", func(t *testing.T) {
		o := newRangeOrigin(100)
		o.cc = "max-age=10, stale-if-error=600"
		env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return nil
			}
			return o.serve(w, r, n)
		})
		env.get("/f", "Range", "bytes=0-49")
		env.clock.Advance(20 * time.Second)
		r := env.get("/f", "Range", "bytes=5-14")
		wantStatus(t, r, "stale-if-error")
		wantPart(t, r, o.body, 5, 14)
	})
}

// RFC 9110 §13.1.2: a client's If-None-Match that matches the stored
// parts' ETag gets a 304 for a range they hold.
func TestPartialClientConditional(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-49")
	r := env.get("/f", "Range", "bytes=0-9", "If-None-Match", `"v1"`)
	if r.status != http.StatusNotModified {
		t.Fatalf("status %d, want 304", r.status)
	}
	wantStatus(t, r, "hit")
	env.wantHits(1)
}

// Stored parts whose Content-Range values do not describe the stored body
// are a miss, never served and never a 500; the next part replaces them.
func TestPartialCorruptIsAMiss(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	env.get("/f", "Range", "bytes=0-49")
	ctx := context.Background()
	key := env.h.cacheKey(reqFor(env, "/f"))
	e, err := env.h.store.Get(ctx, key)
	if err != nil || e.Status != http.StatusPartialContent {
		t.Fatalf("stored: %v %+v", err, e)
	}
	bad := *e
	bad.Header = e.Header.Clone()
	bad.Header["Content-Range"] = []string{"bytes 0-99/100"} // the body holds 50 bytes
	if err := env.h.store.Put(ctx, key, &bad); err != nil {
		t.Fatal(err)
	}
	r := env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "fwd=partial")
	wantPart(t, r, o.body, 0, 9)
	r = env.get("/f", "Range", "bytes=0-9")
	wantStatus(t, r, "hit")
	wantPart(t, r, o.body, 0, 9)
	env.wantHits(2)
}

// Parts of a varying response are stored per variant.
func TestPartialVary(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Vary", "Accept-Language")
		return o.serve(w, r, n)
	})
	wantStatus(t, env.get("/f", "Range", "bytes=0-9", "Accept-Language", "en"), "stored")
	r := env.get("/f", "Range", "bytes=2-5", "Accept-Language", "en")
	wantStatus(t, r, "hit")
	wantPart(t, r, o.body, 2, 5)
	wantStatus(t, env.get("/f", "Range", "bytes=2-5", "Accept-Language", "de"), "fwd=vary-miss")
	wantStatus(t, env.get("/f", "Range", "bytes=10-19", "Accept-Language", "en"), "fwd=partial")
	wantPart(t, env.get("/f", "Range", "bytes=0-19", "Accept-Language", "en"), o.body, 0, 19)
	env.wantHits(3)
}

// Parts fetched at the same time are all kept: each is combined with what
// is stored when it arrives.
func TestPartialConcurrentParts(t *testing.T) {
	o := newRangeOrigin(100)
	env := newEnv(t, "", o.serve)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/f", nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", 10*i, 10*i+9))
			resp, err := env.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	// a client has the whole answer before the handler has stored it:
	// wait for the last write (a request without Range would replace
	// incomplete parts)
	key := env.h.cacheKey(reqFor(env, "/f"))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if e, err := env.h.store.Get(context.Background(), key); err == nil && e.Status == http.StatusOK {
			break
		}
	}
	r := env.get("/f")
	wantStatus(t, r, "hit")
	if r.status != http.StatusOK || r.body != string(o.body) {
		t.Fatalf("after concurrent parts: %d %q", r.status, r.body)
	}
	env.wantHits(10)
}
