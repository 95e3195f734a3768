package cache

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// prepared is what a hit needs from a stored response, derived once when the
// response is stored instead of on every hit: the directives that govern
// reuse, and the header to send laid out as slices, already without the
// fields that never reach clients (targeted cache-control, surrogate keys)
// and with Content-Length set.
type prepared struct {
	cc        policy.Directives
	validator bool
	keys      []string
	vals      [][]string
	nvals     int
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

// prepare derives the prepared data of a response entry.
func (h *Handler) prepare(e *storage.Entry) *prepared {
	p := &prepared{cc: h.directives(e.Header), validator: policy.HasValidator(e.Header)}
	skip := make(map[string]bool, len(h.targets)+2)
	for _, f := range h.strip {
		skip[f] = true
	}
	if h.ops != nil && h.ops.tags.strip {
		for _, f := range h.ops.tags.fields {
			skip[f.name] = true
		}
	}
	skip["Content-Length"] = true
	for k := range e.Header {
		if !skip[k] {
			p.keys = append(p.keys, k)
		}
	}
	slices.Sort(p.keys)
	for _, k := range p.keys {
		vs := e.Header[k]
		p.vals = append(p.vals, vs)
		p.nvals += len(vs)
	}
	if policy.BodyAllowed(e.Status) {
		p.keys = append(p.keys, "Content-Length")
		p.vals = append(p.vals, []string{strconv.Itoa(len(e.Body))})
		p.nvals++
	}
	return p
}

// preparedOf returns the prepared data of the entry stored under key. When
// the store holds entries in process memory (the memory store, the hot
// tier) and so returns this very entry to later hits, the data is derived
// on the first use and kept; otherwise (the entry came back from bytes, or
// key is "") it is derived for this use alone. Entries that are never hit
// cost nothing.
func (h *Handler) preparedOf(key string, e *storage.Entry) *prepared {
	if key == "" || (!h.isMemory && h.hot == nil) {
		return h.prepare(e)
	}
	if p := h.preps.load(key, e); p != nil {
		return p
	}
	p := h.prepare(e)
	h.preps.store(key, e, p)
	return p
}

// prepCache keeps the prepared data of entries held in process memory,
// on the handler's side: storage entries carry none. It maps a stored key
// to the entry it was derived from, held weakly, so that a different entry
// under the same key (stored by another handler, or decoded from bytes)
// never uses it, and an entry that the store dropped takes its slot with
// it when it is collected. Handlers whose settings give the same prepared
// data (preparedKey) share one, so a reload keeps it.
type prepCache struct{ m sync.Map } // key → *prepSlot

type prepSlot struct {
	e weak.Pointer[storage.Entry]
	p *prepared
}

// prepCaches holds one prepCache per preparedKey.
var prepCaches sync.Map

func prepCacheFor(settings string) *prepCache {
	c, _ := prepCaches.LoadOrStore(settings, &prepCache{})
	return c.(*prepCache)
}

func (c *prepCache) store(key string, e *storage.Entry, p *prepared) {
	s := &prepSlot{e: weak.Make(e), p: p}
	c.m.Store(key, s)
	runtime.AddCleanup(e, func(s *prepSlot) { c.m.CompareAndDelete(key, s) }, s)
}

func (c *prepCache) load(key string, e *storage.Entry) *prepared {
	if v, ok := c.m.Load(key); ok {
		if s := v.(*prepSlot); s.e.Value() == e {
			return s.p
		}
	}
	return nil
}

// writeHeader copies the prepared header into dst with one allocation for
// all value slices, so later handlers may change the response header in
// place without touching the stored entry.
func (p *prepared) writeHeader(dst http.Header) {
	buf := make([]string, p.nvals)
	i := 0
	for n, k := range p.keys {
		j := i + copy(buf[i:], p.vals[n])
		dst[k] = buf[i:j:j]
		i = j
	}
}
