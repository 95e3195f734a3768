// Package policy holds the HTTP caching decisions of RFC 9111 (and RFC 9110,
// RFC 5861, RFC 9213) as pure functions over headers, status codes and times.
// It imports only the standard library, never reads the clock (callers pass
// times in) and does no I/O, so every rule is table-tested on its own.
//
// The cache is a shared cache throughout: s-maxage and proxy-revalidate apply,
// private responses are never stored.
package policy

import (
	"net/http"
	"net/url"
	"time"
)

// Directives is a parsed Cache-Control field (or a targeted field such as
// CDN-Cache-Control, RFC 9213), request or response.
//
// Parsing follows RFC 9111 §5.2 and RFC 9110 §5.6: directive names are
// case-insensitive; arguments may be tokens or quoted strings; unknown
// directives are ignored; when a directive with an argument appears more
// than once with different values the field is treated as the RFC advises
// (see ParseCacheControl).
type Directives struct {
	NoStore         bool
	NoCache         bool
	NoCacheFields   []string // no-cache="a, b": canonical header names; NoCache stays false when only the qualified form is present
	Private         bool
	PrivateFields   []string // private="a, b": canonical header names; Private stays false when only the qualified form is present
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	NoTransform     bool
	Immutable       bool
	OnlyIfCached    bool

	MaxAge               time.Duration
	HasMaxAge            bool
	SMaxAge              time.Duration
	HasSMaxAge           bool
	MinFresh             time.Duration
	HasMinFresh          bool
	MaxStale             time.Duration // with HasMaxStale; MaxStaleAny for a bare max-stale
	HasMaxStale          bool
	MaxStaleAny          bool
	StaleWhileRevalidate time.Duration
	HasSWR               bool
	StaleIfError         time.Duration
	HasSIE               bool
}

// ParseCacheControl parses every line of a Cache-Control-like field (pass
// h.Values(name) or h[name]). Delta-seconds that are invalid (negative, not
// digits) make that directive count as absent, except max-age/s-maxage, for
// which an invalid value is treated as 0 (stale), as RFC 9111 §4.2.1 and
// §1.2.2 advise. Values too large saturate at 2^31 seconds (§1.2.2). When
// max-age (or s-maxage) appears more than once with different values, the
// response is treated as stale (value 0), per §4.2.1.
func ParseCacheControl(fields []string) Directives { panic("unimplemented") }

// ResponseDirectives returns the directives that govern this cache for a
// response: per RFC 9213, the first field in targets (e.g.
// "CDN-Cache-Control") that is present and parses to at least one directive
// wins over Cache-Control; otherwise Cache-Control is used. field names which
// one was used.
func ResponseDirectives(h http.Header, targets []string) (d Directives, field string) {
	panic("unimplemented")
}

// RequestDirectives parses a request's Cache-Control; when the request has no
// Cache-Control field but has "Pragma: no-cache", it is treated as
// Cache-Control: no-cache (RFC 9111 §5.4 compatibility).
func RequestDirectives(h http.Header) Directives { panic("unimplemented") }

// StoreRules are the configurable parts of the storability decision.
type StoreRules struct {
	// Cacheable reports whether a status is "heuristically cacheable"
	// here (RFC 9110 §15.1): responses with it may be stored without
	// explicit freshness. Nil means the RFC default set: 200, 203, 204,
	// 300, 301, 308, 404, 405, 410, 414, 501.
	Cacheable func(status int) bool
	// StoreSetCookie allows storing responses that carry Set-Cookie. Off
	// by default: a shared cache must not give one client's cookie to
	// another.
	StoreSetCookie bool
	// ForcedTTL is true when the configuration gives this response a
	// lifetime regardless of its headers (cache_control ignore, or a ttl
	// rule applied to responses without explicit freshness): then missing
	// explicit freshness does not prevent storing.
	ForcedTTL bool
}

// Storable decides whether a shared cache may store the response to a GET
// request (RFC 9111 §3, §3.5). reason is a short, human-readable
// explanation when ok is false (e.g. "no-store", "private",
// "Set-Cookie", "status 206", "Vary: *", "Authorization without public",
// "no explicit freshness for status 302").
//
// Rules: the status must be final and not 206 or 304; no no-store on request
// or response; no unqualified private; a request carrying Authorization
// only when the response has public, s-maxage or must-revalidate; no
// "Vary: *"; no Set-Cookie unless rules.StoreSetCookie; and the response
// must have explicit freshness (max-age, s-maxage, Expires), public, or a
// heuristically cacheable status, or a validator with no-cache, or
// rules.ForcedTTL. A response whose freshness is explicitly zero (max-age=0,
// no-cache) is still storable when it carries a validator (ETag or
// Last-Modified), so that it can be revalidated.
func Storable(reqHeader http.Header, reqCC Directives, status int, respHeader http.Header, respCC Directives, rules StoreRules) (ok bool, reason string) {
	panic("unimplemented")
}

// Source says where a freshness lifetime came from.
type Source string

const (
	SourceSMaxAge   Source = "s-maxage"
	SourceMaxAge    Source = "max-age"
	SourceExpires   Source = "expires"
	SourceHeuristic Source = "heuristic"
	SourceNone      Source = "none"
)

// FreshnessLifetime computes the freshness lifetime (RFC 9111 §4.2.1):
// s-maxage, then max-age, then Expires minus Date (an invalid Expires, e.g.
// "0", means already expired: lifetime 0 with SourceExpires; a missing Date
// uses responseTime), then the heuristic of §4.2.2 (10% of the time since
// Last-Modified, at most 24h) only when cacheable(status) is true and the
// response has no Cache-Control directive forbidding it (no-cache, and no
// explicit freshness). cacheable nil means the RFC default set. Returns
// SourceNone and 0 when nothing applies.
func FreshnessLifetime(status int, h http.Header, cc Directives, responseTime time.Time, cacheable func(int) bool) (time.Duration, Source) {
	panic("unimplemented")
}

// InitialAge computes corrected_initial_age (RFC 9111 §4.2.3) from the
// response's Age and Date headers and when the request was sent and the
// response received. It is never negative.
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	panic("unimplemented")
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
	panic("unimplemented")
}

// StaleIfError reports whether a stale response may be served instead of an
// origin error (5xx or no response) per RFC 5861 §4: within the response's
// stale-if-error (or the request's stale-if-error, or d.StaleIfError) window
// past its freshness, and never when must-revalidate, proxy-revalidate or
// s-maxage forbid serving stale.
func StaleIfError(age, lifetime time.Duration, respCC, reqCC Directives, d Defaults) bool {
	panic("unimplemented")
}

// KeepFor is how long after its freshness ends a stored response stays
// useful: max of stale-while-revalidate, stale-if-error (response or
// defaults), and revalidate when it has a validator (ETag or
// Last-Modified). Storage uses it for the entry's hard expiry.
func KeepFor(h http.Header, cc Directives, d Defaults, revalidate time.Duration) time.Duration {
	panic("unimplemented")
}

// VaryNames returns the field names listed by the response's Vary header(s),
// in canonical form, in order, deduplicated; star reports "Vary: *".
func VaryNames(h http.Header) (names []string, star bool) { panic("unimplemented") }

// NormalizeVaryValue turns a request's values of one selecting header into
// the string compared between requests (RFC 9111 §4.1): all field lines
// joined with ", ", whitespace around list elements and at the ends
// removed. For Accept-Encoding, Accept, Accept-Language and Accept-Charset the
// list elements are also lower-cased and sorted, so "gzip, br" and "br,gzip"
// select the same variant. An absent header normalises to "" and matches
// only another absent (or empty) header.
func NormalizeVaryValue(name string, values []string) string { panic("unimplemented") }

// ClientNotModified evaluates a client's conditional GET/HEAD against a stored
// response header (RFC 9110 §13.1.2, §13.1.3, §13.2.2): If-None-Match
// (weak comparison, "*" matches any stored response) takes precedence over
// If-Modified-Since (which is compared to the stored Last-Modified, or Date
// when there is none). It returns true when a 304 should be sent.
func ClientNotModified(reqHeader, stored http.Header) bool { panic("unimplemented") }

// ConditionalHeaders returns the validators to send when revalidating a
// stored response (RFC 9111 §4.3.1): If-None-Match from its ETag and
// If-Modified-Since from its Last-Modified. Values are "" when the stored
// response has no such validator.
func ConditionalHeaders(stored http.Header) (ifNoneMatch, ifModifiedSince string) {
	panic("unimplemented")
}

// Freshen returns the stored header updated with a 304 (or HEAD) response's
// header as RFC 9111 §3.2 and §4.3.4 require: every field in fresh replaces
// the stored one, except Content-Length, Content-Encoding, Transfer-Encoding
// Content-Range and the hop-by-hop fields, which are kept as stored. stored
// is not modified.
func Freshen(stored, fresh http.Header) http.Header { panic("unimplemented") }

// StoredHeader returns a copy of a response header fit to store (RFC 9111
// §3.1): hop-by-hop fields (Connection and the fields it names, Keep-Alive,
// Proxy-Connection, Proxy-Authenticate, Proxy-Authentication-Info, TE, Trailer,
// Transfer-Encoding, Upgrade) removed, as well as the fields named by
// no-cache="..." and private="..." and the Age header (it is recomputed on
// every hit). Each value slice of the copy has len == cap, so that appending
// to a slice taken from it never writes into the stored array.
func StoredHeader(h http.Header, cc Directives) http.Header { panic("unimplemented") }

// InvalidationTargets lists the URLs a shared cache must invalidate after an
// unsafe request to reqURL got a non-error response (RFC 9111 §4.4): the
// target URI, plus Location and Content-Location resolved against it when
// they have the same scheme and host (host compared case-insensitively,
// default port ignored). Cross-origin targets are left out.
func InvalidationTargets(reqURL *url.URL, respHeader http.Header) []*url.URL {
	panic("unimplemented")
}

// IsUnsafe reports whether a request method is unsafe (RFC 9110 §9.2.1):
// anything but GET, HEAD, OPTIONS and TRACE.
func IsUnsafe(method string) bool { panic("unimplemented") }
