// Package policy holds the HTTP caching decisions of RFC 9111 (and RFC 9110,
// RFC 5861, RFC 9213) as pure functions over headers, status codes and times.
// It imports only the standard library and a Structured Fields parser
// (RFC 8941, for the targeted fields of RFC 9213), never reads the clock
// (callers pass times in) and does no I/O, so every rule is table-tested on
// its own.
//
// The cache is a shared cache throughout: s-maxage and proxy-revalidate apply,
// private responses are never stored.
//
// The files follow the RFC: cachecontrol.go parses Cache-Control (§5.2),
// store.go decides what is stored and how (§3), freshness.go computes
// freshness, age and reuse (§4.2, RFC 5861), vary.go selects variants
// (§4.1), conditional.go handles validation (§4.3) and invalidate.go
// invalidation (§4.4). httpdate.go parses HTTP-dates (RFC 9110 §5.6.7),
// targeted.go the targeted fields (RFC 9213) and language.go matches
// Accept-Language to Content-Language (RFC 9110 §12.5.4, RFC 4647).
package policy
