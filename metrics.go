package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddycache/caddy-cache/storage"
)

// Metrics. The collectors are created once per process and registered into
// every config's registry (Caddy's /metrics), so counters keep counting
// across reloads. Labels come only from small closed sets: the handler name
// (from the config), the storage backend module name, the result and the
// operation — never a URL, key, host or client.
//
//	caddy_http_cache_requests_total{handler,result}              counter
//	caddy_http_cache_storage_operation_duration_seconds{backend,op} histogram (op: get, put, delete)
//	caddy_http_cache_storage_errors_total{backend,op}            counter
//	caddy_http_cache_stored_bytes{handler,backend}               gauge, read from the store on scrape
//	caddy_http_cache_entries{handler,backend}                    gauge, read from the store on scrape
//	caddy_http_cache_evictions_total{handler,backend}            counter, read from the store on scrape
//	caddy_http_cache_max_bytes{handler,backend}                  gauge, the store's max_size (absent when unlimited)
//	caddy_http_cache_purges_total{handler,kind}                  counter (kind: url, tag, group, prefix, host, all)
//	caddy_http_cache_purged_entries_total{handler}               counter, responses removed by purges
//	caddy_http_cache_group_invalidations_total{handler,source}   counter (source: response, purge)
//	caddy_http_cache_refresh_ahead_total{handler,result}         counter (result: started, skipped)
//
// A group invalidation counts one cache group (RFC 9875) invalidated, by a
// response's Cache-Group-Invalidation (source response) or a purge by group
// (source purge). Refresh-ahead counts the background refreshes hits
// started, and those skipped because refresh_ahead_concurrency refreshes
// were already running.
//
// result is one of hit (fresh response from the cache), stale (stale
// response served from the cache: max-stale or stale-if-error), revalidated
// (stored response validated by the origin with 304), miss (the response
// came from the origin, including a stale entry that was fetched again),
// bypass (the cache was not used: method, upgrade, request body, key too
// long, unsafe method) and error (the store failed, the request went to the
// origin). Purges are counted once per handler they ran on, dry runs not
// at all; kind is what selected the entries (an HTTP purge is url).

// Results counted in caddy_http_cache_requests_total.
const (
	resultHit = iota
	resultStale
	resultRevalidated
	resultMiss
	resultBypass
	resultError
	numResults
)

var resultNames = [numResults]string{"hit", "stale", "revalidated", "miss", "bypass", "error"}

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "requests_total",
		Help: "Requests handled by the cache, by handler and result (hit, stale, revalidated, miss, bypass, error).",
	}, []string{"handler", "result"})

	storageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "storage_operation_duration_seconds",
		Help:    "Duration of cache storage operations, by storage backend and operation (get, put, delete).",
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"backend", "op"})

	storageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "storage_errors_total",
		Help: "Failed cache storage operations (not counting misses), by storage backend and operation.",
	}, []string{"backend", "op"})

	purgesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "purges_total",
		Help: "Purges run on the cache handler (admin API, HTTP purge), by what selected the entries (url, tag, group, prefix, host, all).",
	}, []string{"handler", "kind"})

	purgedEntries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "purged_entries_total",
		Help: "Stored responses removed by purges of the cache handler.",
	}, []string{"handler"})

	groupInvalidations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "group_invalidations_total",
		Help: "Cache groups (RFC 9875) invalidated, by handler and source (response: Cache-Group-Invalidation; purge: admin API).",
	}, []string{"handler", "source"})

	refreshAheadTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "http_cache", Name: "refresh_ahead_total",
		Help: "Background refreshes of fresh entries near their end (refresh_ahead), by handler and result (started; skipped: the concurrency bound was reached).",
	}, []string{"handler", "result"})

	storeStats = &storeCollector{
		bytes: prometheus.NewDesc("caddy_http_cache_stored_bytes",
			"Bytes held by the cache handler's store.", []string{"handler", "backend"}, nil),
		entries: prometheus.NewDesc("caddy_http_cache_entries",
			"Entries held by the cache handler's store.", []string{"handler", "backend"}, nil),
		evictions: prometheus.NewDesc("caddy_http_cache_evictions_total",
			"Entries the cache handler's store evicted to stay within its size bound.", []string{"handler", "backend"}, nil),
		maxBytes: prometheus.NewDesc("caddy_http_cache_max_bytes",
			"The size bound (max_size) of the cache handler's store, in bytes; absent when unlimited.", []string{"handler", "backend"}, nil),
	}
)

// registerMetrics registers the package's collectors into reg; collectors
// already there (another handler, an earlier provision) are fine.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{requestsTotal, storageDuration, storageErrors, purgesTotal, purgedEntries, groupInvalidations, refreshAheadTotal, storeStats} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}

// handlerMetrics are a handler's counters, bound to its name once so that
// counting a result is one atomic add.
type handlerMetrics struct {
	name    string
	results [numResults]prometheus.Counter
}

func newHandlerMetrics(name string) *handlerMetrics {
	m := &handlerMetrics{name: name}
	for i := range m.results {
		m.results[i] = requestsTotal.WithLabelValues(name, resultNames[i])
	}
	return m
}

// forget removes the handler's series once no live handler has its name.
func (m *handlerMetrics) forget() {
	for _, r := range resultNames {
		requestsTotal.DeleteLabelValues(m.name, r)
	}
	for _, s := range []string{groupSourceResponse, groupSourcePurge} {
		groupInvalidations.DeleteLabelValues(m.name, s)
	}
	for _, r := range []string{refreshStarted, refreshSkipped} {
		refreshAheadTotal.DeleteLabelValues(m.name, r)
	}
	purgesTotal.DeletePartialMatch(prometheus.Labels{"handler": m.name})
	purgedEntries.DeleteLabelValues(m.name)
}

// countPurge records a purge that ran (not a dry run) and what it removed.
func (m *handlerMetrics) countPurge(kind string, removed int) {
	purgesTotal.WithLabelValues(m.name, kind).Inc()
	purgedEntries.WithLabelValues(m.name).Add(float64(removed))
}

// counts returns the handler's request counts by result.
func (m *handlerMetrics) counts() [numResults]float64 {
	var out [numResults]float64
	for i, c := range m.results {
		var pb dto.Metric
		if c.Write(&pb) == nil {
			out[i] = pb.GetCounter().GetValue()
		}
	}
	return out
}

// count records the result of one request. Safe on a handler that was not
// provisioned through provisionOps.
func (h *Handler) count(result int) {
	if h.ops != nil {
		h.ops.metrics.results[result].Inc()
	}
}

// Label values of group_invalidations_total and refresh_ahead_total.
const (
	groupSourceResponse = "response"
	groupSourcePurge    = "purge"
	refreshStarted      = "started"
	refreshSkipped      = "skipped"
)

// countGroupInvalidation counts one cache group invalidated.
func (h *Handler) countGroupInvalidation(source string) {
	if h.ops != nil {
		groupInvalidations.WithLabelValues(h.ops.name, source).Inc()
	}
}

// countRefreshAhead counts a refresh-ahead started or skipped.
func (h *Handler) countRefreshAhead(result string) {
	if h.ops != nil {
		refreshAheadTotal.WithLabelValues(h.ops.name, result).Inc()
	}
}

// countResult records the outcome of an exchange from the status and
// detail it reports in {http.cache.status} and {http.cache.detail}.
func (x *exchange) countResult(status, detail string) {
	if x.h.ops == nil {
		return
	}
	if _, background := x.w.(*backgroundWriter); background {
		return // a background revalidation, not a client request
	}
	r := resultMiss
	switch {
	case x.detail == "storage-error":
		r = resultError
	case status == statusHit:
		r = resultHit
	case status == statusRevalidated:
		r = resultRevalidated
	case status == statusStale:
		// A stale entry served as it is (max-stale without forwarding,
		// or in place of an origin error) is stale; a stale entry that
		// the origin replaced with a full response is a miss.
		if x.cond == nil || detail == "stale-if-error" {
			r = resultStale
		}
	}
	x.h.ops.metrics.results[r].Inc()
}

// instrumentedStore times every operation and counts failures.
type instrumentedStore struct {
	storage.Store
	get, put, del          prometheus.Observer
	getErr, putErr, delErr prometheus.Counter
}

// instrument wraps st so that its operations are measured under backend.
func instrument(st storage.Store, backend string) storage.Store {
	if backend == "" {
		backend = "unknown"
	}
	return &instrumentedStore{
		Store:  st,
		get:    storageDuration.WithLabelValues(backend, "get"),
		put:    storageDuration.WithLabelValues(backend, "put"),
		del:    storageDuration.WithLabelValues(backend, "delete"),
		getErr: storageErrors.WithLabelValues(backend, "get"),
		putErr: storageErrors.WithLabelValues(backend, "put"),
		delErr: storageErrors.WithLabelValues(backend, "delete"),
	}
}

// failed reports whether err is a storage failure rather than an answer
// (not found, too large) or the client going away.
func failed(err error) bool {
	return err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrTooLarge) &&
		!errors.Is(err, context.Canceled)
}

func (s *instrumentedStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	start := time.Now()
	e, err := s.Store.Get(ctx, key)
	s.get.Observe(time.Since(start).Seconds())
	if failed(err) {
		s.getErr.Inc()
	}
	return e, err
}

func (s *instrumentedStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	start := time.Now()
	err := s.Store.Put(ctx, key, e)
	s.put.Observe(time.Since(start).Seconds())
	if failed(err) {
		s.putErr.Inc()
	}
	return err
}

func (s *instrumentedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, key)
	s.del.Observe(time.Since(start).Seconds())
	if failed(err) {
		s.delErr.Inc()
	}
	return err
}

// storeCollector reads size, entry count and evictions from the stores of
// the live handlers when /metrics is scraped.
type storeCollector struct {
	bytes, entries, evictions, maxBytes *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.entries
	ch <- c.evictions
	ch <- c.maxBytes
}

// Collect implements prometheus.Collector. Stores are asked concurrently,
// each within the handler's storage timeout; one that fails or is too slow
// is left out of this scrape.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, h := range liveHandlers() {
		if h.ops.statser == nil {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.StorageTimeout))
			defer cancel()
			s, err := h.storeStats(ctx)
			if err != nil {
				return
			}
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes), h.ops.name, h.backendName)
			ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries), h.ops.name, h.backendName)
			ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions), h.ops.name, h.backendName)
			if h.maxBytes > 0 {
				ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(h.maxBytes), h.ops.name, h.backendName)
			}
		})
	}
	wg.Wait()
}
