package cache

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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
