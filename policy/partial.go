package policy

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ByteRange is an inclusive range of byte positions, First ≤ Last (RFC 9110
// §14.1.1).
type ByteRange struct{ First, Last int64 }

// Len is the number of bytes in the range.
func (b ByteRange) Len() int64 { return b.Last - b.First + 1 }

// String formats the range as in a Content-Range: "first-last".
func (b ByteRange) String() string {
	return strconv.FormatInt(b.First, 10) + "-" + strconv.FormatInt(b.Last, 10)
}

// ContentRange parses the Content-Range of a single-part 206 (RFC 9110
// §14.4): "bytes first-last/complete". ok is false for any other unit, an
// unknown complete length ("/*"), the unsatisfied-range form ("*/n"), a
// last position before the first, or one at or past the complete length:
// such a part cannot be placed in its representation.
func ContentRange(v string) (r ByteRange, complete int64, ok bool) {
	v = strings.Trim(v, " \t")
	unit, rest, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return ByteRange{}, 0, false
	}
	rng, size, found := strings.Cut(strings.TrimLeft(rest, " "), "/")
	if !found {
		return ByteRange{}, 0, false
	}
	first, last, found := strings.Cut(rng, "-")
	if !found {
		return ByteRange{}, 0, false
	}
	var okF, okL, okN bool
	r.First, okF = digits(first)
	r.Last, okL = digits(last)
	complete, okN = digits(size)
	if !okF || !okL || !okN || r.Last < r.First || r.Last >= complete {
		return ByteRange{}, 0, false
	}
	return r, complete, true
}

// FormatContentRange is the Content-Range of r in a representation of
// complete bytes.
func FormatContentRange(r ByteRange, complete int64) string {
	return "bytes " + r.String() + "/" + strconv.FormatInt(complete, 10)
}

// digits parses a non-empty run of ASCII digits (no sign, no space) that
// fits in an int64.
func digits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ParseRange reads a Range field value for a representation of size bytes
// (RFC 9110 §14.1.2, §14.2) and returns its satisfiable ranges in request
// order, clipped to the representation: "a-b" (b past the end means the
// end), "a-" (to the end) and the suffix "-n" (the last n bytes, all of them
// when n ≥ size). A range starting at or past size, and "-0", are
// unsatisfiable and left out: an empty result with ok true means 416. ok is
// false when the value is not a valid bytes range set (another unit, a
// syntax error, a last position before the first), which a cache then
// passes to the origin.
func ParseRange(v string, size int64) (ranges []ByteRange, ok bool) {
	unit, set, found := strings.Cut(strings.Trim(v, " \t"), "=")
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, false
	}
	seen := false
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue // empty list elements are allowed (RFC 9110 §5.6.1)
		}
		seen = true
		first, last, found := strings.Cut(spec, "-")
		if !found {
			return nil, false
		}
		if first == "" {
			n, ok := digits(last)
			if !ok {
				return nil, false
			}
			if n == 0 || size == 0 {
				continue
			}
			ranges = append(ranges, ByteRange{max(0, size-n), size - 1})
			continue
		}
		a, ok := digits(first)
		if !ok {
			return nil, false
		}
		b := size - 1
		if last != "" {
			if b, ok = digits(last); !ok || b < a {
				return nil, false
			}
		}
		if a >= size {
			continue
		}
		ranges = append(ranges, ByteRange{a, min(b, size-1)})
	}
	if !seen {
		return nil, false
	}
	return ranges, true
}

// Part is a stored part of a representation: its range and its bytes
// (len(Data) == Range.Len()).
type Part struct {
	Range ByteRange
	Data  []byte
}

// MergeParts combines parts of one representation (RFC 9111 §3.4: parts
// with the same strong validator) into the fewest parts, sorted, with
// overlapping and adjacent ranges joined. Where parts overlap, the bytes of
// the earlier part in the input are kept (they are the same bytes, the
// validator being strong). The result shares no memory with the input.
func MergeParts(parts []Part) []Part {
	sorted := slices.Clone(parts)
	slices.SortStableFunc(sorted, func(a, b Part) int { return cmp.Compare(a.Range.First, b.Range.First) })
	var out []Part
	for _, p := range sorted {
		if n := len(out); n > 0 && p.Range.First <= out[n-1].Range.Last+1 {
			cur := &out[n-1]
			if p.Range.Last > cur.Range.Last {
				cur.Data = append(cur.Data, p.Data[cur.Range.Last+1-p.Range.First:]...)
				cur.Range.Last = p.Range.Last
			}
			continue
		}
		out = append(out, Part{Range: p.Range, Data: append([]byte(nil), p.Data...)})
	}
	return out
}

// Covering returns the index of the part whose range contains r, or -1.
func Covering(parts []ByteRange, r ByteRange) int {
	for i, p := range parts {
		if p.First <= r.First && r.Last <= p.Last {
			return i
		}
	}
	return -1
}

// StrongValidator returns the strong validator of a response header (RFC
// 9110 §8.8.1): its ETag when that is a single strong entity-tag, else its
// Last-Modified when that is strong by RFC 9110 §8.8.2.2 — at least one
// second before its Date — as "lm:" and the date. ok is false when the
// response has neither: a part of it can then not be combined with others
// or reused (RFC 9111 §3.3, §3.4). An ETag that is weak or invalid means no
// strong validator, whatever Last-Modified says.
func StrongValidator(h http.Header) (v string, ok bool) {
	if tags := h.Values("Etag"); len(tags) > 0 {
		tag := strings.Trim(tags[0], " \t")
		if len(tags) > 1 || strings.HasPrefix(tag, "W/") {
			return "", false
		}
		opaque, rest, ok := scanETag(tag)
		if !ok || rest != "" {
			return "", false
		}
		return opaque, true
	}
	mod, ok := headerDate(h, "Last-Modified")
	if !ok {
		return "", false
	}
	date, ok := headerDate(h, "Date")
	if !ok || date.Sub(mod) < time.Second {
		return "", false
	}
	return "lm:" + mod.UTC().Format(http.TimeFormat), true
}

// SameStrongValidator reports whether two responses carry the same strong
// validator, so that their parts belong to one representation (RFC 9111
// §3.4).
func SameStrongValidator(a, b http.Header) bool {
	va, ok := StrongValidator(a)
	if !ok {
		return false
	}
	vb, ok := StrongValidator(b)
	return ok && va == vb
}

// IfRangeMatches evaluates a request's If-Range against a stored response
// header (RFC 9110 §13.1.5): an entity-tag matches when it is strong and
// equal to the stored ETag (strong comparison); an HTTP-date matches when
// the stored Last-Modified is a strong validator and equal to it. No
// If-Range matches. When it does not match, the client asked for the whole
// representation.
func IfRangeMatches(reqHeader, stored http.Header) bool {
	vals := reqHeader.Values("If-Range")
	if len(vals) == 0 {
		return true
	}
	if len(vals) > 1 {
		return false
	}
	ir := strings.Trim(vals[0], " \t")
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		if strings.HasPrefix(ir, "W/") {
			return false
		}
		tag, rest, ok := scanETag(ir)
		if !ok || rest != "" {
			return false
		}
		v, ok := StrongValidator(stored)
		return ok && v == tag && len(stored.Values("Etag")) > 0
	}
	// an HTTP-date (RFC 9110 §13.1.5)
	t, ok := ParseHTTPDate(ir)
	if !ok {
		return false
	}
	if len(stored.Values("Etag")) > 0 {
		// the stored validator is the ETag; a date matches only a
		// strong Last-Modified
		mod, ok := headerDate(stored, "Last-Modified")
		date, okD := headerDate(stored, "Date")
		return ok && okD && date.Sub(mod) >= time.Second && mod.Equal(t)
	}
	v, ok := StrongValidator(stored)
	return ok && v == "lm:"+t.UTC().Format(http.TimeFormat)
}
