package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// The cache key of a request is built from what the server knows, not from
// what the client claims:
//
//	scope scheme "://" authority target ["\n" key header or cookie lines]
//
//   - scope is "c2:" and 8 hex digits of the SHA-256 of the handler's name
//     (given, or generated from the storage identity): handlers with other
//     names never read each other's entries, even on one store. "c2" is the
//     key format; entries written under another format are never read.
//   - scheme is that of the connection (https when it is TLS).
//   - authority is the host name of the request, lower-cased and without a
//     trailing dot, with the port of the listener that accepted the
//     connection (omitted when it is the scheme's default). The port written
//     in the Host header is never used: a client cannot store one site's
//     response under another port's site.
//   - target is the path and query the client sent, before any rewrite
//     (handle_path, rewrite, uri strip_prefix), in one normal form (see
//     normalTarget). When a rewrite changed the target, the rewritten target
//     selects a variant of that key like a Vary field does (rewriteField),
//     so that two routes that rewrite one URL differently never share a
//     response.
//
// With key.template, the expansion of the template replaces scheme,
// authority and target. Vary variants live under the key plus a suffix
// (variantKey). GET and HEAD share a key.

// keyFormat prefixes every key: a new format never reads an old one's
// entries.
const keyFormat = "c2:"

// scopeOf returns the key prefix of a handler name.
func scopeOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return keyFormat + hex.EncodeToString(sum[:4]) + ":"
}

// rewriteField is the pseudo request field, in Entry.Vary and
// Entry.VaryRequest, that holds the rewritten target of a request whose
// target a rewrite changed. It cannot clash with a header name.
const rewriteField = ":rewritten"

// originalRequest returns the request as the client sent it, before
// rewrites, or r itself outside a Caddy server.
func originalRequest(r *http.Request) *http.Request {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		return &or
	}
	return r
}

// originalURL is the URL of originalRequest(r), without copying the
// request: the key reads it on every request.
func originalURL(r *http.Request) *url.URL {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		return or.URL
	}
	return r.URL
}

// requestScheme is the scheme of the connection.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// requestAuthority returns the key's authority: the request's host name
// with the listener's port (see the key comment), and that listener port
// ("" when unknown). Without a listener address in the context (explain,
// purge, unit tests) the port in Host is used.
func requestAuthority(r *http.Request, scheme string) (authority, listener string) {
	host, port := splitHostPort(r.Host)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok {
			listener = strconv.Itoa(ta.Port)
		} else if _, p, err := net.SplitHostPort(la.String()); err == nil {
			listener = p
		}
		port = listener
	}
	return joinAuthority(normalHostName(host), port, scheme), listener
}

// portSet is the bounded set of non-default listener ports requests
// arrived on for one handler name, kept across reloads: a purge by a URL
// without a port (as clients behind a port-mapping proxy write it) also
// purges the keys stored with those ports.
type portSet struct {
	mu    sync.Mutex
	ports atomic.Pointer[[]string]
}

const maxListenerPorts = 16

var listenerPorts sync.Map // scope -> *portSet

func portsOf(scope string) *portSet {
	v, _ := listenerPorts.LoadOrStore(scope, new(portSet))
	return v.(*portSet)
}

func (s *portSet) note(port, scheme string) {
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return
	}
	if p := s.ports.Load(); p != nil && slices.Contains(*p, port) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []string
	if p := s.ports.Load(); p != nil {
		cur = *p
	}
	if slices.Contains(cur, port) || len(cur) >= maxListenerPorts {
		return
	}
	next := append(slices.Clone(cur), port)
	s.ports.Store(&next)
}

func (s *portSet) list() []string {
	if p := s.ports.Load(); p != nil {
		return *p
	}
	return nil
}

// splitHostPort splits a Host value into name and port ("" when absent).
func splitHostPort(hostport string) (host, port string) {
	if strings.IndexByte(hostport, ':') < 0 {
		// no port: skip net.SplitHostPort, whose error would allocate
		return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}

// normalHostName lower-cases a host name and removes a trailing dot.
func normalHostName(host string) string {
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			host = strings.ToLower(host)
			break
		}
	}
	return strings.TrimSuffix(host, ".")
}

// joinAuthority writes host and port as a key authority, without the
// scheme's default port; IPv6 literals get their brackets.
func joinAuthority(host, port, scheme string) string {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return host
	}
	return host + ":" + port
}

// normalizeHost normalises a "host[:port]" as keys have it.
func normalizeHost(hostport, scheme string) string {
	h, p := splitHostPort(hostport)
	return joinAuthority(normalHostName(h), p, scheme)
}

// normalTarget returns path and query in the one normal form used by keys,
// purges and invalidation (RFC 3986 §6.2.2): percent-encoded unreserved
// characters but the dot decoded (/p%41th = /pAth), other percent-encodings in upper
// case, an empty path as "/", an empty query dropped (/x? = /x), and the
// ignored parameters removed. Parameters are split at '&' and at ';' (as
// many origins split them), so that "id=1&utm_x=1;id=2" can never lose its
// second id with utm_x; names are compared percent-decoded.
func normalTarget(escapedPath, rawQuery string, ignore []string) string {
	p := normalPercent(escapedPath)
	if p == "" {
		p = "/"
	}
	q := normalQuery(rawQuery, ignore)
	if q == "" {
		return p
	}
	return p + "?" + q
}

// normalQuery normalises percent-encoding in a query and removes the
// parameters whose decoded names match one of the ignore globs.
func normalQuery(raw string, ignore []string) string {
	if raw == "" {
		return ""
	}
	raw = normalPercent(raw)
	if len(ignore) == 0 {
		return raw
	}
	var b strings.Builder
	for start := 0; start <= len(raw); {
		end := strings.IndexAny(raw[start:], "&;")
		if end < 0 {
			end = len(raw)
		} else {
			end += start
		}
		part := raw[start:end]
		if !ignoredParam(part, ignore) {
			if b.Len() > 0 {
				b.WriteByte(raw[start-1]) // the separator before it, as sent
			}
			b.WriteString(part)
		}
		start = end + 1
	}
	return b.String()
}

// ignoredParam reports whether a "name=value" query part has a name that
// matches one of the globs, compared percent-decoded.
func ignoredParam(part string, ignore []string) bool {
	name, _, _ := strings.Cut(part, "=")
	if dec, err := url.QueryUnescape(name); err == nil {
		name = dec
	}
	for _, g := range ignore {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// normalPercent decodes percent-encoded unreserved characters and
// upper-cases the hex digits of the other percent-encodings. The dot stays
// encoded: origins often treat /%2e%2e/ and /../ differently, so an escaped
// dot segment must never share a key with a real one. Malformed escapes
// are kept as they are.
func normalPercent(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteByte(c)
			continue
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(v) && v != '.' {
			b.WriteByte(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex(s[i+1]))
			b.WriteByte(upperHex(s[i+2]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// isUnreserved reports whether c is an RFC 3986 unreserved character.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// ignoredQuery returns the ignore_query globs.
func (h *Handler) ignoredQuery() []string {
	if h.Key == nil {
		return nil
	}
	return h.Key.IgnoreQuery
}

// urlParts returns the parts of the effective URL of a request as the key
// has it, scheme://authority + the client's target in normal form (without
// ignored parameters): scheme, authority and target.
func (h *Handler) urlParts(r *http.Request) (scheme, authority, target string) {
	scheme = requestScheme(r)
	authority, listener := requestAuthority(r, scheme)
	if listener != "" && h.ports != nil {
		h.ports.note(listener, scheme)
	}
	ou := originalURL(r)
	return scheme, authority, normalTarget(ou.EscapedPath(), ou.RawQuery, h.ignoredQuery())
}

// rewrittenTarget returns the normalised target after rewrites when a
// rewrite changed it, else "".
func (h *Handler) rewrittenTarget(r *http.Request) string {
	ou := originalURL(r)
	if ou == r.URL {
		return ""
	}
	if ou.EscapedPath() == r.URL.EscapedPath() && ou.RawQuery == r.URL.RawQuery {
		return ""
	}
	ig := h.ignoredQuery()
	t := normalTarget(r.URL.EscapedPath(), r.URL.RawQuery, ig)
	if t == normalTarget(ou.EscapedPath(), ou.RawQuery, ig) {
		return ""
	}
	return t
}

// cacheKey returns the primary key of r.
func (h *Handler) cacheKey(r *http.Request) string {
	if h.Key != nil && h.Key.Template != "" {
		repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if !ok {
			repl = caddyhttp.NewTestReplacer(r)
		}
		return h.scope + repl.ReplaceAll(h.Key.Template, "") + h.keyExtras(r)
	}
	scheme, authority, target := h.urlParts(r)
	return h.scope + scheme + "://" + authority + target + h.keyExtras(r) // one allocation
}

// keyExtras returns the key header and cookie lines of r.
func (h *Handler) keyExtras(r *http.Request) string {
	if h.Key == nil || len(h.Key.Headers)+len(h.Key.Cookies) == 0 {
		return ""
	}
	var b strings.Builder
	for _, name := range h.Key.Headers {
		b.WriteByte('\n')
		b.WriteString(strings.ToLower(name))
		b.WriteByte(':')
		b.WriteString(policy.NormalizeVaryValue(name, r.Header.Values(name)))
	}
	for _, name := range h.Key.Cookies {
		b.WriteString("\ncookie:")
		b.WriteString(name)
		b.WriteByte('=')
		if c, err := r.Cookie(name); err == nil {
			b.WriteString(c.Value)
		}
	}
	return b.String()
}

// hasKeyExtras reports whether keys carry header or cookie lines.
func (h *Handler) hasKeyExtras() bool {
	return h.Key != nil && len(h.Key.Headers)+len(h.Key.Cookies) > 0
}

// urlOfKey strips the scope and the key header lines from a primary key.
func urlOfKey(key string) string {
	if i := strings.IndexByte(key, '\n'); i >= 0 {
		key = key[:i]
	}
	return unscoped(key)
}

// unscoped removes the scope from a key.
func unscoped(key string) string {
	if strings.HasPrefix(key, keyFormat) && len(key) >= len(keyFormat)+9 && key[len(keyFormat)+8] == ':' {
		return key[len(keyFormat)+9:]
	}
	return key
}

// unscopedKeys removes the scope from each key, as the admin API shows
// keys: every key it shows or takes is relative to one handler.
func unscopedKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = unscoped(k)
	}
	return out
}

// variantSuffixLen is how much longer a variant key is than its primary
// key: "\x00vary:" and 32 hex digits.
const variantSuffixLen = len("\x00vary:") + 32

// maxPrimaryKeyLen is the longest primary key the cache uses, so that its
// variant keys too stay within storage.MaxKeyLen.
const maxPrimaryKeyLen = storage.MaxKeyLen - variantSuffixLen

// varyValue is the normalised value of a selecting field in r: a request
// header, or the rewritten target (rewriteField).
func (h *Handler) varyValue(name string, r *http.Request) string {
	if name == rewriteField {
		return h.rewrittenTarget(r)
	}
	return policy.NormalizeVaryValue(name, r.Header.Values(name))
}

// variantKey returns the key of the variant of primary selected by the
// request's values of the Vary names, and those normalised values.
func (h *Handler) variantKey(primary string, names []string, r *http.Request) (string, map[string]string) {
	vals := make(map[string]string, len(names))
	return h.variantKeyInto(primary, names, r, vals), vals
}

// variantLookupKey is variantKey without the values, for lookups.
func (h *Handler) variantLookupKey(primary string, names []string, r *http.Request) string {
	return h.variantKeyInto(primary, names, r, nil)
}

func (h *Handler) variantKeyInto(primary string, names []string, r *http.Request, vals map[string]string) string {
	hash := sha256.New()
	for _, n := range names {
		v := h.varyValue(n, r)
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
// the same selecting header values as r, and with the same rewritten target
// (none for an entry stored without a rewrite).
func (h *Handler) varyMatches(e *storage.Entry, r *http.Request) bool {
	return h.varyMatchesExcept(e, r, "")
}

// varyMatchesExcept is varyMatches without comparing the selecting field
// skip.
func (h *Handler) varyMatchesExcept(e *storage.Entry, r *http.Request, skip string) bool {
	for _, n := range e.Vary {
		if n != skip && e.VaryRequest[n] != h.varyValue(n, r) {
			return false
		}
	}
	if !slices.Contains(e.Vary, rewriteField) && h.rewrittenTarget(r) != "" {
		return false
	}
	return true
}

// maxLanguageProbes bounds the variants languageVariant reads.
const maxLanguageProbes = 16

// languageVariant looks, when the URL varies on Accept-Language and no
// stored variant was made for the request's own Accept-Language, for a
// stored variant whose Content-Language is the client's preferred language
// (policy.LanguageSelects: RFC 9110 §12.5.4 qvalues, RFC 4647 basic
// filtering) and whose other selecting fields match the request, newest
// first, among the maxLanguageProbes newest variants (each is a storage
// read on a request that is otherwise a miss). idx is the URL's Vary index;
// get reads an entry. It returns the variant and its key, or nil.
func (h *Handler) languageVariant(idx *storage.Entry, r *http.Request, get func(string) (*storage.Entry, error)) (*storage.Entry, string) {
	const field = "Accept-Language"
	if !slices.Contains(idx.Vary, field) {
		return nil, ""
	}
	accept := r.Header.Values(field)
	if policy.PreferredLanguage(accept) == "" {
		return nil, ""
	}
	probes := 0
	for _, vk := range slices.Backward(idx.Variants) {
		if probes++; probes > maxLanguageProbes {
			break
		}
		e, err := get(vk)
		if err != nil || e.Kind != storage.KindResponse || !slices.Equal(e.Vary, idx.Vary) {
			continue
		}
		if policy.LanguageSelects(accept, e.Header.Values("Content-Language")) && h.varyMatchesExcept(e, r, field) {
			return e, vk
		}
	}
	return nil, ""
}

// effectiveURL is the absolute URL of the request as the key sees it: the
// connection's scheme, the listener's authority and the client's target.
func (h *Handler) effectiveURL(r *http.Request) *url.URL {
	scheme := requestScheme(r)
	ou := originalURL(r)
	authority, _ := requestAuthority(r, scheme)
	u, err := url.Parse(scheme + "://" + authority + normalTarget(ou.EscapedPath(), ou.RawQuery, nil))
	if err != nil {
		u = &url.URL{Scheme: scheme, Host: r.Host, Path: ou.Path, RawPath: ou.RawPath, RawQuery: ou.RawQuery}
	}
	return u
}

// pathOfURL returns the path of a scheme://authority/path?query string.
func pathOfURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			return "/"
		}
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return u
}
