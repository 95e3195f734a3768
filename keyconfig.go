package cache

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// validateKeyConfig checks the key options (cookies, template) and
// request_cache_control. Every error names the option. The Caddyfile parser
// runs the same checks as it reads each option, so that its errors carry
// the file and line.
func (h *Handler) validateKeyConfig() error {
	switch h.RequestCacheControl {
	case "", "respect", "ignore":
	default:
		return fmt.Errorf("request_cache_control %q: want respect or ignore", h.RequestCacheControl)
	}
	if h.Key == nil {
		return nil
	}
	if err := checkKeyCookies(h.Key.Cookies); err != nil {
		return err
	}
	if h.Key.Template != "" { // "" is the same as unset in JSON
		if err := checkKeyTemplate(h.Key.Template); err != nil {
			return err
		}
	}
	return nil
}

// checkKeyCookies checks the names of key cookies: each a cookie-name
// (RFC 6265 §4.1.1: an RFC 2616 token), listed once. Names are
// case-sensitive, so "Lang" and "lang" are two cookies.
func checkKeyCookies(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		switch {
		case n == "":
			return fmt.Errorf("key cookies %q: empty cookie name", n)
		case strings.Contains(n, ","):
			return fmt.Errorf("key cookies %q: separate cookie names with spaces, not commas", n)
		case strings.Contains(n, "="):
			return fmt.Errorf("key cookies %q: give the cookie's name only; its value, whatever it is, goes into the key", n)
		case !isToken(n):
			return fmt.Errorf("key cookies %q: not a cookie name (RFC 6265: letters, digits and !#$%%&'*+-.^_`|~, no spaces, quotes, separators or control characters)", n)
		case seen[n]:
			return fmt.Errorf("key cookies %q: listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// checkKeyTemplate checks a key template: it must contain at least one
// placeholder, or every request would get the same key.
func checkKeyTemplate(t string) error {
	if t == "" {
		return fmt.Errorf("key template: empty template")
	}
	if !hasPlaceholder(t) {
		return fmt.Errorf("key template %q: no {placeholder}, so every request would get the same key; "+
			"e.g. {http.request.host}{http.request.uri.path}{http.request.cookie.lang}", t)
	}
	return nil
}

// hasPlaceholder reports whether s contains a non-empty {…} that is not
// escaped with a backslash, as Caddy's replacer reads it.
func hasPlaceholder(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // \{ and \} are literal braces
		case '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end > 0 {
				return true
			}
			if end < 0 {
				return false
			}
		}
	}
	return false
}

// validateStorageMemory rejects a hot-tier size set together with the
// memory store: the hot tier only sits in front of the other backends, so
// with storage memory the memory option would have no effect. memory is
// Handler.Memory (-1 off, 0 default, >0 a size); storageRaw is the storage
// module's JSON, whose "backend" names the module. It must see storageRaw
// before ctx.LoadModule, which empties the field.
func validateStorageMemory(storageRaw json.RawMessage, memory int64) error {
	if memory <= 0 || len(storageRaw) == 0 {
		return nil
	}
	var s struct {
		Backend string `json:"backend"`
	}
	if err := json.Unmarshal(storageRaw, &s); err != nil || s.Backend != "memory" {
		return nil // a malformed storage object is loading's error to report
	}
	return fmt.Errorf("memory %s: the hot tier sits in front of other backends; "+
		"with storage memory set the size with its max_size option instead", formatSize(memory))
}

// formatSize writes n with the largest unit that divides it exactly, so
// that a size read from the Caddyfile reads back as typed: 64MB, 64MiB,
// 1GB, 1500.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{
		{"TiB", 1 << 40},
		{"TB", 1e12},
		{"GiB", 1 << 30},
		{"GB", 1e9},
		{"MiB", 1 << 20},
		{"MB", 1e6},
		{"KiB", 1 << 10},
		{"KB", 1e3},
	} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
