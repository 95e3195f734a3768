package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path"
	"strings"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// The cache key of a request is its effective URL as Caddy finally routes it:
//
//	scheme "://" host path ["?" query] ["\n" key headers]
//
// The host is lower-cased and a default port removed; the path is the escaped
// path as received (no cleaning: a path the origin treats as another URL
// still gets its own key, so it cannot overwrite that URL's entry); the
// query keeps its order, minus ignored parameters. GET and HEAD share a key.
// Vary variants live under the key plus a suffix (variantKey).

// requestURL returns the effective URL part of the key and the host.
func requestURL(r *http.Request) (u, host string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host = normalizeHost(r.Host, scheme)
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(p) + 1 + len(r.URL.RawQuery))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(p)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	return b.String(), host
}

// normalizeHost lower-cases host and removes the scheme's default port.
func normalizeHost(host, scheme string) string {
	lower := true
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			lower = false
			break
		}
	}
	if !lower {
		host = strings.ToLower(host)
	}
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = host[:len(host)-3]
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = host[:len(host)-4]
	}
	return host
}

// cacheKey returns the primary key of r.
func (h *Handler) cacheKey(r *http.Request) string {
	if h.Key == nil {
		u, _ := requestURL(r)
		return u
	}
	u, _ := requestURL(r)
	if len(h.Key.IgnoreQuery) > 0 && r.URL.RawQuery != "" {
		i := strings.IndexByte(u, '?')
		q := filterQuery(u[i+1:], h.Key.IgnoreQuery)
		u = u[:i]
		if q != "" {
			u += "?" + q
		}
	}
	if len(h.Key.Headers) > 0 {
		var b strings.Builder
		b.WriteString(u)
		for _, name := range h.Key.Headers {
			b.WriteByte('\n')
			b.WriteString(strings.ToLower(name))
			b.WriteByte(':')
			b.WriteString(policy.NormalizeVaryValue(name, r.Header.Values(name)))
		}
		u = b.String()
	}
	return u
}

// urlOfKey strips the key headers from a primary key.
func urlOfKey(key string) string {
	if i := strings.IndexByte(key, '\n'); i >= 0 {
		return key[:i]
	}
	return key
}

// filterQuery removes the parameters whose (unescaped) names match one of
// the globs, keeping the others in their order.
func filterQuery(raw string, ignore []string) string {
	var kept []string
	for _, part := range strings.Split(raw, "&") {
		name := part
		if i := strings.IndexByte(name, '='); i >= 0 {
			name = name[:i]
		}
		drop := false
		for _, g := range ignore {
			if ok, _ := path.Match(g, name); ok {
				drop = true
				break
			}
		}
		if !drop {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

// variantSuffixLen is how much longer a variant key is than its primary
// key: "\x00vary:" and 32 hex digits.
const variantSuffixLen = len("\x00vary:") + 32

// maxPrimaryKeyLen is the longest primary key the cache uses, so that its
// variant keys too stay within storage.MaxKeyLen.
const maxPrimaryKeyLen = storage.MaxKeyLen - variantSuffixLen

// variantKey returns the key of the variant of primary selected by the
// request's values of the Vary names, and those normalised values.
func variantKey(primary string, names []string, r *http.Request) (string, map[string]string) {
	vals := make(map[string]string, len(names))
	return variantKeyInto(primary, names, r, vals), vals
}

// variantLookupKey is variantKey without the values, for lookups.
func variantLookupKey(primary string, names []string, r *http.Request) string {
	return variantKeyInto(primary, names, r, nil)
}

func variantKeyInto(primary string, names []string, r *http.Request, vals map[string]string) string {
	hash := sha256.New()
	for _, n := range names {
		v := policy.NormalizeVaryValue(n, r.Header.Values(n))
		if vals != nil {
			vals[n] = v
		}
		hash.Write([]byte(n))
		hash.Write([]byte{0})
		hash.Write([]byte(v))
		hash.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	hash.Sum(sum[:0])
	var hx [32]byte
	hex.Encode(hx[:], sum[:16])
	return primary + "\x00vary:" + string(hx[:])
}

// varyMatches reports whether the stored variant was made for a request with
// the same selecting header values as r.
func varyMatches(e *storage.Entry, r *http.Request) bool {
	for _, n := range e.Vary {
		if e.VaryRequest[n] != policy.NormalizeVaryValue(n, r.Header.Values(n)) {
			return false
		}
	}
	return true
}
