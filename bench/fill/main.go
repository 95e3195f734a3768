// Command fill is the HTTP client of bench/run.sh. It sends GET requests to
// URLs made from a template with %d replaced by an entry number, from a
// number of concurrent clients, and prints one line of JSON with what it saw.
//
// Fill mode (the default) requests every number in [from, from+n) once:
// n distinct URLs, so with a cache in front each one is a miss that stores
// an entry. Load mode (-duration > 0) requests random numbers from that
// range until the duration is over (at least one request per client) and
// reports the latency percentiles.
//
//	fill -url 'http://127.0.0.1:8080/16KB?n=%d' -n 20000 -c 8
//	fill -url 'http://127.0.0.1:8080/1KB?n=%d' -n 1000000 -c 32 -duration 10s -hit
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one run prints.
type Result struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Hits     int64   `json:"hits"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Maxms    float64 `json:"max_ms"`
	// FirstError is the first failure seen, if any.
	FirstError string `json:"first_error,omitempty"`
}

type config struct {
	url      string
	from, n  int
	conns    int
	duration time.Duration
	size     int64
	hit      bool
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "", "URL template; %d becomes the entry number")
	flag.IntVar(&c.from, "from", 0, "first entry number")
	flag.IntVar(&c.n, "n", 1000, "how many entry numbers")
	flag.IntVar(&c.conns, "c", 8, "concurrent clients")
	flag.DurationVar(&c.duration, "duration", 0, "load mode: random entries for this long (0: fill every entry once)")
	flag.Int64Var(&c.size, "size", -1, "expected body size in bytes (-1: any)")
	flag.BoolVar(&c.hit, "hit", false, "count a response without a Cache-Status hit as an error")
	flag.Parse()
	if !strings.Contains(c.url, "%d") || c.n <= 0 || c.conns <= 0 {
		fmt.Fprintf(os.Stderr, "fill: want -url with %%d, -n > 0 and -c > 0\n")
		os.Exit(2)
	}
	res := run(context.Background(), c)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "fill:", err)
		os.Exit(1)
	}
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "fill: %d of %d requests failed; first: %s\n", res.Errors, res.Requests, res.FirstError)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) Result {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: c.conns,
		DisableCompression:  true,
	}}
	var (
		next     atomic.Int64
		res      Result
		mu       sync.Mutex
		lat      []time.Duration
		reqs     atomic.Int64
		errs     atomic.Int64
		hits     atomic.Int64
		firstErr atomic.Value
	)
	next.Store(int64(c.from))
	deadline := time.Time{}
	if c.duration > 0 {
		deadline = time.Now().Add(c.duration)
	}
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range c.conns {
		wg.Go(func() {
			var mine []time.Duration
			for {
				var i int
				if c.duration > 0 {
					// every client sends at least one request
					if len(mine) > 0 && !time.Now().Before(deadline) {
						break
					}
					i = c.from + rand.IntN(c.n)
				} else {
					i = int(next.Add(1) - 1)
					if i >= c.from+c.n {
						break
					}
				}
				t0 := time.Now()
				hit, err := get(ctx, client, fmt.Sprintf(c.url, i), c.size)
				mine = append(mine, time.Since(t0))
				reqs.Add(1)
				switch {
				case err != nil:
					fail(err)
				case hit:
					hits.Add(1)
				case c.hit:
					fail(fmt.Errorf("%s: not a cache hit", fmt.Sprintf(c.url, i)))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Requests, res.Errors, res.Hits = reqs.Load(), errs.Load(), hits.Load()
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.RPS = float64(res.Requests) / res.Seconds
	}
	res.P50ms, res.P99ms, res.Maxms = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	return res
}

// get fetches url, reads the whole body and reports whether the response
// was a cache hit.
func get(ctx context.Context, client *http.Client, url string, size int64) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return false, fmt.Errorf("%s: reading the body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	if size >= 0 && n != size {
		return false, fmt.Errorf("%s: body of %d bytes, want %d", url, n, size)
	}
	return strings.Contains(strings.ToLower(resp.Header.Get("Cache-Status")), "; hit"), nil
}

// percentile returns the q-quantile of d in milliseconds (0 when empty);
// it sorts d.
func percentile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q * float64(len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}
