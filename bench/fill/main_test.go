package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// server counts the requests of every n and answers 10 bytes, as a hit
// when n is even.
func server(t *testing.T) (*httptest.Server, map[int]int, *sync.Mutex) {
	t.Helper()
	seen := map[int]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, "no n", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[n]++
		mu.Unlock()
		if n%2 == 0 {
			w.Header().Set("Cache-Status", "Caddy; hit; ttl=10")
		} else {
			w.Header().Set("Cache-Status", "Caddy; fwd=uri-miss; stored")
		}
		_, _ = w.Write([]byte("0123456789"))
	}))
	t.Cleanup(srv.Close)
	return srv, seen, &mu
}

func TestFillRequestsEveryNumberOnce(t *testing.T) {
	srv, seen, mu := server(t)
	res := run(context.Background(), config{url: srv.URL + "/?n=%d", from: 5, n: 100, conns: 8, size: 10})
	mu.Lock()
	defer mu.Unlock()
	if res.Requests != 100 || res.Errors != 0 {
		t.Fatalf("requests %d errors %d (%s), want 100 and 0", res.Requests, res.Errors, res.FirstError)
	}
	if res.Hits != 50 {
		t.Errorf("hits %d, want 50", res.Hits)
	}
	for i := 5; i < 105; i++ {
		if seen[i] != 1 {
			t.Errorf("n=%d requested %d times", i, seen[i])
		}
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct numbers requested, want 100", len(seen))
	}
}

func TestFillChecksSizeAndHits(t *testing.T) {
	srv, _, _ := server(t)
	res := run(context.Background(), config{url: srv.URL + "/?n=%d", n: 4, conns: 1, size: 11})
	if res.Errors != 4 || res.FirstError == "" {
		t.Errorf("wrong body size: %d errors (%q), want 4", res.Errors, res.FirstError)
	}
	res = run(context.Background(), config{url: srv.URL + "/?n=%d", n: 4, conns: 1, size: -1, hit: true})
	if res.Errors != 2 {
		t.Errorf("-hit: %d errors, want 2 (the odd numbers)", res.Errors)
	}
}

func TestLoadModeStaysInRange(t *testing.T) {
	srv, seen, mu := server(t)
	res := run(context.Background(), config{url: srv.URL + "/?n=%d", from: 10, n: 3, conns: 2, size: 10, duration: 50 * time.Millisecond})
	if res.Requests < 2 || res.Errors != 0 { // at least one per client
		t.Fatalf("requests %d errors %d (%s)", res.Requests, res.Errors, res.FirstError)
	}
	mu.Lock()
	defer mu.Unlock()
	for n := range seen {
		if n < 10 || n > 12 {
			t.Errorf("n=%d requested, outside [10, 13)", n)
		}
	}
	if res.P50ms > res.P99ms || res.P99ms > res.Maxms {
		t.Errorf("percentiles out of order: p50 %v p99 %v max %v", res.P50ms, res.P99ms, res.Maxms)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(d, 0.5); got != 50 {
		t.Errorf("p50 %v, want 50", got)
	}
	if got := percentile(d, 0.99); got != 99 {
		t.Errorf("p99 %v, want 99", got)
	}
	if got := percentile(d, 1); got != 100 {
		t.Errorf("max %v, want 100", got)
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("empty: %v", got)
	}
}
