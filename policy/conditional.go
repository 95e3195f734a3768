package policy

import (
	"net/http"
	"strings"
	"time"
)

// ClientNotModified evaluates a client's conditional GET/HEAD against a stored
// response header (RFC 9110 §13.1.2, §13.1.3, §13.2.2, RFC 9111 §4.3.2):
// If-None-Match (weak comparison, "*" matches any stored response) takes
// precedence over If-Modified-Since, which is then ignored entirely. An
// If-Modified-Since that is not a valid HTTP-date or has more than one field
// line is ignored; otherwise it is compared, with one-second precision, to
// the stored Last-Modified, or Date when there is no valid Last-Modified.
// It returns true when a 304 should be sent. If-Match and
// If-Unmodified-Since are for the origin and are not evaluated here.
func ClientNotModified(reqHeader, stored http.Header) bool {
	if inm := reqHeader.Values("If-None-Match"); len(inm) > 0 {
		return noneMatchFails(inm, stored.Values("Etag"))
	}
	ims := reqHeader.Values("If-Modified-Since")
	if len(ims) != 1 {
		return false
	}
	since, ok := ParseHTTPDate(strings.Trim(ims[0], " \t"))
	if !ok {
		return false
	}
	mod, ok := headerDate(stored, "Last-Modified")
	if !ok {
		if mod, ok = headerDate(stored, "Date"); !ok {
			return false
		}
	}
	return !mod.Truncate(time.Second).After(since.Truncate(time.Second))
}

// noneMatchFails reports whether If-None-Match evaluates to false (304)
// against the stored ETag, using the weak comparison.
func noneMatchFails(inm, etags []string) bool {
	var stored string
	if len(etags) > 0 {
		tag, rest, ok := scanETag(strings.Trim(etags[0], " \t"))
		if ok && strings.Trim(rest, " \t") == "" {
			stored = tag
		}
	}
	for _, line := range inm {
		s := line
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true // a stored response exists
			}
			tag, rest, ok := scanETag(s)
			if !ok {
				break // malformed: ignore the rest of this line
			}
			if stored != "" && tag == stored {
				return true
			}
			s = rest
		}
	}
	return false
}

// scanETag reads an entity-tag (RFC 9110 §8.8.3) at the start of s and
// returns its opaque-tag without the weakness prefix (for the weak
// comparison), and the text after it.
func scanETag(s string) (opaque, rest string, ok bool) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// ConditionalHeaders returns the validators to send when revalidating a
// stored response (RFC 9111 §4.3.1): If-None-Match from its ETag and
// If-Modified-Since from its Last-Modified. Values are "" when the stored
// response has no such validator, or when the stored Last-Modified is not a
// valid HTTP-date.
func ConditionalHeaders(stored http.Header) (ifNoneMatch, ifModifiedSince string) {
	if v := stored.Values("Etag"); len(v) > 0 {
		ifNoneMatch = strings.Trim(v[0], " \t")
	}
	if v := stored.Values("Last-Modified"); len(v) > 0 {
		lm := strings.Trim(v[0], " \t")
		if _, ok := ParseHTTPDate(lm); ok {
			ifModifiedSince = lm
		}
	}
	return ifNoneMatch, ifModifiedSince
}
