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

// sortedVaryField reports whether name is a field whose list elements are
// case-insensitive and unordered for variant selection.
func sortedVaryField(name string) bool {
	return strings.EqualFold(name, "Accept-Encoding") || strings.EqualFold(name, "Accept") ||
		strings.EqualFold(name, "Accept-Language") || strings.EqualFold(name, "Accept-Charset")
}

// NormalizeVaryValue turns a request's values of one selecting header into
// the string compared between requests (RFC 9111 §4.1): all field lines
// joined with ", ", whitespace around list elements and at the ends
// removed, empty list elements dropped (commas inside quoted strings do not
// split elements). For Accept-Encoding, Accept, Accept-Language and
// Accept-Charset whitespace around ";" and "=" inside an element is
// removed, and the elements are lower-cased and sorted, so "gzip, br" and
// "br,gzip" select the same variant. An absent header normalises to "" and
// matches only another absent (or empty) header.
func NormalizeVaryValue(name string, values []string) string {
	if len(values) == 0 {
		return ""
	}
	sorted := sortedVaryField(name)
	if len(values) == 1 && isTrimmedSimple(values[0], sorted) {
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
			if sorted {
				e = normalizeElement(e)
			}
			elems = append(elems, e)
		}
	}
	if sorted {
		slices.Sort(elems)
	}
	return strings.Trim(strings.Join(elems, ", "), " \t,")
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
