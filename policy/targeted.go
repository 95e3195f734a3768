package policy

import (
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// ParseTargeted parses the lines of a targeted cache-control field such as
// CDN-Cache-Control (RFC 9213 §2.1), which is a Structured Field Dictionary
// (RFC 8941 §3.2) whose members are cache response directives:
//
//   - max-age, s-maxage, stale-while-revalidate and stale-if-error take a
//     non-negative Integer (values above 2^31 seconds saturate at MaxDelta,
//     RFC 9111 §1.2.2);
//   - no-store, no-cache, private, public, must-revalidate,
//     proxy-revalidate, must-understand, no-transform and immutable are
//     Booleans (a bare key is true, "?0" means the directive is absent);
//     no-cache and private may instead carry a String listing field names,
//     their qualified form;
//   - parameters are ignored, and so are unknown directives whatever their
//     value.
//
// ok is false when the field must be ignored, so that the cache falls back
// to Cache-Control (RFC 9213 §2.1): the lines do not form a valid
// Dictionary (an unknown bare-item type, upper-case keys, a trailing
// comma, whitespace around "="…), a known directive has a value of
// another type (max-age="60", max-age=1.5, max-age=-1, an Inner List), or
// the field has no member at all. On success d.Targeted is set, so that
// Expires is ignored (RFC 9213 §2.2).
func ParseTargeted(fields []string) (d Directives, ok bool) {
	if len(fields) == 0 {
		return Directives{}, false
	}
	dict, err := httpsfv.UnmarshalDictionary(fields)
	if err != nil {
		return Directives{}, false
	}
	names := dict.Names()
	if len(names) == 0 {
		return Directives{}, false
	}
	for _, name := range names {
		m, _ := dict.Get(name)
		id := directiveID(name)
		if id == dirUnknown {
			continue
		}
		item, isItem := m.(httpsfv.Item)
		if !isItem {
			return Directives{}, false
		}
		if !d.applyTargeted(id, item.Value) {
			return Directives{}, false
		}
	}
	d.Targeted = true
	return d, true
}

// applyTargeted sets the directive id from a targeted field's bare item v;
// false when v has the wrong type for it.
func (d *Directives) applyTargeted(id int, v any) bool {
	switch id {
	case dirMaxAge, dirSMaxAge, dirSWR, dirSIE:
		n, ok := v.(int64)
		if !ok || n < 0 {
			return false
		}
		secs := MaxDelta
		if n < int64(MaxDelta/time.Second) {
			secs = time.Duration(n) * time.Second
		}
		switch id {
		case dirMaxAge:
			d.MaxAge, d.HasMaxAge = secs, true
		case dirSMaxAge:
			d.SMaxAge, d.HasSMaxAge = secs, true
		case dirSWR:
			d.StaleWhileRevalidate, d.HasSWR = secs, true
		case dirSIE:
			d.StaleIfError, d.HasSIE = secs, true
		}
		return true
	case dirNoCache, dirPrivate:
		if s, ok := v.(string); ok {
			list, qualified := targetedFieldList(s)
			switch {
			case !qualified && id == dirNoCache:
				d.NoCache = true
			case !qualified:
				d.Private = true
			case id == dirNoCache:
				d.NoCacheFields = appendNew(d.NoCacheFields, list)
			default:
				d.PrivateFields = appendNew(d.PrivateFields, list)
			}
			return true
		}
	case dirMinFresh, dirMaxStale, dirOnlyIfCached:
		return true // request directives: no meaning in a response
	}
	b, ok := v.(bool)
	if !ok {
		return false
	}
	if b {
		d.setFlag(id)
	}
	return true
}

// targetedFieldList reads the field names of a qualified no-cache or
// private String: false (the unqualified, more restrictive form) when the
// list is empty or holds something that is not a field name.
func targetedFieldList(s string) ([]string, bool) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		if !validToken(item) {
			return nil, false
		}
		out = append(out, textproto.CanonicalMIMEHeaderKey(item))
	}
	return out, len(out) > 0
}

// appendNew appends the elements of add that dst does not hold yet.
func appendNew(dst, add []string) []string {
	for _, s := range add {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}
