package policy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// VaryNames returns the field names listed by the response's Vary header(s),
// in canonical form, in order, deduplicated; star reports "Vary: *" in any
// of them (names are still returned).
func VaryNames(h http.Header) (names []string, star bool) {
	for _, line := range h.Values("Vary") {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			item = strings.Trim(item, " \t")
			switch item {
			case "":
				continue
			case "*":
				star = true
				continue
			}
			item = textproto.CanonicalMIMEHeaderKey(item)
			if !slices.Contains(names, item) {
				names = append(names, item)
			}
		}
	}
	return names, star
}

// How the elements of a selecting field are put in order (RFC 9111 §4.1
// lets a cache normalise a field value when it knows the field's
// semantics).
const (
	orderAsSent = iota // other fields: as sent, case kept
	orderSet           // lower-cased, sorted: the order means nothing
	orderByQ           // lower-cased, by q-value, as sent among equal q
)

// varyFieldOrder returns how the elements of the field name are ordered.
//
// Accept-Language, Accept and Accept-Charset are ordered by q-value with a
// stable sort: among equal q-values the order carries preference (RFC 9110
// §12.5.4 says so for Accept-Language; origins that pick the first of equal
// media ranges or charsets are common), so "en, fr" and "fr, en" are two
// variants, while "en;q=0.5, fr" and "fr, en;q=0.5" state the same
// preferences and share one.
//
// Accept-Encoding stays a set (sorted): every coding a client lists with a
// non-zero q-value is acceptable to it and gives the same content, and
// Caddy's encode breaks ties between equal q-values by its own prefer
// order, not the client's, so "gzip, br" and "br, gzip" get the same
// response from it and can share one stored copy.
func varyFieldOrder(name string) int {
	switch {
	case strings.EqualFold(name, "Accept-Encoding"):
		return orderSet
	case strings.EqualFold(name, "Accept-Language"), strings.EqualFold(name, "Accept"),
		strings.EqualFold(name, "Accept-Charset"):
		return orderByQ
	}
	return orderAsSent
}

// NormalizeVaryValue turns a request's values of one selecting header into
// the string compared between requests (RFC 9111 §4.1): all field lines
// joined with ", ", whitespace around list elements and at the ends
// removed, empty list elements dropped (commas inside quoted strings do not
// split elements). For Accept-Encoding, Accept, Accept-Language and
// Accept-Charset whitespace around ";" and "=" inside an element is
// removed and the elements are lower-cased; Accept-Encoding's elements are
// then sorted, so "gzip, br" and "br,gzip" select the same variant, and
// those of the other three are ordered by descending q-value keeping the
// order sent among equal q-values (see varyFieldOrder), so "en, fr" and
// "fr, en" select different variants. An absent header normalises to ""
// and matches only another absent (or empty) header.
func NormalizeVaryValue(name string, values []string) string {
	if len(values) == 0 {
		return ""
	}
	order := varyFieldOrder(name)
	lower := order != orderAsSent
	if len(values) == 1 && isTrimmedSimple(values[0], lower) {
		return values[0] // common case: nothing to do, no allocation
	}
	var elems []string
	for _, line := range values {
		for i := 0; i < len(line); {
			j := skipElement(line, i)
			e := strings.Trim(line[i:j], " \t")
			i = j + 1
			if e == "" {
				continue
			}
			if lower {
				e = normalizeElement(e)
			}
			elems = append(elems, e)
		}
	}
	switch order {
	case orderSet:
		slices.Sort(elems)
	case orderByQ:
		sortByQ(elems)
	}
	return strings.Trim(strings.Join(elems, ", "), " \t,")
}

// sortByQ orders normalised elements by descending q-value (RFC 9110
// §12.4.2; no q parameter is q=1), keeping the order sent among equal
// q-values. When an element has a q parameter that is not a valid qvalue,
// nothing is reordered: the origin may read it in any way.
func sortByQ(elems []string) {
	if len(elems) < 2 {
		return
	}
	qs := make([]int, len(elems))
	sorted := true
	for i, e := range elems {
		q, ok := elementQ(e)
		if !ok {
			return
		}
		qs[i] = q
		if i > 0 && q > qs[i-1] {
			sorted = false
		}
	}
	if sorted {
		return
	}
	idx := make([]int, len(elems))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return qs[b] - qs[a] })
	out := make([]string, len(elems))
	for i, j := range idx {
		out[i] = elems[j]
	}
	copy(elems, out)
}

// elementQ returns the q-value, in thousandths, of a normalised element
// (lower case, no whitespace around ";" and "="): 1000 without a q
// parameter, false when the q parameter is not a valid qvalue.
func elementQ(e string) (int, bool) {
	for i := 0; i < len(e); {
		j := skipParam(e, i)
		p := e[i:j]
		i = j + 1
		if strings.HasPrefix(p, "q=") {
			return parseQValue(p[2:])
		}
	}
	return 1000, true
}

// skipParam returns the index of the next ";" outside a quoted string at
// or after i, or len(s).
func skipParam(s string, i int) int { return skipTo(s, i, ';') }

// parseQValue parses an RFC 9110 §12.4.2 qvalue into thousandths:
// ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQValue(v string) (int, bool) {
	if v == "" || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(v[2:]) {
		if c < '0' || c > '9' || (q == 1000 && c != '0') {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// isTrimmedSimple reports whether v is already normal: a single element
// without surrounding whitespace, commas or quotes (nor, when lower is set,
// any whitespace, upper case letters, ";" or "=").
func isTrimmedSimple(v string, lower bool) bool {
	if v == "" {
		return true
	}
	if isOWS(v[0]) || isOWS(v[len(v)-1]) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ',' || c == '"' {
			return false
		}
		if lower && (c == ';' || c == '=' || isOWS(c) || ('A' <= c && c <= 'Z')) {
			return false
		}
	}
	return true
}

// normalizeElement lower-cases an element of an Accept-like field and drops
// whitespace around ";" and "=".
func normalizeElement(e string) string {
	var b strings.Builder
	b.Grow(len(e))
	for i := 0; i < len(e); i++ {
		c := e[i]
		if isOWS(c) {
			j := skipOWS(e, i)
			prevSep := b.Len() > 0 && (b.String()[b.Len()-1] == ';' || b.String()[b.Len()-1] == '=')
			if prevSep || (j < len(e) && (e[j] == ';' || e[j] == '=')) {
				i = j - 1
				continue
			}
			b.WriteByte(' ')
			i = j - 1
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
