package policy

import (
	"net/http"
	"net/url"
	"strings"
)

// InvalidationTargets lists the URLs a shared cache must invalidate after an
// unsafe request to reqURL got a non-error response (RFC 9111 §4.4): the
// target URI, plus Location and Content-Location resolved against it when
// they have the same origin (scheme compared case-insensitively, host
// compared case-insensitively, default port 80 for http and 443 for https
// ignored). Cross-origin or unparsable targets are left out, and so are
// duplicates. Fragments are removed. The returned URLs are copies. reqURL
// should be absolute (scheme and host set, as the cache key is): with a
// relative reqURL only relative references can share its origin.
func InvalidationTargets(reqURL *url.URL, respHeader http.Header) []*url.URL {
	if reqURL == nil {
		return nil
	}
	target := *reqURL
	target.Fragment, target.RawFragment = "", ""
	out := []*url.URL{&target}
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := respHeader.Values(name)
		if len(v) == 0 {
			continue
		}
		raw := strings.Trim(v[0], " \t")
		if raw == "" {
			continue
		}
		ref, err := url.Parse(raw)
		if err != nil {
			continue
		}
		u := target.ResolveReference(ref)
		u.Fragment, u.RawFragment = "", ""
		if !sameOrigin(&target, u) {
			continue
		}
		dup := false
		for _, o := range out {
			if o.String() == u.String() {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, u)
		}
	}
	return out
}

// sameOrigin compares scheme, host and port (RFC 9110 §4.3.1).
func sameOrigin(a, b *url.URL) bool {
	if !strings.EqualFold(a.Scheme, b.Scheme) {
		return false
	}
	if !strings.EqualFold(a.Hostname(), b.Hostname()) {
		return false
	}
	return effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return strings.TrimLeft(p, "0")
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// IsUnsafe reports whether a request method is unsafe (RFC 9110 §9.2.1):
// anything but GET, HEAD, OPTIONS and TRACE. Methods are case-sensitive
// (§9.1), so "get" is unsafe.
func IsUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}
