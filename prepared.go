package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// prepared is what a hit needs from a stored response beyond its header
// and body, derived once instead of on every hit: the directives that
// govern reuse, the Content-Length to send and how many header values go
// to clients (the fields that never reach them, targeted cache-control and
// surrogate keys, left out; see sentField).
//
// When the store keeps entries in process memory (the memory store, the
// hot tier) and so hands the very stored entry to later hits, the handler
// derives it before storing the entry and attaches it to the entry
// (storage.Entry.SetMemo), as it does for entries the hot tier copies from
// the main store (tiered.SetOnPromote). Otherwise (the entry came back from
// bytes, or a handler with other settings stored it) it is derived for the
// one use. It holds no copy of the header: a hit writes the stored
// header's own values (writeHeader).
type prepared struct {
	settings string             // preparedKey of the handler that derived it
	cc       *policy.Directives // often shared (ccCache)
	nvals    int                // header values sent to clients, Content-Length included
	length   string             // the Content-Length value, "" when the status has no body
	ownCC    bool               // cc is this entry's alone
}

// preparedBytes is what a prepared takes in memory (its size class), and
// directivesBytes what a policy.Directives of its own adds.
const (
	preparedBytes   = 64
	directivesBytes = 192
)

// size is the memory p holds, for the store's accounting.
func (p *prepared) size() int64 {
	n := int64(preparedBytes + len(p.length))
	if p.ownCC {
		n += directivesBytes
	}
	return n
}

// ccCache shares the parsed directives of the Cache-Control values many
// responses carry alike ("public, max-age=3600"), so that each stored
// entry does not hold a parsed copy. It holds at most ccCacheMax values;
// others are parsed per entry.
type ccCache struct {
	m sync.Map // Cache-Control value → *policy.Directives
	n atomic.Int64
}

const ccCacheMax = 1024

// directivesOf returns the directives addressed to this cache of a stored
// header (h.directives), shared through h.ccs when they depend on one
// Cache-Control value alone, and whether they are this entry's own.
func (h *Handler) directivesOf(hdr http.Header) (*policy.Directives, bool) {
	cc := hdr["Cache-Control"]
	shareable := h.ccs != nil && len(cc) == 1 && len(cc[0]) <= 256
	if shareable {
		if _, ok := hdr["Surrogate-Control"]; ok && h.surrogate {
			shareable = false
		}
		for _, t := range h.targets {
			if _, ok := hdr[t]; ok {
				shareable = false
			}
		}
	}
	if !shareable {
		d := h.directives(hdr)
		return &d, true
	}
	if v, ok := h.ccs.m.Load(cc[0]); ok {
		return v.(*policy.Directives), false
	}
	d := h.directives(hdr)
	if h.ccs.n.Load() >= ccCacheMax {
		return &d, true
	}
	v, loaded := h.ccs.m.LoadOrStore(strings.Clone(cc[0]), &d)
	if !loaded {
		h.ccs.n.Add(1)
	}
	return v.(*policy.Directives), false
}

// preparedKey identifies the handler settings prepared data depends on, so
// that two handlers with different settings sharing a memory store never
// use each other's.
func (h *Handler) preparedKey() string {
	var b strings.Builder
	b.WriteString(strings.Join(h.targets, ","))
	b.WriteString("|")
	b.WriteString(strings.Join(h.strip, ","))
	b.WriteString("|")
	if h.ops != nil && h.ops.tags.strip {
		for _, f := range h.ops.tags.fields {
			b.WriteString(f.name)
			b.WriteByte(',')
		}
	}
	return b.String()
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

// prepare derives the prepared data of a response entry.
func (h *Handler) prepare(e *storage.Entry) *prepared {
	p := &prepared{settings: h.prepKey}
	p.cc, p.ownCC = h.directivesOf(e.Header)
	for k, vs := range e.Header {
		if h.sentField(k) {
			p.nvals += len(vs)
		}
	}
	if policy.BodyAllowed(e.Status) {
		p.length = strconv.Itoa(len(e.Body))
		p.nvals++
	}
	return p
}

// keepsInMemory reports whether the store hands stored entries themselves
// to later reads, so that prepared data attached to them is found again.
func (h *Handler) keepsInMemory() bool { return h.isMemory || h.hot != nil }

// attachPrepared derives the prepared data of a response entry that is
// about to be stored in (or copied into) process memory and attaches it to
// the entry. The entry must not be shared yet.
func (h *Handler) attachPrepared(e *storage.Entry) {
	if e.Kind != storage.KindResponse || !h.keepsInMemory() {
		return
	}
	if p, ok := e.Memo().(*prepared); ok && p.settings == h.prepKey {
		return
	}
	p := h.prepare(e)
	e.SetMemo(p, p.size())
}

// preparedOf returns the prepared data of a stored response: the data
// attached to it when this handler's settings derived it, else derived for
// this use alone.
func (h *Handler) preparedOf(e *storage.Entry) *prepared {
	if p, ok := e.Memo().(*prepared); ok && p.settings == h.prepKey {
		return p
	}
	return h.prepare(e)
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
