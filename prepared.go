package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// prepared is what a hit needs from a stored response beyond its header
// and body: the directives that govern reuse, the Content-Length to send
// and how many header values go to clients (the fields that never reach
// them, targeted cache-control and surrogate keys, left out; see
// sentField). It is derived for each use (an exchange derives it once, in
// place: see exchange.prepared), from the entry and this handler's
// settings alone, so that stored entries carry nothing of the handler and
// two handlers with other settings sharing a store never mix theirs. What
// makes that cheap: the directives of the Cache-Control (and targeted)
// values many responses carry alike are parsed once and shared (ccCache),
// and the stored Content-Length string is sent as it is when it matches
// the body. It holds no copy of the header: a hit writes the stored
// header's own values (writeHeader).
type prepared struct {
	cc     *policy.Directives // shared (ccCache), or parsed for this use
	nvals  int                // header values sent to clients, Content-Length included
	length string             // the Content-Length value, "" when the status has no body
}

// ccCache shares the parsed directives of the values of the fields that
// govern reuse many responses carry alike ("public, max-age=3600", with or
// without one targeted field), so that a hit does not parse them again. It
// holds at most ccCacheMax combinations; others are parsed per use.
type ccCache struct {
	mu sync.RWMutex
	m  map[ccKey]*policy.Directives
}

// ccKey is one combination of a Cache-Control value and at most one
// targeted field (by its index in the handler's targets) with one value.
type ccKey struct {
	cc, target string
	field      int // index in targets + 1; 0: none
}

const (
	ccCacheMax   = 1024
	ccCacheValue = 256 // longest value shared
)

// sharedDirectives returns the directives of hdr (h.directives) whose
// values are k, shared through h.ccs.
func (h *Handler) sharedDirectives(hdr http.Header, k ccKey) *policy.Directives {
	h.ccs.mu.RLock()
	d, ok := h.ccs.m[k]
	h.ccs.mu.RUnlock()
	if ok {
		return d
	}
	d = new(policy.Directives)
	*d = h.directives(hdr)
	h.ccs.mu.Lock()
	defer h.ccs.mu.Unlock()
	if v, ok := h.ccs.m[k]; ok {
		return v
	}
	if len(h.ccs.m) >= ccCacheMax {
		return d
	}
	if h.ccs.m == nil {
		h.ccs.m = make(map[ccKey]*policy.Directives)
	}
	k.cc, k.target = strings.Clone(k.cc), strings.Clone(k.target)
	h.ccs.m[k] = d
	return d
}

// sentField reports whether the stored header field k (canonical) goes to
// clients: not Content-Length (set from the body), not the targeted
// cache-control fields that are stripped (h.strip), not the surrogate key
// fields when they are stripped.
func (h *Handler) sentField(k string) bool {
	if k == "Content-Length" {
		return false
	}
	if slices.Contains(h.strip, k) {
		return false
	}
	if h.ops != nil && h.ops.tags.strip {
		for _, f := range h.ops.tags.fields {
			if f.name == k {
				return false
			}
		}
	}
	return true
}

// prepare derives the prepared data of a response entry into p, in one
// pass over its header. The directives are shared (ccCache) when they
// depend on one Cache-Control value (or none) and at most one targeted
// field with one value, both short, and no Surrogate-Control read by this
// cache; else they are parsed for this use.
func (h *Handler) prepare(e *storage.Entry, p *prepared) {
	var k ccKey
	shareable := h.ccs != nil
	var length []string
	p.nvals = 0
	for name, vs := range e.Header {
		switch {
		case name == "Content-Length":
			length = vs
			continue // sent from the body's length
		case len(vs) == 0: // as if absent
		case name == "Cache-Control":
			k.cc = vs[0]
			shareable = shareable && len(vs) == 1 && len(vs[0]) <= ccCacheValue
		case name == "Surrogate-Control" && h.surrogate:
			shareable = false
		default:
			if i := slices.Index(h.targets, name); i >= 0 {
				shareable = shareable && k.field == 0 && len(vs) == 1 && len(vs[0]) <= ccCacheValue
				k.field, k.target = i+1, vs[0]
			}
		}
		if h.sentField(name) {
			p.nvals += len(vs)
		}
	}
	if shareable {
		p.cc = h.sharedDirectives(e.Header, k)
	} else {
		d := h.directives(e.Header)
		p.cc = &d
	}
	p.length = ""
	if policy.BodyAllowed(e.Status) {
		p.length = lengthOf(length, len(e.Body))
		p.nvals++
	}
}

// lengthOf is the Content-Length of a body of n bytes: the stored value
// when it is exactly that number in canonical form (no allocation on a
// hit), else formatted.
func lengthOf(stored []string, n int) string {
	if len(stored) == 1 && canonicalDecimal(stored[0]) {
		if v, err := strconv.Atoi(stored[0]); err == nil && v == n {
			return stored[0]
		}
	}
	return strconv.Itoa(n)
}

// canonicalDecimal reports whether s is digits alone, without a leading
// zero unless it is "0".
func canonicalDecimal(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// writeHeader copies the header e sends to clients into dst with one
// allocation for all value slices, so later handlers may change the
// response header in place without touching the stored entry. It returns
// spare more empty slots of that allocation, for the fields the hit adds
// (Age, Cache-Status).
func (p *prepared) writeHeader(h *Handler, e *storage.Entry, dst http.Header, spare int) []string {
	buf := make([]string, 0, p.nvals+spare)
	for k, vs := range e.Header {
		if !h.sentField(k) {
			continue
		}
		i := len(buf)
		buf = append(buf, vs...)
		dst[k] = buf[i:len(buf):len(buf)]
	}
	if p.length != "" {
		i := len(buf)
		buf = append(buf, p.length)
		dst["Content-Length"] = buf[i:len(buf):len(buf)]
	}
	buf = slices.Grow(buf, spare)
	return buf[len(buf) : len(buf)+spare]
}
