package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// 20 config reloads while clients keep sending requests: no request fails,
// stored entries survive every reload, and once the last config is
// unloaded (caddy.Stop) no goroutine started since the test began is left.
func TestReliabilityReloadsUnderLoad(t *testing.T) {
	const (
		reloads = 20
		loaders = 4
		warm    = 10
	)
	// Registered first, so it runs last: after caddy.Stop and the origin's
	// Close (cleanups run in reverse order).
	ignore := goleak.IgnoreCurrent()
	tr := &http.Transport{MaxIdleConnsPerHost: loaders}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		client.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections() // reload posts to the admin endpoint with it
		if err := goleak.Find(ignore,
			// caddy.Stop unloads the config but leaves the admin endpoint
			// serving (a real process exits); the next Load replaces it.
			goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.replaceLocalAdminServer.func2"),
			// The TLS app's storage clean-up holds a lock file whose
			// refresher wakes every few seconds and then sees it is gone.
			goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
			// Caddy's file log writer (the log this test reads) keeps one
			// rotation goroutine per file for the life of the process.
			goleak.IgnoreAnyFunction("github.com/DeRuina/timberjack.(*Logger).millRun"),
		); err != nil {
			t.Errorf("goroutines left after the last config was unloaded: %v", err)
		} else {
			t.Logf("lifecycle: no goroutine left after caddy.Stop")
		}
	})

	var warmHits [warm]atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/warm/%d", &i); err == nil && i < warm {
			warmHits[i].Add(1)
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintf(w, "%s n=%d", r.URL.Path, n)
	})
	site := func(i int) string {
		// Every reload changes options of the handler and of the store;
		// the store's name (its identity) stays.
		return fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t\tmax_size %dMiB\n\t\t}\n\t\tmax_entry_size %dKiB\n\t\tlock_timeout %dms\n\t\tstorage_timeout %dms\n\t}\n\treverse_proxy %s",
			t.Name(), 32+i%3, 512+i, 1000+i, 500+i, o.addr())
	}
	logPath, logOpt := logFile(t, "INFO")
	in := startCaddyfile(t, loopbackSite(logOpt, site(0)))
	for i := 0; i < warm; i++ {
		wantCacheStatus(t, in.get(fmt.Sprintf("/warm/%d", i)), "stored")
	}

	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var requests, failures, hits, handover atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for l := 0; l < loaders; l++ {
		wg.Add(1)
		go func(l int) {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/warm/%d", k%warm)
				if k%5 == 0 {
					path = fmt.Sprintf("/fresh/%d/%d", l, k) // a miss
				}
				requests.Add(1)
				resp, err := getFresh(hc, in.site+path, &handover)
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("GET %s: %v", path, err))
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), path+" ") {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("GET %s: status %d, body %q, error %v", path, resp.StatusCode, b, err))
				}
				if strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					hits.Add(1)
				}
			}
		}(l)
	}
	for i := 1; i <= reloads; i++ {
		time.Sleep(50 * time.Millisecond) // let requests run on this config
		in.reloadSite(logOpt, site(i))
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("lifecycle: %d reloads, %d requests during them (%d hits), %d failed, %d new connections reset by the listener handover and retried",
		reloads, requests.Load(), hits.Load(), failures.Load(), handover.Load())
	for _, l := range readLog(t, logPath, "") {
		if strings.Contains(l.Msg, "panic") {
			t.Errorf("Caddy logged a panic during the reloads: %s: %s", l.Logger, l.Msg)
		}
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", n, requests.Load(), firstFailure.Load())
	}
	if requests.Load() < int64(reloads) {
		t.Errorf("only %d requests ran during %d reloads", requests.Load(), reloads)
	}
	for i := 0; i < warm; i++ {
		wantCacheStatus(t, in.get(fmt.Sprintf("/warm/%d", i)), "hit")
		if n := warmHits[i].Load(); n != 1 {
			t.Errorf("/warm/%d was fetched from the origin %d times across the reloads, want 1", i, n)
		}
	}
}

// getFresh GETs url. A request on a new connection that the server closes
// before any response byte is retried once, as browsers do, and counted
// in handover: on Linux each config opens its own SO_REUSEPORT socket and
// closes the old one, and the kernel resets connections still queued on
// the closed socket (unless net.ipv4.tcp_migrate_req is 1). Errors on a
// reused connection are left to net/http's own retry rules and fail.
func getFresh(hc *http.Client, url string, handover *atomic.Int64) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var reused, gotResponse bool
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn:              func(ci httptrace.GotConnInfo) { reused = ci.Reused },
			GotFirstResponseByte: func() { gotResponse = true },
		}))
		resp, err := hc.Do(req)
		if err == nil || reused || gotResponse || attempt == 1 {
			if err != nil {
				err = fmt.Errorf("%w (connection reused %v, response started %v, attempt %d)", err, reused, gotResponse, attempt+1)
			}
			return resp, err
		}
		handover.Add(1)
	}
}
