package policy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// StoreRules are the configurable parts of the storability decision.
type StoreRules struct {
	// Cacheable reports whether a status is "heuristically cacheable"
	// here (RFC 9110 §15.1): responses with it may be stored without
	// explicit freshness. Nil means the RFC default set: 200, 203, 204,
	// 300, 301, 308, 404, 405, 410, 414, 501 (DefaultCacheable).
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

// understoodStatus reports whether this cache understands the caching
// requirements of a final status (for must-understand, RFC 9111
// §5.2.2.3): the status codes RFC 9110 defines, except 206 and 304, which
// this cache never stores.
func understoodStatus(status int) bool {
	switch {
	case status >= 200 && status <= 205:
		return true
	case status >= 300 && status <= 308:
		return status != 304 && status != 305 && status != 306
	case status >= 400 && status <= 417:
		return true
	case status == 421 || status == 422 || status == 426:
		return true
	case status >= 500 && status <= 505:
		return true
	}
	return false
}

// namesField reports whether fields contains the canonical name.
func namesField(fields []string, name string) bool {
	return slices.Contains(fields, name)
}

// Storable decides whether a shared cache may store the response to a GET
// request (RFC 9111 §3, §3.5). reason is a short, human-readable
// explanation when ok is false (e.g. "no-store", "private",
// "Set-Cookie", "status 206", "Vary: *", "Authorization without public",
// "no explicit freshness for status 302").
//
// Rules: the status must be final and not 206 or 304; no no-store on request
// or response (a response no-store is ignored when must-understand is
// present and the status is understood, §5.2.2.3; must-understand with a
// status this cache does not understand is never stored); no unqualified
// private; a request carrying Authorization only when the response has
// public, s-maxage or must-revalidate; no "Vary: *"; no Set-Cookie unless
// rules.StoreSetCookie or the response names Set-Cookie in no-cache="..." or
// private="..." (StoredHeader then strips it); and the response must have
// explicit freshness (max-age, s-maxage, Expires unless the directives are
// Targeted), public, or a heuristically cacheable status, or a validator
// with no-cache, or rules.ForcedTTL. A response whose freshness is
// explicitly zero (max-age=0, no-cache) is still storable when it carries a
// validator (ETag or Last-Modified), so that it can be revalidated; an
// unqualified no-cache without a validator is not stored (every use would be
// a full fetch) unless rules.ForcedTTL.
func Storable(reqHeader http.Header, reqCC Directives, status int, respHeader http.Header, respCC Directives, rules StoreRules) (ok bool, reason string) {
	if status < 200 || status > 999 || status == 206 || status == 304 {
		return false, "status " + strconv.Itoa(status)
	}
	if reqCC.NoStore {
		return false, "request no-store"
	}
	if respCC.MustUnderstand && !understoodStatus(status) {
		return false, "must-understand with status " + strconv.Itoa(status)
	}
	if respCC.NoStore && !respCC.MustUnderstand {
		return false, "no-store"
	}
	if respCC.Private {
		return false, "private"
	}
	if len(reqHeader.Values("Authorization")) > 0 && !respCC.Public && !respCC.HasSMaxAge && !respCC.MustRevalidate {
		return false, "Authorization without public"
	}
	if _, star := VaryNames(respHeader); star {
		return false, "Vary: *"
	}
	if !rules.StoreSetCookie && len(respHeader.Values("Set-Cookie")) > 0 &&
		!namesField(respCC.NoCacheFields, "Set-Cookie") && !namesField(respCC.PrivateFields, "Set-Cookie") {
		return false, "Set-Cookie"
	}
	if rules.ForcedTTL {
		return true, ""
	}
	validator := HasValidator(respHeader)
	if respCC.NoCache && !validator {
		return false, "no-cache without validator"
	}
	explicit := respCC.HasMaxAge || respCC.HasSMaxAge ||
		(!respCC.Targeted && len(respHeader.Values("Expires")) > 0)
	cacheable := rules.Cacheable
	if cacheable == nil {
		cacheable = DefaultCacheable
	}
	if explicit || respCC.Public || cacheable(status) || (respCC.NoCache && validator) {
		return true, ""
	}
	return false, "no explicit freshness for status " + strconv.Itoa(status)
}

// hopByHop are the fields that never go into storage (RFC 9111 §3.1, RFC
// 9110 §7.6.1), in canonical form.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authentication-Info", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopByHop(name string) bool {
	for _, f := range hopByHop {
		if f == name {
			return true
		}
	}
	return false
}

// connectionFields returns the canonical names listed in Connection.
func connectionFields(h http.Header) []string {
	var names []string
	for _, line := range h.Values("Connection") {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			if item = strings.Trim(item, " \t"); item != "" {
				names = append(names, textproto.CanonicalMIMEHeaderKey(item))
			}
		}
	}
	return names
}

// StoredHeader returns a copy of a response header fit to store (RFC 9111
// §3.1): hop-by-hop fields (Connection and the fields it names, Keep-Alive,
// Proxy-Connection, Proxy-Authenticate, Proxy-Authentication-Info, TE, Trailer,
// Transfer-Encoding, Upgrade) removed, as well as the fields named by
// no-cache="..." and private="..." and the Age header (it is recomputed on
// every hit). Each value slice of the copy has len == cap, so that appending
// to a slice taken from it never writes into the stored array. Keys of the
// copy are in canonical form.
func StoredHeader(h http.Header, cc Directives) http.Header {
	conn := connectionFields(h)
	skip := func(k string) bool {
		return k == "Age" || isHopByHop(k) || namesField(conn, k) ||
			namesField(cc.NoCacheFields, k) || namesField(cc.PrivateFields, k)
	}
	return copyHeader(h, nil, skip)
}

// copyHeader returns a copy of base with canonical keys, leaving out the
// keys for which skip is true, then sets every key of over (canonicalised)
// for which overSkip is false; values share one backing array and each
// slice has len == cap.
func copyHeader(base http.Header, over http.Header, skip func(string) bool, overSkip ...func(string) bool) http.Header {
	nv := 0
	for _, v := range base {
		nv += len(v)
	}
	for _, v := range over {
		nv += len(v)
	}
	all := make([]string, nv)
	out := make(http.Header, len(base)+len(over))
	put := func(k string, v []string) {
		n := copy(all, v)
		out[k] = all[:n:n]
		all = all[n:]
	}
	for k, v := range base {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if skip(ck) {
			continue
		}
		if prev, dup := out[ck]; dup {
			// Non-canonical duplicate keys: merge into a fresh slice.
			merged := make([]string, 0, len(prev)+len(v))
			merged = append(append(merged, prev...), v...)
			out[ck] = slices.Clip(merged)
			continue
		}
		put(ck, v)
	}
	replaced := map[string]bool{}
	for k, v := range over {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if len(overSkip) > 0 && overSkip[0](ck) {
			continue
		}
		if prev, dup := out[ck]; dup && replaced[ck] {
			merged := make([]string, 0, len(prev)+len(v))
			merged = append(append(merged, prev...), v...)
			out[ck] = slices.Clip(merged)
			continue
		}
		replaced[ck] = true
		put(ck, v)
	}
	return out
}

// Freshen returns the stored header updated with a 304 (or HEAD) response's
// header as RFC 9111 §3.2 and §4.3.4 require: every field in fresh replaces
// the stored one, except Content-Length, Content-Encoding, Transfer-Encoding,
// Content-Range, Content-MD5 and ETag (they describe the stored body: a 304
// with another strong ETag selects nothing to update, RFC 9111 §4.3.4) and the hop-by-hop fields (and those fresh's Connection
// names), which are kept as stored. Fields that are never stored are not
// taken from fresh either: Age, the fields fresh names in no-cache="..." or
// private="...", and Set-Cookie (it was meant for the one client whose
// request caused the revalidation). stored is not modified; the result has
// canonical keys and value slices with len == cap.
func Freshen(stored, fresh http.Header) http.Header {
	conn := connectionFields(fresh)
	cc := ParseCacheControl(fresh.Values("Cache-Control"))
	keep := func(k string) bool {
		switch k {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Range", "Content-Md5", "Etag", "Age", "Set-Cookie":
			return true
		}
		return isHopByHop(k) || namesField(conn, k) ||
			namesField(cc.NoCacheFields, k) || namesField(cc.PrivateFields, k)
	}
	freshKeys := make(map[string]bool, len(fresh))
	for k := range fresh {
		if ck := textproto.CanonicalMIMEHeaderKey(k); !keep(ck) {
			freshKeys[ck] = true
		}
	}
	replaced := func(k string) bool { return freshKeys[k] }
	return copyHeader(stored, fresh, replaced, keep)
}
