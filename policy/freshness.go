package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Source says where a freshness lifetime came from.
type Source string

// Sources of a freshness lifetime, as returned by FreshnessLifetime.
const (
	SourceSMaxAge   Source = "s-maxage"
	SourceMaxAge    Source = "max-age"
	SourceExpires   Source = "expires"
	SourceHeuristic Source = "heuristic"
	SourceNone      Source = "none"
)

// maxHeuristic caps a heuristic freshness lifetime.
const maxHeuristic = 24 * time.Hour

// DefaultCacheable reports whether status is heuristically cacheable by
// default (RFC 9110 §15.1): 200, 203, 204, 300, 301, 308, 404, 405, 410,
// 414 and 501. It is what a nil StoreRules.Cacheable means.
func DefaultCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// headerDate parses the first value of an HTTP-date header.
func headerDate(h http.Header, name string) (time.Time, bool) {
	v := h.Values(name)
	if len(v) == 0 {
		return time.Time{}, false
	}
	return ParseHTTPDate(strings.Trim(v[0], " \t"))
}

// FreshnessLifetime computes the freshness lifetime (RFC 9111 §4.2.1):
// s-maxage, then max-age, then Expires minus Date (an invalid Expires, e.g.
// "0", or several differing Expires values mean already expired: lifetime 0
// with SourceExpires; a missing Date uses responseTime; Expires is ignored
// when cc.Targeted), then the heuristic of §4.2.2 (10% of the time from
// Last-Modified to Date, or to responseTime without a valid Date, at most
// 24h) only when cacheable(status) is true or the response is public
// (§5.2.2.9), and the response has no no-cache. cacheable nil means the RFC
// default set (DefaultCacheable). Returns SourceNone and 0 when nothing
// applies. The lifetime is never negative.
func FreshnessLifetime(status int, h http.Header, cc Directives, responseTime time.Time, cacheable func(int) bool) (time.Duration, Source) {
	if cc.HasSMaxAge {
		return cc.SMaxAge, SourceSMaxAge
	}
	if cc.HasMaxAge {
		return cc.MaxAge, SourceMaxAge
	}
	date, ok := headerDate(h, "Date")
	if !ok {
		date = responseTime
	}
	if exp := h.Values("Expires"); len(exp) > 0 && !cc.Targeted {
		for _, e := range exp[1:] {
			if e != exp[0] {
				return 0, SourceExpires
			}
		}
		t, ok := ParseHTTPDate(strings.Trim(exp[0], " \t"))
		if !ok {
			return 0, SourceExpires
		}
		life := max(t.Sub(date), 0)
		return life, SourceExpires
	}
	if cc.NoCache {
		return 0, SourceNone
	}
	if cacheable == nil {
		cacheable = DefaultCacheable
	}
	if !cc.Public && !cacheable(status) {
		return 0, SourceNone
	}
	lm, ok := headerDate(h, "Last-Modified")
	if !ok {
		return 0, SourceNone
	}
	life := min(max(date.Sub(lm)/10, 0), maxHeuristic)
	return life, SourceHeuristic
}

// addSat adds two non-negative durations, saturating instead of
// overflowing.
func addSat(a, b time.Duration) time.Duration {
	if s := a + b; s >= a {
		return s
	}
	return time.Duration(1<<63 - 1)
}

// ageValue returns age_value (RFC 9111 §4.2.3) from the Age field (§5.1):
// a list-valued Age (several members on one line, or several lines) counts
// by its first member, the rest discarded; a first member that is not a
// non-negative integer (delta-seconds: "abc", "-1", "1.5", "") makes the
// recipient ignore the field, which then gives 0 as if there were no Age.
// Values beyond 2^31 seconds saturate at MaxDelta (§1.2.2).
func ageValue(h http.Header) time.Duration {
	lines := h.Values("Age")
	if len(lines) == 0 {
		return 0
	}
	first, _, _ := strings.Cut(lines[0], ",")
	av, ok := parseDelta(strings.Trim(first, " \t"))
	if !ok {
		return 0
	}
	return av
}

// InitialAge computes corrected_initial_age (RFC 9111 §4.2.3) from the
// response's Age and Date headers and when the request was sent and the
// response received:
//
//	apparent_age = max(0, response_time - date_value)
//	response_delay = response_time - request_time
//	corrected_age_value = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//
// A missing or invalid Date gives apparent_age 0 and a negative
// response_delay (requestTime after responseTime) counts as 0. age_value
// follows §5.1 (see ageValue): the first member of a list-valued Age, and
// an Age that is not a non-negative integer is ignored. It is never
// negative.
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := headerDate(h, "Date"); ok {
		apparent = max(responseTime.Sub(date), 0)
	}
	delay := max(responseTime.Sub(requestTime), 0)
	corrected := addSat(ageValue(h), delay)
	return max(apparent, corrected)
}

// Use is what a cache may do with a stored response for a request.
type Use int

const (
	// UseFresh: serve it as is.
	UseFresh Use = iota
	// UseStale: serve it although it is stale, because the request
	// allows it (max-stale) and the response does not forbid it.
	UseStale
	// UseStaleRevalidate: serve it stale and revalidate in the background
	// (stale-while-revalidate, RFC 5861 §3).
	UseStaleRevalidate
	// Revalidate: it must be validated with the origin before use
	// (stale, no-cache on either side, request max-age/min-fresh not met).
	Revalidate
)

func (u Use) String() string {
	switch u {
	case UseFresh:
		return "fresh"
	case UseStale:
		return "stale"
	case UseStaleRevalidate:
		return "stale-while-revalidate"
	case Revalidate:
		return "revalidate"
	}
	return "unknown"
}

// Defaults are configured fallbacks used when the response says nothing.
type Defaults struct {
	StaleWhileRevalidate time.Duration // used when the response has no stale-while-revalidate
	StaleIfError         time.Duration // used when the response has no stale-if-error
}

// secs formats a duration as whole seconds followed by suffix, e.g. "12s".
func secs(prefix string, d time.Duration, suffix string) string {
	var buf [64]byte
	b := append(buf[:0], prefix...)
	b = strconv.AppendInt(b, int64(d/time.Second), 10)
	b = append(b, suffix...)
	return string(b)
}

// forbidsStale reports why a response may not be served stale by a shared
// cache (RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10), or "".
func forbidsStale(cc Directives) string {
	switch {
	case cc.NoCache:
		return "response no-cache"
	case cc.MustRevalidate:
		return "must-revalidate"
	case cc.ProxyRevalidate:
		return "proxy-revalidate"
	case cc.HasSMaxAge:
		return "s-maxage"
	}
	return ""
}

// Evaluate decides how a stored response of the given current age and
// freshness lifetime may be used for a request (RFC 9111 §4, §4.2.4, §5.2.1,
// RFC 5861). reason explains the decision in a few words for Cache-Status
// details and the explain API, e.g. "fresh", "stale by 12s",
// "request no-cache", "request max-age=10 exceeded", "min-fresh=30 not met",
// "response no-cache", "must-revalidate".
//
// Rules: response no-cache (unqualified) or request no-cache → Revalidate.
// Request max-age: age > max-age → Revalidate. min-fresh: lifetime-age <
// min-fresh → Revalidate. Fresh (age < lifetime) → UseFresh. Stale:
// must-revalidate, proxy-revalidate or s-maxage (which implies
// proxy-revalidate for shared caches) → Revalidate; else if the request's
// max-stale covers the staleness → UseStale; else if within
// stale-while-revalidate (response directive, else d.StaleWhileRevalidate)
// → UseStaleRevalidate; else Revalidate.
func Evaluate(age, lifetime time.Duration, respCC, reqCC Directives, d Defaults) (use Use, reason string) {
	if respCC.NoCache {
		return Revalidate, "response no-cache"
	}
	if reqCC.NoCache {
		return Revalidate, "request no-cache"
	}
	if reqCC.HasMaxAge && age > reqCC.MaxAge {
		return Revalidate, secs("request max-age=", reqCC.MaxAge, " exceeded")
	}
	if reqCC.HasMinFresh && lifetime-age < reqCC.MinFresh {
		return Revalidate, secs("min-fresh=", reqCC.MinFresh, " not met")
	}
	if age < lifetime {
		return UseFresh, "fresh"
	}
	stale := age - lifetime
	if why := forbidsStale(respCC); why != "" {
		return Revalidate, why
	}
	if reqCC.MaxStaleAny || (reqCC.HasMaxStale && stale <= reqCC.MaxStale) {
		return UseStale, secs("stale by ", stale, "s, max-stale")
	}
	swr := d.StaleWhileRevalidate
	if respCC.HasSWR {
		swr = respCC.StaleWhileRevalidate
	}
	if swr > 0 && stale <= swr {
		return UseStaleRevalidate, secs("stale by ", stale, "s, stale-while-revalidate")
	}
	return Revalidate, secs("stale by ", stale, "s")
}

// StaleIfError reports whether a stale response may be served instead of an
// origin error (5xx or no response) per RFC 5861 §4: within the response's
// stale-if-error (or else the request's stale-if-error, or else
// d.StaleIfError) window past its freshness, and never when no-cache,
// must-revalidate, proxy-revalidate or s-maxage forbid serving stale (RFC
// 9111 §4.2.4). A response that is still fresh may always be served.
func StaleIfError(age, lifetime time.Duration, respCC, reqCC Directives, d Defaults) bool {
	if forbidsStale(respCC) != "" {
		return false
	}
	if age < lifetime {
		return true
	}
	window := d.StaleIfError
	switch {
	case respCC.HasSIE:
		window = respCC.StaleIfError
	case reqCC.HasSIE:
		window = reqCC.StaleIfError
	}
	return window > 0 && age-lifetime <= window
}

// KeepFor is how long after its freshness ends a stored response stays
// useful: max of stale-while-revalidate, stale-if-error (response or
// defaults), and revalidate when it has a validator (ETag or
// Last-Modified). The stale windows count only when the response may be
// served stale (no no-cache, must-revalidate, proxy-revalidate or
// s-maxage). Storage uses it for the entry's hard expiry.
func KeepFor(h http.Header, cc Directives, d Defaults, revalidate time.Duration) time.Duration {
	var keep time.Duration
	if forbidsStale(cc) == "" {
		swr, sie := d.StaleWhileRevalidate, d.StaleIfError
		if cc.HasSWR {
			swr = cc.StaleWhileRevalidate
		}
		if cc.HasSIE {
			sie = cc.StaleIfError
		}
		keep = max(swr, sie)
	}
	if HasValidator(h) {
		keep = max(keep, revalidate)
	}
	return max(keep, 0)
}

// HasValidator reports whether a response header carries a validator that
// a conditional request can use (RFC 9110 §8.8): a non-empty ETag or
// Last-Modified. An empty field gives nothing to send back.
func HasValidator(h http.Header) bool {
	return h.Get("Etag") != "" || h.Get("Last-Modified") != ""
}

// CurrentAge is the current_age of RFC 9111 §4.2.3 of a response stored
// with corrected_initial_age initialAge when its header arrived at
// responseTime.
func CurrentAge(initialAge time.Duration, responseTime, now time.Time) time.Duration {
	return max(initialAge+now.Sub(responseTime), 0)
}

// NotModifiedField reports whether a 304 sent to a client keeps the stored
// response's field k (canonical name): the fields RFC 9110 §15.4.5 says a
// 304 carries, plus Last-Modified, Age and Cache-Status.
func NotModifiedField(k string) bool {
	switch k {
	case "Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Age", "Cache-Status", "Last-Modified":
		return true
	}
	return false
}

// BodyAllowed reports whether a response with this status has a body
// (RFC 9110 §6.4.1): not 1xx, 204 or 304.
func BodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
