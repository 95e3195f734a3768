package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// Outcomes of explain: what the handler would do with the request now.
const (
	outcomeHit        = "hit"        // served fresh from the cache
	outcomeStale      = "stale"      // served stale from the cache (max-stale)
	outcomeRevalidate = "revalidate" // conditional request to the origin; a 304 is served from the cache
	outcomeMiss       = "miss"       // full request to the origin
	outcomeBypass     = "bypass"     // the cache is not used
	outcomeError      = "error"      // the store failed; the request would go to the origin
)

// explainResult says what one handler would do with a request, and why.
type explainResult struct {
	Handler string `json:"handler"`
	Backend string `json:"backend"`
	// Key is the cache key the request maps to (with key headers).
	Key string `json:"key,omitempty"`
	// VariantKey is the key of the Vary variant the request selects.
	VariantKey string `json:"variant_key,omitempty"`
	// SelectedBy is "Content-Language" when the variant was made for
	// another Accept-Language but is in the client's preferred language
	// (RFC 9110 §12.5.4); empty when the selecting fields match.
	SelectedBy string `json:"selected_by,omitempty"`
	// Outcome is hit, stale, revalidate, miss, bypass or error.
	Outcome string `json:"outcome"`
	// Reason explains the outcome, e.g. "fresh: age 12s of max-age=60,
	// ttl 48s" or "stale: max-age=60 exceeded by 12s; would revalidate
	// with If-None-Match".
	Reason string `json:"reason"`
	// Entry describes the stored response the decision is about.
	Entry *entryInfo `json:"entry,omitempty"`
	// RefreshFrom is, with refresh_ahead, when hits on the fresh entry
	// start refreshing it in the background (now when they already do).
	RefreshFrom time.Time `json:"refresh_from,omitzero"`
}

// explainRequest builds the request explain evaluates.
func explainRequest(method, rawURL string, headers []string) (*http.Request, error) {
	u, err := parseAbsURL("url", rawURL)
	if err != nil {
		return nil, err
	}
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, fmt.Errorf("method %q: not an HTTP method", method)
	}
	r, err := http.NewRequest(method, u.String(), nil) //nolint:gosec // G704: built to compute the decision, never sent
	if err != nil {
		return nil, fmt.Errorf("url %q: %v", rawURL, err)
	}
	if u.Scheme == "https" {
		r.TLS = &tls.ConnectionState{}
	}
	r.RequestURI = u.RequestURI()
	for _, hv := range headers {
		name, value, ok := strings.Cut(hv, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || !isToken(name) {
			return nil, fmt.Errorf("header %q: want Name:Value", hv)
		}
		if strings.EqualFold(name, "Host") {
			r.Host = strings.TrimSpace(value)
			continue
		}
		r.Header.Add(name, strings.TrimSpace(value))
	}
	return r, nil
}

// explain says what h would do with r now, mirroring ServeHTTP's lookup
// and reuse decisions without changing anything.
func (h *Handler) explain(ctx context.Context, r *http.Request) explainResult {
	res := explainResult{Handler: h.ops.name, Backend: h.backendName}
	bypass := func(why string) explainResult {
		res.Outcome, res.Reason = outcomeBypass, why
		return res
	}
	switch r.Method {
	case http.MethodGet:
		if !h.allowGET {
			return bypass("method GET is not cached by this handler (methods option)")
		}
	case http.MethodHead:
		if !h.allowHEAD {
			return bypass("method HEAD is not cached by this handler (methods option)")
		}
	default:
		if h.isPurge(r) {
			return bypass("purge request: removes the stored responses of this URL when the purge matchers allow it, else 405")
		}
		if policy.IsUnsafe(r.Method) {
			return bypass("unsafe method " + r.Method + ": forwarded; a successful response invalidates the stored responses of this URL, and of the cache groups its Cache-Group-Invalidation names")
		}
		return bypass("method " + r.Method + " is never served from the cache")
	}
	if why := bypassReason(r); why != "" {
		return bypass("request " + why + ": the cache is not used")
	}
	key := h.cacheKey(r)
	if len(key) > maxPrimaryKeyLen {
		return bypass(fmt.Sprintf("key too long (%d bytes, limit %d)", len(key), maxPrimaryKeyLen))
	}
	res.Key = unscoped(key)
	reqCC := h.requestDirectives(r)
	miss := func(why string) explainResult {
		res.Outcome, res.Reason = outcomeMiss, why
		if reqCC.OnlyIfCached {
			res.Reason += "; only-if-cached: the client would get 504"
		}
		if reqCC.NoStore {
			res.Reason += "; request no-store: the response would not be stored"
		}
		return res
	}

	e, err := h.get(ctx, key)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			res.Outcome, res.Reason = outcomeError, "storage error: "+err.Error()+"; the request would go to the origin"
			return res
		}
		return miss(h.notStoredReason(key))
	}
	if e.Kind == storage.KindVary {
		vk, vals := h.variantKey(key, e.Vary, r)
		res.VariantKey = unscoped(vk)
		ve, err := h.get(ctx, vk)
		if errors.Is(err, storage.ErrNotFound) {
			if le, lk := h.languageVariant(e, r, func(k string) (*storage.Entry, error) { return h.get(ctx, k) }); le != nil {
				ve, err = le, nil
				res.VariantKey = unscoped(lk)
				res.SelectedBy = "Content-Language"
			}
		}
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				res.Outcome, res.Reason = outcomeError, "storage error: "+err.Error()+"; the request would go to the origin"
				return res
			}
			return miss(fmt.Sprintf("vary mismatch: no stored variant for %s (%d variant(s) stored for this URL)",
				describeVary(e.Vary, vals), len(e.Variants)))
		}
		e = ve
	}
	if e.Kind != storage.KindResponse || (res.SelectedBy == "" && !h.varyMatches(e, r)) {
		return miss("vary mismatch: the stored response was selected by " + describeVary(e.Vary, e.VaryRequest))
	}
	now := h.now()
	info := h.entryInfo(key, e, now)
	if res.VariantKey != "" {
		info = h.entryInfo(h.scope+res.VariantKey, e, now)
	}
	res.Entry = &info
	parts := ""
	if e.Status == http.StatusPartialContent {
		ps, _ := partsOf(e)
		parts = "partial: " + ps.describe() + " stored"
		if why := partialUse(r, e); why != "" {
			return miss(parts + "; " + why + ": forwarded with the request's Range, and a 206 answer is combined with the stored parts")
		}
		parts = "; the range is served from the stored parts (" + parts + ")"
	}

	var p prepared
	h.prepare(e, &p)
	use, why, age := h.reuse(e, &p, reqCC, now)
	life := h.lifetimeLabel(e)
	switch use {
	case policy.UseFresh:
		res.Outcome = outcomeHit
		res.Reason = fmt.Sprintf("fresh: age %ds of %s, ttl %ds", int64(age/time.Second), life, int64((e.Lifetime-age)/time.Second))
		if e.Status >= 200 && e.Status < 300 && policy.ClientNotModified(r.Header, e.Header) {
			res.Reason += "; the client's validators match: 304 Not Modified"
		}
		res.Reason += parts
		if why, from := h.refreshExplanation(e, age, now); why != "" {
			res.Reason += "; " + why
			res.RefreshFrom = from
		}
		return res
	case policy.UseStale:
		res.Outcome, res.Reason = outcomeStale, "served stale: "+why+parts
		return res
	case policy.UseStaleRevalidate:
		res.Outcome = outcomeStale
		res.Reason = fmt.Sprintf("served stale (stale-while-revalidate): %s exceeded by %ds; one background request revalidates it",
			life, int64((age-e.Lifetime)/time.Second)) + parts
		return res
	}
	if age >= e.Lifetime && strings.HasPrefix(why, "stale by ") {
		why = fmt.Sprintf("stale: %s exceeded by %ds", life, int64((age-e.Lifetime)/time.Second))
	} else if age >= e.Lifetime {
		why = fmt.Sprintf("stale by %ds (%s), %s", int64((age-e.Lifetime)/time.Second), life, why)
	}
	if inm, ims := policy.ConditionalHeaders(e.Header); inm != "" || ims != "" {
		res.Outcome = outcomeRevalidate
		via := "If-None-Match"
		if inm == "" {
			via = "If-Modified-Since"
		}
		res.Reason = why + "; would revalidate with " + via + " (a 304 is served from the cache)" + parts
		if reqCC.OnlyIfCached {
			res.Reason += "; only-if-cached: the client would get 504"
		}
		return res
	}
	return miss(why + "; no validator (ETag, Last-Modified): a full fetch")
}

// notStoredReason says why nothing is stored under key, as precisely as the
// handler knows.
func (h *Handler) notStoredReason(key string) string {
	if n, ok := h.ops.notes.lookup(key); ok {
		return fmt.Sprintf("not stored: %s (response seen %ds ago)", n.reason, int64(time.Since(n.at)/time.Second))
	}
	return "not in the cache: never stored by this handler, expired or evicted"
}

// lifetimeLabel names where a stored response's freshness lifetime comes
// from, e.g. "max-age=60", "s-maxage=300", "Expires (60s)", "heuristic
// (60s)" or "configured ttl (60s)".
func (h *Handler) lifetimeLabel(e *storage.Entry) string {
	secs := strconv.FormatInt(int64(e.Lifetime/time.Second), 10)
	if !h.ignoreCC {
		cc := h.directives(e.Header)
		d, src := policy.FreshnessLifetime(e.Status, e.Header, cc, e.ResponseTime, h.cacheable)
		if d == e.Lifetime {
			switch src {
			case policy.SourceSMaxAge, policy.SourceMaxAge:
				return string(src) + "=" + secs
			case policy.SourceExpires:
				return "Expires (" + secs + "s)"
			case policy.SourceHeuristic:
				return "heuristic lifetime (" + secs + "s)"
			}
		}
	}
	if e.Lifetime > 0 && (h.TTL > 0 || len(h.TTLRules) > 0) {
		return "configured ttl (" + secs + "s)"
	}
	return "lifetime " + secs + "s"
}

// describeVary formats selecting header values: `Accept-Encoding="gzip"`.
func describeVary(names []string, vals map[string]string) string {
	if len(names) == 0 {
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		names = keys
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + strconv.Quote(vals[n])
	}
	return strings.Join(parts, ", ")
}

// explainQuery reads the explain parameters: url, method and repeated
// header=Name:Value.
func explainQuery(q url.Values) (*http.Request, error) {
	raw := q.Get("url")
	if raw == "" {
		return nil, fmt.Errorf("url: required (an absolute http:// or https:// URL)")
	}
	return explainRequest(q.Get("method"), raw, q["header"])
}
