package policy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
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
	NoStore         bool     // no-store: never store (§5.2.1.5, §5.2.2.5)
	NoCache         bool     // unqualified no-cache: revalidate before every use (§5.2.1.4, §5.2.2.4)
	NoCacheFields   []string // no-cache="a, b": canonical header names; NoCache stays false when only the qualified form is present
	Private         bool     // unqualified private: a shared cache must not store (§5.2.2.7)
	PrivateFields   []string // private="a, b": canonical header names; Private stays false when only the qualified form is present
	Public          bool     // public: storable even with Authorization or a status that is not heuristically cacheable (§5.2.2.9)
	MustRevalidate  bool     // must-revalidate: never served stale (§5.2.2.2)
	ProxyRevalidate bool     // proxy-revalidate: must-revalidate for shared caches (§5.2.2.8)
	MustUnderstand  bool     // must-understand: store only understood statuses, then ignore no-store (§5.2.2.3)
	NoTransform     bool     // no-transform: do not transform the content (§5.2.2.6, §5.2.1.6)
	Immutable       bool     // immutable: will not change while fresh (RFC 8246)
	OnlyIfCached    bool     // request only-if-cached: answer from the cache or 504 (§5.2.1.7)

	MaxAge      time.Duration // max-age, whole seconds; 0 when invalid or conflicting (§5.2.1.1, §5.2.2.1)
	HasMaxAge   bool          // max-age was present
	SMaxAge     time.Duration // s-maxage, whole seconds; 0 when invalid or conflicting (§5.2.2.10)
	HasSMaxAge  bool          // s-maxage was present
	MinFresh    time.Duration // request min-fresh, whole seconds (§5.2.1.3)
	HasMinFresh bool          // min-fresh was present and valid
	// MaxStale is the request's max-stale=N (§5.2.1.2). A bare max-stale
	// sets HasMaxStale and MaxStaleAny, with MaxStale at its ceiling
	// MaxDelta.
	MaxStale             time.Duration
	HasMaxStale          bool          // max-stale was present (bare or valid)
	MaxStaleAny          bool          // max-stale without a value: any staleness is accepted
	StaleWhileRevalidate time.Duration // stale-while-revalidate, whole seconds (RFC 5861 §3)
	HasSWR               bool          // stale-while-revalidate was present and valid
	StaleIfError         time.Duration // stale-if-error, whole seconds (RFC 5861 §4)
	HasSIE               bool          // stale-if-error was present and valid

	// Targeted is set by ResponseDirectives and ParseTargeted when the
	// directives come from a targeted field such as CDN-Cache-Control
	// instead of Cache-Control: the Expires header is then ignored (RFC
	// 9213 §2.2) by FreshnessLifetime and Storable.
	Targeted bool
}

// MaxDelta is the largest delta-seconds value a directive or Age can carry:
// larger values saturate at 2^31 seconds (RFC 9111 §1.2.2).
const MaxDelta = time.Duration(1<<31) * time.Second

// ParseCacheControl parses every line of a Cache-Control-like field (pass
// h.Values(name) or h[name]). Delta-seconds that are invalid (negative, not
// digits) make that directive count as absent, except max-age/s-maxage, for
// which an invalid value is treated as 0 (stale), as RFC 9111 §4.2.1 and
// §1.2.2 advise. Values too large saturate at 2^31 seconds (§1.2.2). When
// max-age (or s-maxage) appears more than once with different values, the
// response is treated as stale (value 0), per §4.2.1. Other repeated
// delta-seconds directives keep their most restrictive value (the largest
// min-fresh, the smallest max-stale, stale-while-revalidate and
// stale-if-error), as §4.2.1 advises for conflicting directives.
//
// Arguments may be tokens or quoted strings (max-age="5" is accepted, as
// §5.2 asks of recipients). An element with trailing garbage
// ("max-age=5 x") or an unterminated quoted string has an invalid argument.
// no-cache and private with an argument list that is empty or malformed
// count as their unqualified (more restrictive) form.
func ParseCacheControl(fields []string) Directives {
	d, _ := parseCacheControl(fields)
	return d
}

// directive identifiers.
const (
	dirUnknown = iota
	dirNoStore
	dirNoCache
	dirPrivate
	dirPublic
	dirMustRevalidate
	dirProxyRevalidate
	dirMustUnderstand
	dirNoTransform
	dirImmutable
	dirOnlyIfCached
	dirMaxAge
	dirSMaxAge
	dirMinFresh
	dirMaxStale
	dirSWR
	dirSIE
)

// directiveID maps a directive name, in any case, to its identifier without
// allocating.
func directiveID(name string) int {
	const maxLen = len("stale-while-revalidate")
	if len(name) > maxLen || len(name) < len("public") {
		return dirUnknown
	}
	var buf [maxLen]byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(name)]) {
	case "no-store":
		return dirNoStore
	case "no-cache":
		return dirNoCache
	case "private":
		return dirPrivate
	case "public":
		return dirPublic
	case "must-revalidate":
		return dirMustRevalidate
	case "proxy-revalidate":
		return dirProxyRevalidate
	case "must-understand":
		return dirMustUnderstand
	case "no-transform":
		return dirNoTransform
	case "immutable":
		return dirImmutable
	case "only-if-cached":
		return dirOnlyIfCached
	case "max-age":
		return dirMaxAge
	case "s-maxage":
		return dirSMaxAge
	case "min-fresh":
		return dirMinFresh
	case "max-stale":
		return dirMaxStale
	case "stale-while-revalidate":
		return dirSWR
	case "stale-if-error":
		return dirSIE
	}
	return dirUnknown
}

// ccArg is the argument of one directive as found in the field.
type ccArg struct {
	present bool   // "=" was seen
	valid   bool   // well formed: terminated quote, no trailing garbage
	raw     string // token, or quoted-string content still escaped
	escaped bool   // raw contains backslash escapes
}

// value returns the argument with quoted-pair escapes removed.
func (a ccArg) value() string {
	if !a.escaped {
		return a.raw
	}
	var b strings.Builder
	b.Grow(len(a.raw))
	for i := 0; i < len(a.raw); i++ {
		c := a.raw[i]
		if c == '\\' && i+1 < len(a.raw) {
			i++
			c = a.raw[i]
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func skipOWS(s string, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

// skipElement returns the index of the next comma outside a quoted string
// at or after i, or len(s).
func skipElement(s string, i int) int { return skipTo(s, i, ',') }

// skipTo returns the index of the next sep outside a quoted string at or
// after i, or len(s).
func skipTo(s string, i int, sep byte) int {
	inQuote := false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			return i
		}
	}
	return len(s)
}

// ccState tracks what a single pass needs beyond Directives.
type ccState struct {
	maxAgeConflict  bool
	sMaxAgeConflict bool
}

// parseCacheControl parses fields and also returns how many directives
// (known or not) it found.
func parseCacheControl(fields []string) (d Directives, n int) {
	var st ccState
	for _, line := range fields {
		i := 0
		for i < len(line) {
			c := line[i]
			if isOWS(c) || c == ',' {
				i++
				continue
			}
			start := i
			for i < len(line) {
				c = line[i]
				if c == '=' || c == ',' || c == '"' || isOWS(c) {
					break
				}
				i++
			}
			name := line[start:i]
			var arg ccArg
			j := skipOWS(line, i)
			if j < len(line) && line[j] == '=' {
				arg.present, arg.valid = true, true
				i = skipOWS(line, j+1)
				if i < len(line) && line[i] == '"' {
					i++
					s := i
					for i < len(line) && line[i] != '"' {
						if line[i] == '\\' {
							arg.escaped = true
							i++
						}
						i++
					}
					if i >= len(line) {
						arg.valid = false
						arg.raw = line[s:]
						i = len(line)
					} else {
						arg.raw = line[s:i]
						i++
					}
				} else {
					s := i
					for i < len(line) && line[i] != ',' && line[i] != '"' && !isOWS(line[i]) {
						i++
					}
					arg.raw = line[s:i]
				}
			} else {
				i = j
			}
			// Anything but a comma or the end after the element makes it
			// malformed.
			if k := skipOWS(line, i); k < len(line) && line[k] != ',' {
				arg.valid = false
				i = skipElement(line, k)
			} else {
				i = k
			}
			if name == "" {
				continue
			}
			n++
			d.apply(name, arg, &st)
		}
	}
	if st.maxAgeConflict {
		d.MaxAge = 0
	}
	if st.sMaxAgeConflict {
		d.SMaxAge = 0
	}
	return d, n
}

// deltaSeconds parses a delta-seconds argument (RFC 9111 §1.2.2),
// saturating at MaxDelta.
func deltaSeconds(a ccArg) (time.Duration, bool) {
	if !a.present || !a.valid {
		return 0, false
	}
	s := a.raw
	if a.escaped {
		s = a.value()
	}
	return parseDelta(s)
}

// parseDelta parses 1*DIGIT as seconds, saturating at MaxDelta.
func parseDelta(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < 1<<31 {
			v = v*10 + int64(c-'0')
		}
	}
	if v > 1<<31 {
		v = 1 << 31
	}
	return time.Duration(v) * time.Second, true
}

func (d *Directives) apply(name string, a ccArg, st *ccState) {
	switch id := directiveID(name); id {
	case dirNoCache:
		if f, ok := fieldList(a, d.NoCacheFields); ok {
			d.NoCacheFields = f
		} else {
			d.NoCache = true
		}
	case dirPrivate:
		if f, ok := fieldList(a, d.PrivateFields); ok {
			d.PrivateFields = f
		} else {
			d.Private = true
		}
	case dirMaxAge:
		v, _ := deltaSeconds(a) // invalid: 0, stale
		if d.HasMaxAge && d.MaxAge != v {
			st.maxAgeConflict = true
		}
		d.MaxAge, d.HasMaxAge = v, true
	case dirSMaxAge:
		v, _ := deltaSeconds(a)
		if d.HasSMaxAge && d.SMaxAge != v {
			st.sMaxAgeConflict = true
		}
		d.SMaxAge, d.HasSMaxAge = v, true
	case dirMinFresh:
		if v, ok := deltaSeconds(a); ok && (!d.HasMinFresh || v > d.MinFresh) {
			d.MinFresh, d.HasMinFresh = v, true
		}
	case dirMaxStale:
		if !a.present {
			if !d.HasMaxStale {
				d.MaxStale, d.HasMaxStale, d.MaxStaleAny = MaxDelta, true, true
			}
		} else if v, ok := deltaSeconds(a); ok && (!d.HasMaxStale || d.MaxStaleAny || v < d.MaxStale) {
			d.MaxStale, d.HasMaxStale, d.MaxStaleAny = v, true, false
		}
	case dirSWR:
		if v, ok := deltaSeconds(a); ok && (!d.HasSWR || v < d.StaleWhileRevalidate) {
			d.StaleWhileRevalidate, d.HasSWR = v, true
		}
	case dirSIE:
		if v, ok := deltaSeconds(a); ok && (!d.HasSIE || v < d.StaleIfError) {
			d.StaleIfError, d.HasSIE = v, true
		}
	default:
		d.setFlag(id)
	}
}

// setFlag sets a directive that takes no argument (unknown ids: nothing).
func (d *Directives) setFlag(id int) {
	switch id {
	case dirNoStore:
		d.NoStore = true
	case dirNoCache:
		d.NoCache = true
	case dirPrivate:
		d.Private = true
	case dirPublic:
		d.Public = true
	case dirMustRevalidate:
		d.MustRevalidate = true
	case dirProxyRevalidate:
		d.ProxyRevalidate = true
	case dirMustUnderstand:
		d.MustUnderstand = true
	case dirNoTransform:
		d.NoTransform = true
	case dirImmutable:
		d.Immutable = true
	case dirOnlyIfCached:
		d.OnlyIfCached = true
	}
}

// fieldList parses the argument of a qualified no-cache or private into
// canonical field names appended to dst (deduplicated). ok is false when
// the directive is unqualified or its list is malformed or empty, so that
// the caller applies the unqualified form.
func fieldList(a ccArg, dst []string) ([]string, bool) {
	if !a.present || !a.valid {
		return dst, false
	}
	s := a.value()
	added := false
	for s != "" {
		var item string
		item, s, _ = strings.Cut(s, ",")
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		if !validToken(item) {
			return dst, false
		}
		item = textproto.CanonicalMIMEHeaderKey(item)
		added = true
		dup := slices.Contains(dst, item)
		if !dup {
			dst = append(dst, item)
		}
	}
	return dst, added
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// ResponseDirectives returns the directives that govern this cache for a
// response: per RFC 9213 §2.2, the first field in targets (e.g.
// "CDN-Cache-Control") that is present and valid wins over Cache-Control,
// and then d.Targeted is set so that Expires is ignored; otherwise
// Cache-Control is used. A targeted field is parsed with ParseTargeted as a
// Structured Field Dictionary; one that is not valid, or is empty, is
// ignored as if absent (RFC 9213 §2.1). Surrogate-Control (Edge
// Architecture 1.0, not a Structured Field; see SurrogateControl) is parsed
// with the Cache-Control syntax and counts when it holds at least one
// directive. field names which one was used, as spelled in targets or
// "Cache-Control"; it is "" when the response has neither.
func ResponseDirectives(h http.Header, targets []string) (d Directives, field string) {
	for _, t := range targets {
		v := h.Values(t)
		if len(v) == 0 {
			continue
		}
		if textproto.CanonicalMIMEHeaderKey(t) == "Surrogate-Control" {
			if td, n := parseCacheControl(v); n > 0 {
				td.Targeted = true
				return td, t
			}
			continue
		}
		if td, ok := ParseTargeted(v); ok {
			return td, t
		}
	}
	v := h.Values("Cache-Control")
	if len(v) == 0 {
		return Directives{}, ""
	}
	return ParseCacheControl(v), "Cache-Control"
}

// RequestDirectives parses a request's Cache-Control; when the request has no
// Cache-Control field (or only empty ones) but has "Pragma: no-cache", it is
// treated as Cache-Control: no-cache (RFC 9111 §5.4 compatibility).
func RequestDirectives(h http.Header) Directives {
	v := h.Values("Cache-Control")
	for _, line := range v {
		if strings.Trim(line, " \t,") != "" {
			return ParseCacheControl(v)
		}
	}
	var d Directives
	for _, line := range h.Values("Pragma") {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			if strings.EqualFold(strings.Trim(item, " \t"), "no-cache") {
				d.NoCache = true
				return d
			}
		}
	}
	return d
}

// SurrogateControl turns the lines of an Edge Architecture Surrogate-Control
// field into Cache-Control syntax for the surrogate named token: directives
// targeted at another device (";other") are dropped, the ";token" suffix of
// those targeted at this one is removed, and the "+stale" part of
// "max-age=N+M" is dropped (the lifetime is N).
func SurrogateControl(lines []string, token string) []string {
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		var kept []string
		for _, item := range splitList(line) {
			d, target, targeted := strings.Cut(item, ";")
			if targeted && !strings.EqualFold(strings.TrimSpace(target), token) {
				continue
			}
			d = strings.TrimSpace(d)
			if name, val, ok := strings.Cut(d, "="); ok && strings.EqualFold(strings.TrimSpace(name), "max-age") {
				if n, _, plus := strings.Cut(val, "+"); plus {
					d = name + "=" + n
				}
			}
			kept = append(kept, d)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ", "))
		}
	}
	return out
}

// splitList splits a field line at commas that are not inside quotes.
func splitList(line string) []string {
	var items []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				items = append(items, line[start:i])
				start = i + 1
			}
		}
	}
	items = append(items, line[start:])
	out := items[:0]
	for _, it := range items {
		if strings.TrimSpace(it) != "" {
			out = append(out, it)
		}
	}
	return out
}
