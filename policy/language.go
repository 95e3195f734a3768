package policy

import "strings"

// PreferredLanguage returns the language range a request's Accept-Language
// field (RFC 9110 §12.5.4; pass h.Values("Accept-Language")) prefers most:
// the first element with the highest qvalue (RFC 9110 §12.4.2; no q
// parameter is q=1), lower-cased. It is "" when the field is absent or
// empty, when an element is not a language range (RFC 4647 §2.1) or has an
// invalid qvalue or another parameter, when every qvalue is 0, and when the
// preferred range is "*" (any language: the origin's choice, which a cache
// cannot know).
func PreferredLanguage(values []string) string {
	best, bestQ := "", 0
	for _, line := range values {
		for i := 0; i < len(line); {
			j := skipElement(line, i)
			e := strings.Trim(line[i:j], " \t")
			i = j + 1
			if e == "" {
				continue
			}
			rng, params, _ := strings.Cut(e, ";")
			rng = strings.ToLower(strings.TrimRight(rng, " \t"))
			if !languageRange(rng) {
				return ""
			}
			q := 1000
			if params != "" {
				name, v, ok := strings.Cut(strings.Trim(params, " \t"), "=")
				name, v = strings.Trim(name, " \t"), strings.Trim(v, " \t")
				if !ok || !strings.EqualFold(name, "q") {
					return ""
				}
				if q, ok = parseQValue(v); !ok {
					return ""
				}
			}
			if q > bestQ {
				best, bestQ = rng, q
			}
		}
	}
	if best == "*" {
		return ""
	}
	return best
}

// languageRange reports whether s (lower case) is a language-range of RFC
// 4647 §2.1: "*" or 1*8ALPHA *("-" 1*8alphanum).
func languageRange(s string) bool {
	if s == "*" {
		return true
	}
	for i, sub := range strings.Split(s, "-") {
		if sub == "" || len(sub) > 8 {
			return false
		}
		for j := 0; j < len(sub); j++ {
			c := sub[j]
			alpha, digit := 'a' <= c && c <= 'z', '0' <= c && c <= '9'
			if !alpha && (i == 0 || !digit) {
				return false
			}
		}
	}
	return true
}

// LanguageMatches reports whether the language tag matches the language
// range under basic filtering (RFC 4647 §3.3.1): they are equal, or the
// range is a prefix of the tag followed by "-", ignoring case; "*" matches
// every tag.
func LanguageMatches(rng, tag string) bool {
	if rng == "*" {
		return true
	}
	if len(tag) < len(rng) || !strings.EqualFold(tag[:len(rng)], rng) {
		return false
	}
	return len(tag) == len(rng) || tag[len(rng)] == '-'
}

// LanguageSelects reports whether a stored response whose Content-Language
// (pass its h.Values("Content-Language")) names a single language may
// serve a request with the given Accept-Language values although that
// request's Accept-Language differs from the one the response was chosen
// for (RFC 9111 §4.1 lets a cache match selecting fields by their
// semantics): the client's preferred range (PreferredLanguage) matches
// that language by basic filtering (RFC 4647 §3.3.1). A response in
// several languages, or none, is never selected this way.
func LanguageSelects(acceptLanguage, contentLanguage []string) bool {
	if len(contentLanguage) != 1 {
		return false
	}
	tag := strings.Trim(contentLanguage[0], " \t")
	if tag == "" || strings.ContainsAny(tag, ", \t;") || !languageRange(strings.ToLower(tag)) || tag == "*" {
		return false
	}
	rng := PreferredLanguage(acceptLanguage)
	return rng != "" && LanguageMatches(rng, tag)
}
