package cache

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// prepared is what a hit needs from a stored response, derived once when the
// response is stored (Entry.Prepared) instead of on every hit: the
// directives that govern reuse, and the header to send laid out as slices,
// already without the fields that never reach clients (targeted
// cache-control, surrogate keys) and with Content-Length set.
type prepared struct {
	owner     string // the configuration it was derived for (preparedKey)
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
	p := &prepared{owner: h.prepKey, cc: h.directives(e.Header), validator: policy.HasValidator(e.Header)}
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
	sort.Strings(p.keys)
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

// preparedOf returns the entry's prepared data, deriving it when the entry
// has none for this configuration (it came back from bytes).
func (h *Handler) preparedOf(e *storage.Entry) *prepared {
	if p, ok := e.Prepared.(*prepared); ok && p.owner == h.prepKey {
		return p
	}
	return h.prepare(e)
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
