package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// privacyPaths maps each path of the privacy origin to the request
// credential its body is personalised from ("auth", "cookie", "either" or
// "" for a public body) and the Cache-Control it is sent with. The origin
// is a correct one: a body that depends on a credential is marked private,
// no-store, Set-Cookie, or Varies on that credential's header.
var privacyPaths = []struct {
	path, source, cc, vary string
	setCookie, etag, flaky bool
	// anonOK: the anonymous body may be reused for a client with
	// credentials (the origin personalises without Vary, which only
	// protects storing, RFC 9111 §3.5); it is nobody's private data.
	anonOK bool
}{
	{path: "/private", source: "either", cc: "private, max-age=60"},
	{path: "/set-cookie", source: "either", cc: "max-age=60", setCookie: true},
	{path: "/no-store", source: "either", cc: "no-store"},
	// Authorization without "public": not storable for clients that send it
	// (RFC 9111 §3.5); the others get the shared anonymous body.
	{path: "/auth-default", source: "auth", cc: "max-age=60", anonOK: true},
	// Stored per Cookie value; revalidated every second with the client's
	// own ETag; about one origin response in three fails (stale-if-error).
	{path: "/vary-cookie", source: "cookie", cc: "max-age=1, stale-if-error=60", vary: "Cookie", etag: true, flaky: true},
	// Stored per Authorization value; stale-while-revalidate.
	{path: "/vary-auth", source: "auth", cc: "public, max-age=1, stale-while-revalidate=30", vary: "Authorization"},
	// One shared body, revalidated and served stale.
	{path: "/public", source: "", cc: "public, max-age=1, stale-while-revalidate=30", etag: true},
	{path: "/public-reval", source: "", cc: "public, max-age=1", etag: true},
}

// identity is who a body made for r is for, when personalised from source.
func identity(r *http.Request, source string) string {
	auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var cookie string
	if c, err := r.Cookie("id"); err == nil {
		cookie = c.Value
	}
	switch source {
	case "":
		return "public"
	case "auth":
		cookie = ""
	case "cookie":
		auth = ""
	}
	switch {
	case auth != "":
		return auth
	case cookie != "":
		return cookie
	}
	return "anon"
}

// Many clients, each with its own Authorization or Cookie, hit personalised
// and public URLs concurrently through Caddy with the cache (coalescing on)
// across misses, hits, revalidations, stale-while-revalidate and
// stale-if-error serves. Every body names the client it was made for; no
// client may ever receive a body (or a Set-Cookie) made for another one.
func TestReliabilityPrivacyUnderConcurrency(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		privacyLoad(t, fmt.Sprintf("storage memory {\n\t\t\tname %s\n\t\t}", t.Name()))
	})
	// SQLite without the hot tier: every entry goes through the codec.
	t.Run("sqlite", func(t *testing.T) {
		privacyLoad(t, fmt.Sprintf("storage sqlite %s\n\t\tmemory off", t.TempDir()+"/cache.db"))
	})
}

// privacyLoad runs the privacy load against Caddy with the cache using the
// given storage lines.
func privacyLoad(t *testing.T, storageLines string) {
	const (
		clients     = 32
		maxRequests = 400 // per client
		runFor      = 3500 * time.Millisecond
	)
	var foreignValidator, originReqs atomic.Int64
	byPath := map[string]int{}
	for i, p := range privacyPaths {
		byPath[p.path] = i
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		originReqs.Add(1)
		i, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		p := privacyPaths[i]
		id := identity(r, p.source)
		time.Sleep(time.Millisecond) // let concurrent misses overlap (coalescing)
		h := w.Header()
		h.Set("Cache-Control", p.cc)
		if p.vary != "" {
			h.Set("Vary", p.vary)
		}
		if p.setCookie {
			h.Set("Set-Cookie", "session="+id)
		}
		if p.etag {
			etag := `"e-` + id + `"`
			h.Set("ETag", etag)
			if inm := r.Header.Get("If-None-Match"); inm != "" {
				if inm != etag {
					// the cache revalidated someone else's response on
					// behalf of this client
					foreignValidator.Add(1)
				} else if !(p.flaky && n%3 == 0) {
					w.WriteHeader(http.StatusNotModified)
					return
				}
			}
		}
		if p.flaky && n%3 == 0 {
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "for=%s path=%s n=%d\n", id, r.URL.Path, n)
	})
	in := startCaddyfile(t, loopbackSite("", fmt.Sprintf("\tcache {\n\t\t%s\n\t}\n\treverse_proxy %s", storageLines, o.addr())))

	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	type tally struct {
		requests, leaks, errors, hit, revalidated, swr, sie, stored, bypassed int64
		statuses                                                              map[int]int64
		firstLeak                                                             string
	}
	results := make([]tally, clients)
	deadline := time.Now().Add(runFor)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			res := &results[c]
			res.statuses = map[int]int64{}
			rng := rand.New(rand.NewPCG(uint64(c), 9))
			me := fmt.Sprintf("client%02d", c)
			for k := 0; k < maxRequests && time.Now().Before(deadline); k++ {
				p := privacyPaths[rng.IntN(len(privacyPaths))]
				req, _ := http.NewRequest(http.MethodGet, in.site+p.path, nil)
				if c%2 == 0 {
					req.Header.Set("Authorization", "Bearer "+me)
				} else {
					req.AddCookie(&http.Cookie{Name: "id", Value: me})
				}
				want := identity(req, p.source)
				res.requests++
				resp, err := hc.Do(req)
				if err != nil {
					res.errors++
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					res.errors++
					continue
				}
				res.statuses[resp.StatusCode]++
				got := ""
				if f := strings.Fields(string(body)); len(f) > 0 {
					got = strings.TrimPrefix(f[0], "for=")
				}
				if got != want && !(p.anonOK && got == "anon") {
					res.leaks++
					if res.firstLeak == "" {
						res.firstLeak = fmt.Sprintf("%s (%s) GET %s got %q, want a body for %q; Cache-Status %q",
							me, req.Header, p.path, body, want, resp.Header.Get("Cache-Status"))
					}
				}
				for _, sc := range resp.Header.Values("Set-Cookie") {
					if sc != "session="+want {
						res.leaks++
						if res.firstLeak == "" {
							res.firstLeak = fmt.Sprintf("%s GET %s got Set-Cookie %q", me, p.path, sc)
						}
					}
				}
				cs := resp.Header.Get("Cache-Status")
				switch {
				case strings.Contains(cs, "stale-while-revalidate"):
					res.swr++
				case strings.Contains(cs, "stale-if-error"):
					res.sie++
				case strings.Contains(cs, "fwd-status=304"):
					res.revalidated++
				case strings.Contains(cs, "; hit"):
					res.hit++
				}
				if strings.Contains(cs, "; stored") {
					res.stored++
				}
			}
		}(c)
	}
	wg.Wait()

	var sum tally
	sum.statuses = map[int]int64{}
	for _, r := range results {
		sum.requests += r.requests
		sum.leaks += r.leaks
		sum.errors += r.errors
		sum.hit += r.hit
		sum.revalidated += r.revalidated
		sum.swr += r.swr
		sum.sie += r.sie
		sum.stored += r.stored
		for s, n := range r.statuses {
			sum.statuses[s] += n
		}
		if r.firstLeak != "" && sum.firstLeak == "" {
			sum.firstLeak = r.firstLeak
		}
	}
	t.Logf("privacy: %d requests from %d clients, %d to the origin; hits %d, revalidated %d, stale-while-revalidate %d, stale-if-error %d, stored %d; statuses %v; leaks %d, foreign validators %d, transport errors %d",
		sum.requests, clients, originReqs.Load(), sum.hit, sum.revalidated, sum.swr, sum.sie, sum.stored, sum.statuses,
		sum.leaks, foreignValidator.Load(), sum.errors)
	if sum.leaks > 0 {
		t.Errorf("%d responses were made for another client; first: %s", sum.leaks, sum.firstLeak)
	}
	if n := foreignValidator.Load(); n > 0 {
		t.Errorf("the origin got %d conditional requests carrying another client's validator", n)
	}
	if sum.errors > 0 {
		t.Errorf("%d requests failed at the transport", sum.errors)
	}
	for s := range sum.statuses {
		if s != http.StatusOK && s != http.StatusServiceUnavailable {
			t.Errorf("unexpected status %d (%d times)", s, sum.statuses[s])
		}
	}
	// The run must have exercised every path through the cache.
	for name, n := range map[string]int64{
		"hits": sum.hit, "revalidations": sum.revalidated,
		"stale-while-revalidate serves": sum.swr, "stale-if-error serves": sum.sie,
	} {
		if n == 0 {
			t.Errorf("no %s happened: the load did not exercise them", name)
		}
	}
	if o := originReqs.Load(); o >= sum.requests {
		t.Errorf("the origin saw %d requests for %d client requests: nothing was served from the cache", o, sum.requests)
	}
}
