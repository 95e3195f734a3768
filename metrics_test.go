package cache

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage/file"
	"github.com/caddycache/caddy-cache/storage/memory"
	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// gather returns the families of a pedantic registry holding the cache
// collectors (registered twice: the second registration is ignored).
func gather(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for i := 0; i < 2; i++ {
		if err := registerMetrics(reg); err != nil {
			t.Fatalf("registering (%d): %v", i, err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value returns the value of the series of family name with the given
// labels (name=value pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsMove(t *testing.T) {
	env := opsEnv(t, "", fixed("Cache-Control", "max-age=60"))
	n := env.name()
	before := gather(t)
	_ = before
	env.get("/1")
	env.get("/1")
	env.get("/2")
	env.do("POST", "/3")
	fams := gather(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"caddy_http_cache_requests_total", []string{"handler", n, "result", "hit"}, 1},
		{"caddy_http_cache_requests_total", []string{"handler", n, "result", "miss"}, 2},
		{"caddy_http_cache_requests_total", []string{"handler", n, "result", "bypass"}, 1},
		{"caddy_http_cache_requests_total", []string{"handler", n, "result", "error"}, 0},
		{"caddy_http_cache_entries", []string{"handler", n, "backend", "memory"}, 2},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if b, ok := value(fams, "caddy_http_cache_stored_bytes", "handler", n); !ok || b < 12 {
		t.Errorf("stored_bytes = %v (present %v)", b, ok)
	}
	if _, ok := value(fams, "caddy_http_cache_evictions_total", "handler", n); !ok {
		t.Error("evictions_total missing")
	}
	// no label carries a URL, key or host
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "caddy_http_cache_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "127.0.0.1") || strings.Contains(l.GetValue(), "/") && l.GetName() != "handler" {
					t.Errorf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Two live handlers with the same name (a reload in progress) are one
// series; once the name is gone, so are its request series.
func TestMetricsReload(t *testing.T) {
	mk := func() (*Handler, context.CancelFunc) {
		h := &Handler{Name: "metrics-reload", StorageRaw: json.RawMessage(`{"backend":"memory","name":"metrics-reload"}`)}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return h, cancel
	}
	a, cancelA := mk()
	defer cancelA()
	a.count(resultHit)
	b, cancelB := mk()
	defer cancelB()
	b.count(resultHit)
	fams := gather(t) // pedantic: duplicate series would fail here
	if v, _ := value(fams, "caddy_http_cache_requests_total", "handler", "metrics-reload", "result", "hit"); v != 2 {
		t.Fatalf("hits across the reload = %v, want 2 (counters keep counting)", v)
	}
	_ = a.Cleanup()
	if v, _ := value(gather(t), "caddy_http_cache_requests_total", "handler", "metrics-reload", "result", "hit"); v != 2 {
		t.Fatalf("hits after the old handler left = %v, want 2", v)
	}
	_ = b.Cleanup()
	if _, ok := value(gather(t), "caddy_http_cache_requests_total", "handler", "metrics-reload"); ok {
		t.Fatal("series of a handler that is gone are still exported")
	}
}

// Storage operations are timed for every backend but the in-process memory
// store (whose calls take less time than timing them would).
func TestStorageTimings(t *testing.T) {
	env := opsEnv(t, `{"storage": {"backend": "counting"}, "memory": -1}`, fixed("Cache-Control", "max-age=60"))
	before := gather(t)
	gets0, _ := value(before, "caddy_http_cache_storage_operation_duration_seconds", "backend", "counting", "op", "get")
	puts0, _ := value(before, "caddy_http_cache_storage_operation_duration_seconds", "backend", "counting", "op", "put")
	env.get("/1")
	env.get("/1")
	env.get("/2")
	fams := gather(t)
	// other tests may run storage operations concurrently: lower bounds
	if gets, _ := value(fams, "caddy_http_cache_storage_operation_duration_seconds", "backend", "counting", "op", "get"); gets-gets0 < 3 {
		t.Errorf("storage get observations grew by %v, want at least 3", gets-gets0)
	}
	if puts, _ := value(fams, "caddy_http_cache_storage_operation_duration_seconds", "backend", "counting", "op", "put"); puts-puts0 < 2 {
		t.Errorf("storage put observations grew by %v, want at least 2", puts-puts0)
	}
}

// Purges are counted by kind with the responses they removed, dry runs
// not at all; a bounded store exports its max_size.
func TestMetricsPurgesAndMaxBytes(t *testing.T) {
	env := opsEnv(t, `{"storage": {"backend": "memory", "name": "metrics-purges", "max_size": 5000000}}`, fixed("Cache-Control", "max-age=60"))
	n := env.name()
	env.get("/a")
	env.get("/b")
	env.get("/c")
	ctx := context.Background()
	u, _ := url.Parse(env.srv.URL + "/a")
	env.h.purge(ctx, purgeRequest{URL: u.String()}, u)
	env.h.purge(ctx, purgeRequest{All: true, DryRun: true}, nil)
	env.h.purge(ctx, purgeRequest{All: true}, nil)
	fams := gather(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"caddy_http_cache_purges_total", []string{"handler", n, "kind", "url"}, 1},
		{"caddy_http_cache_purges_total", []string{"handler", n, "kind", "all"}, 1},
		{"caddy_http_cache_purged_entries_total", []string{"handler", n}, 3},
		{"caddy_http_cache_max_bytes", []string{"handler", n, "backend", "memory"}, 5000000},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	_ = env.h.Cleanup()
	if _, ok := value(gather(t), "caddy_http_cache_purges_total", "handler", n); ok {
		t.Fatal("purge series of a handler that is gone are still exported")
	}
}

func TestMaxBytesOf(t *testing.T) {
	zero, small := int64(0), int64(1234)
	for _, c := range []struct {
		mod  any
		want int64
	}{
		{&memory.Memory{MaxSize: 99}, 99},
		{&sqlite.SQLite{}, sqlite.DefaultMaxSize},
		{&sqlite.SQLite{MaxSize: &small}, 1234},
		{&file.File{MaxSize: &zero}, 0},
		{&file.File{}, file.DefaultMaxSize},
		{new(faultyStore), 0},
	} {
		if got := maxBytesOf(c.mod); got != c.want {
			t.Errorf("maxBytesOf(%T) = %d, want %d", c.mod, got, c.want)
		}
	}
}
