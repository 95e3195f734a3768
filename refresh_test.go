package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestParseRefreshAhead(t *testing.T) {
	for _, tc := range []struct {
		in     string
		frac   float64
		window time.Duration
		err    string
	}{
		{"10%", 0.1, 0, ""},
		{"12.5%", 0.125, 0, ""},
		{"0.1", 0.1, 0, ""},
		{"30s", 0, 30 * time.Second, ""},
		{"1m", 0, time.Minute, ""},
		{"0%", 0, 0, "percentage"},
		{"100%", 0, 0, "percentage"},
		{"x%", 0, 0, "percentage"},
		{"0", 0, 0, "above 0 and below 1"},
		{"1", 0, 0, "give its unit"},
		{"30", 0, 0, "give its unit"},
		{"-5s", 0, 0, "positive"},
		{"soon", 0, 0, "want a percentage"},
	} {
		frac, window, err := parseRefreshAhead(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || frac != tc.frac || window != tc.window):
			t.Errorf("%q: %v %v %v, want %v %v", tc.in, frac, window, err, tc.frac, tc.window)
		}
	}
}

func TestRefreshAheadValidate(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"refresh_ahead": 2}`:                                      `refresh_ahead "2"`,
		`{"refresh_ahead": "2"}`:                                    `refresh_ahead "2"`,
		`{"refresh_ahead_concurrency": 4}`:                          "set refresh_ahead too",
		`{"refresh_ahead": "10%", "refresh_ahead_concurrency": -1}`: "refresh_ahead_concurrency must be positive",
	} {
		h := new(Handler)
		if err := json.Unmarshal([]byte(cfg), h); err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", cfg, err, want)
		}
	}
}

func TestRefreshWindow(t *testing.T) {
	h := &Handler{RefreshAhead: "30s"}
	h.setupRefreshAhead()
	if w := h.refreshWindow(20 * time.Second); w != 10*time.Second {
		t.Fatalf("30s of a 20s lifetime: %v, want the cap of half the lifetime", w)
	}
	if w := h.refreshWindow(10 * time.Minute); w != 30*time.Second {
		t.Fatalf("30s of 10m: %v", w)
	}
	h = new(Handler)
	if err := json.Unmarshal([]byte(`{"refresh_ahead": 0.1}`), h); err != nil || h.RefreshAhead != "0.1" {
		t.Fatalf("refresh_ahead as a JSON number: %v %q", err, h.RefreshAhead)
	}
	if err := json.Unmarshal([]byte(`{"refresh_ahead": true}`), h); err == nil {
		t.Fatal("refresh_ahead true accepted")
	}
	h = &Handler{RefreshAhead: "10%"}
	h.setupRefreshAhead()
	if w := h.refreshWindow(100 * time.Second); w != 10*time.Second {
		t.Fatalf("10%% of 100s: %v", w)
	}
	if cap(h.refreshSlots) != DefaultRefreshAheadConcurrency {
		t.Fatalf("default concurrency %d", cap(h.refreshSlots))
	}
}

// refreshOrigin answers with max-age=100 and an ETag, 304 to a matching
// If-None-Match, and reports each request's If-None-Match on seen; with
// hold, conditional requests wait for it to be closed. It sends no Date
// (the handler's clock is a fake one).
func refreshOrigin(seen chan<- string, hold <-chan struct{}) func(http.ResponseWriter, *http.Request, int64) error {
	return func(w http.ResponseWriter, r *http.Request, n int64) error {
		if hold != nil && r.Header.Get("If-None-Match") != "" {
			<-hold
		}
		seen <- r.URL.Path + " " + r.Header.Get("If-None-Match")
		w.Header()["Date"] = nil
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("ETag", `"v"`)
		if r.Header.Get("If-None-Match") == `"v"` {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		fmt.Fprintf(w, "%s %d", r.URL.Path, n)
		return nil
	}
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("the origin got no request")
		return ""
	}
}

// waitIdle waits until no background refresh holds a slot.
func waitIdle(t *testing.T, h *Handler) {
	t.Helper()
	for i := 0; len(h.refreshSlots) > 0; i++ {
		if i > 3000 {
			t.Fatal("a background refresh never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefreshAhead(t *testing.T) {
	seen := make(chan string, 10)
	env := newEnv(t, `{"refresh_ahead": "10%"}`, refreshOrigin(seen, nil))
	wantStatus(t, env.get("/a"), "stored")
	recv(t, seen)
	env.clock.Advance(50 * time.Second)
	r := env.get("/a")
	if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "refresh-ahead") || !strings.Contains(cs, "hit") {
		t.Fatalf("hit at half the lifetime: %q", cs)
	}
	env.clock.Advance(45 * time.Second) // age 95 of 100: in the last 10 %
	r = env.get("/a")
	wantStatus(t, r, `hit; ttl=5; detail="refresh-ahead"`)
	wantBody(t, r, "/a 1")
	if got := recv(t, seen); got != `/a "v"` {
		t.Fatalf("refresh request %q, want a conditional one", got)
	}
	waitIdle(t, env.h)
	// refreshed: fresh for another 100 s, no further refresh until then
	env.clock.Advance(50 * time.Second)
	r = env.get("/a")
	if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "refresh-ahead") || !strings.Contains(cs, "hit") {
		t.Fatalf("hit after the refresh: %q (Age %s)", cs, r.header.Get("Age"))
	}
	if age := r.header.Get("Age"); age != "50" {
		t.Fatalf("Age %s after the refresh, want 50", age)
	}
	env.wantHits(2)
	// explain says when the next refresh comes
	res := env.h.explain(context.Background(), mustExplainRequest(t, env.srv.URL+"/a"))
	if !strings.Contains(res.Reason, "refresh-ahead: the first hit from") || !strings.Contains(res.Reason, "in 40s") {
		t.Fatalf("explain: %s", res.Reason)
	}
	env.clock.Advance(45 * time.Second)
	res = env.h.explain(context.Background(), mustExplainRequest(t, env.srv.URL+"/a"))
	if !strings.Contains(res.Reason, "a hit now refreshes it") {
		t.Fatalf("explain in the window: %s", res.Reason)
	}
}

func TestRefreshAheadOffByDefault(t *testing.T) {
	seen := make(chan string, 10)
	env := newEnv(t, "", refreshOrigin(seen, nil))
	env.get("/a")
	env.clock.Advance(99 * time.Second)
	r := env.get("/a")
	if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "refresh-ahead") {
		t.Fatalf("refresh-ahead without the option: %q", cs)
	}
	env.wantHits(1)
	res := env.h.explain(context.Background(), mustExplainRequest(t, env.srv.URL+"/a"))
	if strings.Contains(res.Reason, "refresh") {
		t.Fatalf("explain: %s", res.Reason)
	}
}

// One refresh per key at a time, at most refresh_ahead_concurrency at
// once: the excess is skipped, not queued.
func TestRefreshAheadBounds(t *testing.T) {
	seen := make(chan string, 10)
	hold := make(chan struct{})
	env := newEnv(t, `{"name": "refresh-bounds", "refresh_ahead": "10%", "refresh_ahead_concurrency": 1}`, refreshOrigin(seen, hold))
	t.Cleanup(func() { _ = env.h.Cleanup() })
	env.get("/a")
	recv(t, seen)
	env.get("/b")
	recv(t, seen)
	env.clock.Advance(95 * time.Second)
	wantStatus(t, env.get("/a"), `detail="refresh-ahead"`) // holds the one slot
	for range 3 {
		r := env.get("/a") // already refreshing: no second refresh
		if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "refresh-ahead") || !strings.Contains(cs, "hit") {
			t.Fatalf("second hit during the refresh: %q", cs)
		}
	}
	r := env.get("/b") // no slot: skipped
	if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "refresh-ahead") || !strings.Contains(cs, "hit") {
		t.Fatalf("hit on another key with the slot taken: %q", cs)
	}
	if v := counterValue(t, refreshAheadTotal.WithLabelValues("refresh-bounds", refreshSkipped)); v != 1 {
		t.Fatalf("skipped = %v, want 1", v)
	}
	close(hold)
	recv(t, seen)
	waitIdle(t, env.h)
	wantStatus(t, env.get("/b"), `detail="refresh-ahead"`) // the slot is free again
	recv(t, seen)
	waitIdle(t, env.h)
	if v := counterValue(t, refreshAheadTotal.WithLabelValues("refresh-bounds", refreshStarted)); v != 2 {
		t.Fatalf("started = %v, want 2", v)
	}
	env.wantHits(4)
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
