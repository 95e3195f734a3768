package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Storage fault test parameters.
const (
	faultStorageTimeout = 100 * time.Millisecond
	faultSlowFor        = 20 * time.Millisecond
	// faultPhases is how many storage_timeout periods one request can
	// spend waiting on storage: its lookup, the store of the request it
	// waited for (coalescing), its own lookup after that wait, and its own
	// store. Every storage call runs under a context with a deadline at
	// most storage_timeout away (checked through the store's counters), so
	// the extra latency a failing store adds to a request is at most
	// faultPhases × storage_timeout.
	faultPhases = 4
	// faultSlack is the scheduling allowance added to that bound: the
	// race detector on a loaded machine makes a healthy request take tens
	// of milliseconds.
	faultSlack = 2 * time.Second
	// maxStorageCallsPerRequest bounds the storage calls one request
	// makes: lookup (primary, variant, a delete per corrupt entry), the
	// same again after waiting for a concurrent fetch, and the store (put,
	// Vary index get and put, deletes of variants over max_variants).
	maxStorageCallsPerRequest = 14
)

// faultPayload is the checksummed body the fault origin sends for path:
// 200 to 6 KiB, so that both compressed and plain encodings occur.
func faultPayload(path string) string {
	size := 200 + (len(path)*997)%6000
	filler := strings.Repeat(path+" lorem ipsum dolor sit amet ", size/20+1)[:size]
	return sumBody("path=" + path + " " + filler)
}

// Under a bounded load with a store that fails, hangs, slows down or
// returns damaged bytes at 10 % and 100 % of its calls, every request
// succeeds with a good body (from the origin or an undamaged entry), every
// storage call is bounded by storage_timeout, and the handler logs one line
// per state change.
func TestReliabilityStorageFaults(t *testing.T) {
	// Most cases turn the memory hot tier off, so that every lookup meets
	// the faulty store; the "hot tier" cases keep it (the default).
	cases := []struct {
		name              string
		rate              float64
		faults            []string
		clients, requests int
		wantHits          bool
		hotTier           bool
	}{
		{"10% all kinds", 0.1, allFaults, 8, 40, true, false},
		{"100% error", 1, []string{faultError}, 4, 15, false, false},
		{"100% timeout", 1, []string{faultTimeout}, 4, 5, false, false},
		{"100% slow", 1, []string{faultSlow}, 4, 15, true, false},
		{"100% corrupt", 1, []string{faultCorrupt}, 4, 15, false, false},
		{"100% all kinds", 1, allFaults, 4, 8, false, false},
		{"10% all kinds, hot tier", 0.1, allFaults, 8, 40, true, true},
		{"100% all kinds, hot tier", 1, allFaults, 4, 8, false, true},
	}
	paths := []string{"/obj/0", "/obj/1", "/obj/2", "/obj/3", "/obj/4", "/obj/5", "/vary/0", "/vary/1"}
	var totals struct{ requests, origin, calls, injected, hits int64 }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "public, max-age=60")
				p := r.URL.Path
				if strings.HasPrefix(p, "/vary/") {
					w.Header().Set("Vary", "X-V")
					p += "?v=" + r.Header.Get("X-V")
				}
				io.WriteString(w, faultPayload(p))
			})
			name := strings.NewReplacer(" ", "_", "%", "pct", ",", "").Replace(t.Name())
			logPath, logOpt := logFile(t, "INFO")
			hot := "memory off"
			if tc.hotTier {
				hot = ""
			}
			in := startCaddyfile(t, func(admin string, port int) string {
				return globalOptions(admin, logOpt) + fmt.Sprintf(`http://127.0.0.1:%d {
	cache {
		storage faultinject {
			name %s
			rate %v
			faults %s
			slow %s
			seed 7
		}
		storage_timeout %s
		%s
	}
	reverse_proxy %s
}
`, port, name, tc.rate, strings.Join(tc.faults, " "), faultSlowFor, faultStorageTimeout, hot, o.addr())
			})
			tr := &http.Transport{MaxIdleConnsPerHost: tc.clients}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

			var failures, hits atomic.Int64
			var firstFailure atomic.Value
			fail := func(format string, args ...any) {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf(format, args...))
			}
			var maxLatency atomic.Int64
			var wg sync.WaitGroup
			for c := 0; c < tc.clients; c++ {
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					for k := 0; k < tc.requests; k++ {
						p := paths[(c*7+k*3)%len(paths)]
						v := []string{"a", "b"}[k%2]
						req, _ := http.NewRequest(http.MethodGet, in.site+p, nil)
						req.Header.Set("X-V", v)
						req.Header.Set("X-Fault-Req", fmt.Sprintf("%d-%d", c, k))
						start := time.Now()
						resp, err := hc.Do(req)
						if err != nil {
							fail("GET %s: %v", p, err)
							continue
						}
						body, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						lat := time.Since(start)
						for cur := maxLatency.Load(); int64(lat) > cur && !maxLatency.CompareAndSwap(cur, int64(lat)); cur = maxLatency.Load() {
						}
						want := faultPayload(p)
						if strings.HasPrefix(p, "/vary/") {
							want = faultPayload(p + "?v=" + v)
						}
						switch {
						case err != nil:
							fail("GET %s: reading body: %v", p, err)
						case resp.StatusCode != http.StatusOK:
							fail("GET %s: status %d", p, resp.StatusCode)
						case !checkSum(string(body)):
							fail("GET %s: damaged body served (Cache-Status %q)", p, resp.Header.Get("Cache-Status"))
						case string(body) != want:
							fail("GET %s: body made for another URL (Cache-Status %q)", p, resp.Header.Get("Cache-Status"))
						}
						if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
							hits.Add(1)
						}
					}
				}(c)
			}
			wg.Wait()

			fc := faultStats(name)
			requests := int64(tc.clients * tc.requests)
			lines := readLog(t, logPath, "http.handlers.cache")
			var downs, ups, writeDowns, writeUps, corruptLines, otherLines int
			var seq strings.Builder // D: failing, U: recovered, W: writes failing, R: writes work again, C: corrupt entry
			for _, l := range lines {
				switch {
				case strings.HasPrefix(l.Msg, "cache handler ready"):
					// the start-up line
				case strings.HasPrefix(l.Msg, "cache storage writes failing"):
					writeDowns++
					seq.WriteByte('W')
				case strings.HasPrefix(l.Msg, "cache storage writes work again"):
					writeUps++
					seq.WriteByte('R')
				case strings.HasPrefix(l.Msg, "cache storage failing"):
					downs++
					seq.WriteByte('D')
				case strings.HasPrefix(l.Msg, "cache storage recovered"):
					ups++
					seq.WriteByte('U')
				case strings.HasPrefix(l.Msg, "corrupt cache entr"):
					corruptLines++
					seq.WriteByte('C')
				default:
					otherLines++
				}
			}
			changes := downs + ups + writeDowns + writeUps
			t.Logf("%s: %d requests (%d hits), %d to the origin; %d storage calls, faults injected %v, at most %d calls per request, longest call budget %v, slowest request %v; log: %d state changes, %d corrupt-entry lines, %d other lines (%s)",
				tc.name, requests, hits.Load(), o.hits.Load(), fc.calls, fc.injected, fc.maxPerRequest, fc.maxBudget,
				time.Duration(maxLatency.Load()).Round(time.Millisecond), changes, corruptLines, otherLines, seq.String())
			totals.requests += requests
			totals.origin += o.hits.Load()
			totals.calls += fc.calls
			totals.injected += fc.totalInjected()
			totals.hits += hits.Load()

			if n := failures.Load(); n > 0 {
				t.Errorf("%d of %d requests failed; first: %v", n, requests, firstFailure.Load())
			}
			if fc.calls == 0 || fc.requests == 0 {
				t.Fatalf("the store was not used (%d calls, %d requests seen)", fc.calls, fc.requests)
			}
			for _, k := range tc.faults {
				if fc.injected[k] == 0 {
					t.Errorf("no %s fault was injected in %d calls", k, fc.calls)
				}
			}
			if fc.undetected > 0 {
				t.Errorf("%d damaged entries decoded without error", fc.undetected)
			}
			if fc.noDeadline > 0 {
				t.Errorf("%d storage calls had no deadline", fc.noDeadline)
			}
			if fc.maxBudget > faultStorageTimeout {
				t.Errorf("a storage call was given %v, more than storage_timeout %v", fc.maxBudget, faultStorageTimeout)
			}
			if fc.maxPerRequest > maxStorageCallsPerRequest {
				t.Errorf("a request made %d storage calls, want at most %d", fc.maxPerRequest, maxStorageCallsPerRequest)
			}
			if bound := faultPhases*faultStorageTimeout + faultSlack; time.Duration(maxLatency.Load()) > bound {
				t.Errorf("a request took %v, more than %d × storage_timeout + %v", time.Duration(maxLatency.Load()), faultPhases, faultSlack)
			}
			// Each outage is one "failing" line and, once the store answers
			// again, one "recovered" line, in that order.
			// Failing writes (reads working) are their own state, with its
			// own pair of lines.
			drop := func(s string, cut ...string) string {
				for _, c := range cut {
					s = strings.ReplaceAll(s, c, "")
				}
				return s
			}
			states := drop(seq.String(), "C", "W", "R")
			if strings.Contains(states, "DD") || strings.Contains(states, "UU") || strings.HasPrefix(states, "U") {
				t.Errorf("%d failing and %d recovered lines, not one per state change in order: %s", downs, ups, states)
			}
			writes := drop(seq.String(), "C", "D", "U")
			if strings.Contains(writes, "WW") || strings.Contains(writes, "RR") || strings.HasPrefix(writes, "R") {
				t.Errorf("%d writes-failing and %d writes-work-again lines, not one per state change in order: %s", writeDowns, writeUps, writes)
			}
			if otherLines > 0 {
				t.Errorf("%d unexpected log lines from the handler: %+v", otherLines, lines)
			}
			// One line per state change: a store failing at 100% goes down
			// once; at 10% each outage is a failing/recovered pair.
			if tc.rate == 1 && len(tc.faults) == 1 && (tc.faults[0] == faultError || tc.faults[0] == faultTimeout) && changes != 1 {
				t.Errorf("%d state-change lines for a store that failed from the start and never recovered, want 1", changes)
			}
			// A slow call can also time out on a loaded machine.
			if n := fc.injected[faultError] + fc.injected[faultTimeout] + fc.injected[faultSlow]; int64(changes) > 2*n {
				t.Errorf("%d state-change lines for at most %d failed calls", changes, n)
			}
			// Corrupt entries are logged at Warn at most once a minute.
			if corruptLines > 1 {
				t.Errorf("%d corrupt-entry lines at Warn for %d corrupt reads: one per entry floods the log", corruptLines, fc.injected[faultCorrupt])
			}
			if tc.wantHits && hits.Load() == 0 {
				t.Errorf("no request was a hit")
			}
		})
	}
	t.Logf("storage faults: %d requests, %d hits, %d to the origin, %d storage calls, %d faults injected",
		totals.requests, totals.hits, totals.origin, totals.calls, totals.injected)
}

// waitAccessLog waits until the access log at path records the request
// carrying X-Fault-Req: id, i.e. until Caddy has finished handling it
// (access log entries are written after the whole handler chain returned).
func waitAccessLog(t *testing.T, path, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var l struct {
					Request struct {
						Headers map[string][]string `json:"headers"`
					} `json:"request"`
				}
				if json.Unmarshal(sc.Bytes(), &l) == nil {
					for _, v := range l.Request.Headers["X-Fault-Req"] {
						if v == id {
							f.Close()
							return
						}
					}
				}
			}
			f.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("request %s never reached the access log", id)
}

// An origin that dies mid-body makes the client see an aborted response,
// and nothing is stored; a client that goes away mid-body stores nothing.
func TestReliabilityTruncatedResponses(t *testing.T) {
	const half = 32 << 10
	full := strings.Repeat("0123456789abcdef", 2*half/16)
	release := make(chan struct{})
	var seen sync.Map // path -> true once answered: later requests get the whole body
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, again := seen.LoadOrStore(r.URL.Path, true)
		switch {
		case again:
			io.WriteString(w, full)
		case strings.HasPrefix(r.URL.Path, "/reset"):
			// Write half the body, then drop the connection.
			if r.URL.Path == "/reset-length" {
				w.Header().Set("Content-Length", fmt.Sprint(len(full)))
			}
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, full[:half])
			http.NewResponseController(w).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(http.ErrAbortHandler)
			}
			conn.Close()
		case r.URL.Path == "/slow":
			w.Header().Set("Content-Length", fmt.Sprint(len(full)))
			io.WriteString(w, full[:half])
			http.NewResponseController(w).Flush()
			select { // the rest only once the client has gone
			case <-release:
			case <-r.Context().Done():
			}
			io.WriteString(w, full[half:])
		}
	})
	accessLog := t.TempDir() + "/access.log"
	name := t.Name()
	in := startCaddyfile(t, func(admin string, port int) string {
		return globalOptions(admin, "") + fmt.Sprintf(`http://127.0.0.1:%d {
	log {
		output file %s
		format json
	}
	cache {
		storage memory {
			name %s
		}
	}
	reverse_proxy %s {
		flush_interval -1
	}
}
`, port, accessLog, name, o.addr())
	})
	mem := memoryHandle(t, name)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	get := func(path, id string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, in.site+path, nil)
		req.Header.Set("X-Fault-Req", id)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	notStored := func(t *testing.T, path string) {
		t.Helper()
		if _, err := lookupURL(t, mem, in.site+path); err == nil {
			t.Fatalf("%s was stored", path)
		}
		before := o.hits.Load()
		resp, body, err := get(path, "after-"+path)
		if err != nil || string(body) != full {
			t.Fatalf("a later request for %s: %v, %d bytes", path, err, len(body))
		}
		// a chunked body says "stored" only when it is known complete
		// before it is sent: check the store itself
		wantCacheStatus(t, response{resp.StatusCode, resp.Header, ""}, "fwd=uri-miss")
		if _, err := lookupURL(t, mem, in.site+path); err != nil {
			t.Fatalf("the complete response for %s was not stored: %v", path, err)
		}
		if o.hits.Load() != before+1 {
			t.Fatalf("a later request for %s did not reach the origin", path)
		}
	}

	for _, path := range []string{"/reset-length", "/reset-chunked"} {
		t.Run("origin resets mid-body "+path, func(t *testing.T) {
			resp, body, err := get(path, path)
			if err == nil {
				t.Fatalf("the client read a complete-looking response of %d bytes (status %d), want an aborted one",
					len(body), resp.StatusCode)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "EOF") &&
				!strings.Contains(err.Error(), "reset") {
				t.Logf("client error: %v", err)
			}
			if len(body) > half {
				t.Fatalf("the client got %d bytes, the origin sent %d", len(body), half)
			}
			waitAccessLog(t, accessLog, path)
			notStored(t, path)
		})
	}

	t.Run("client disconnects mid-body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.site+"/slow", nil)
		req.Header.Set("X-Fault-Req", "slow")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1024)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("reading the first part: %v", err)
		}
		cancel()
		resp.Body.Close()
		waitAccessLog(t, accessLog, "slow")
		close(release)
		notStored(t, "/slow")
	})
}
