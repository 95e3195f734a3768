package cache

import (
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
)

// Surrogate keys (tags) let an origin label responses so that they can be
// purged together: `Surrogate-Key: product-42 category-7` (space-separated,
// as Fastly and Varnish xkey read it) or `Cache-Tag: product-42,category-7`
// (comma-separated). The handler records them in the stored entry's Tags
// when it stores a response, and removes the fields from what it sends to
// the client (unless strip is off): they are not stored in the entry's
// header either, and they are removed again when a stored response is
// served, so a response stored while strip was off, or a header merged from
// a 304, never shows them. Responses the cache bypasses entirely (other
// methods, upgrades, requests with a body) pass through untouched.

// Limits on the tags recorded for one response; tags beyond them are
// ignored.
const (
	maxTagsPerEntry = 256
	maxTagLen       = 512
)

// SurrogateKeys configures which response fields carry surrogate keys.
type SurrogateKeys struct {
	// Headers lists the response header fields read as tags.
	// Surrogate-Key and Xkey are read as space-separated lists, every other
	// field as a comma-separated list. Default: Surrogate-Key and Cache-Tag.
	Headers []string `json:"headers,omitempty"`

	// Strip removes those fields from responses sent to clients.
	// Default: true.
	Strip *bool `json:"strip,omitempty"`

	// Disabled turns surrogate keys off: no tags are recorded and the
	// fields pass through (and are stored) like any other.
	Disabled bool `json:"disabled,omitempty"`
}

// tagRules is the provisioned form of SurrogateKeys.
type tagRules struct {
	fields []tagField
	strip  bool
}

type tagField struct {
	name  string // canonical
	space bool   // space-separated (else comma-separated)
}

func (s *SurrogateKeys) validate() error {
	if s == nil {
		return nil
	}
	for _, f := range s.Headers {
		if f == "" || strings.ContainsAny(f, " :\t,") {
			return fmt.Errorf("surrogate_keys headers: %q is not a header field name", f)
		}
	}
	return nil
}

func (s *SurrogateKeys) rules() tagRules {
	if s != nil && s.Disabled {
		return tagRules{}
	}
	names := []string{"Surrogate-Key", "Cache-Tag"}
	strip := true
	if s != nil {
		if len(s.Headers) > 0 {
			names = s.Headers
		}
		if s.Strip != nil {
			strip = *s.Strip
		}
	}
	r := tagRules{strip: strip}
	for _, n := range names {
		c := textproto.CanonicalMIMEHeaderKey(n)
		r.fields = append(r.fields, tagField{name: c, space: c == "Surrogate-Key" || c == "Xkey"})
	}
	return r
}

// tagsOf returns the surrogate keys of a response header, in order, without
// duplicates; nil when there are none.
func (h *Handler) tagsOf(hdr http.Header) []string {
	if h.ops == nil {
		return nil
	}
	var tags []string
	for _, f := range h.ops.tags.fields {
		for _, v := range hdr[f.name] {
			sep := func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }
			if f.space {
				sep = func(r rune) bool { return r == ' ' || r == '\t' }
			}
			for _, t := range strings.FieldsFunc(v, sep) {
				if len(t) > maxTagLen || len(tags) >= maxTagsPerEntry || slices.Contains(tags, t) {
					continue
				}
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// stripTagHeaders removes the surrogate key fields from hdr when strip is on.
func (h *Handler) stripTagHeaders(hdr http.Header) {
	if h.ops == nil || !h.ops.tags.strip {
		return
	}
	for _, f := range h.ops.tags.fields {
		delete(hdr, f.name)
	}
}

// afterDecide runs once the handler has decided whether to store an origin
// response: it strips the surrogate keys from the client's copy and
// remembers why a response was not stored, for explain.
func (h *Handler) afterDecide(key string, hdr http.Header, stored bool, detail string) {
	h.stripTagHeaders(hdr)
	if h.ops == nil {
		return
	}
	if stored {
		h.ops.notes.forget(key)
	} else if detail != "" {
		h.ops.notes.note(key, detail, time.Now())
	}
}

// noteCacheSize bounds the "not stored" reasons remembered per handler.
const noteCacheSize = 4096

// noteCache remembers, for recently fetched keys, why their response was
// not stored, so that explain can say "not stored: Set-Cookie" instead of
// just "not in the cache". It is bounded; beyond the bound an arbitrary
// note is dropped.
type noteCache struct {
	mu    sync.Mutex
	max   int
	notes map[string]note
}

type note struct {
	reason string
	at     time.Time
}

func newNoteCache(max int) *noteCache {
	return &noteCache{max: max, notes: make(map[string]note)}
}

func (c *noteCache) note(key, reason string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.notes[key]; ok && n.reason == reason && now.Sub(n.at) < time.Second {
		return
	}
	if _, ok := c.notes[key]; !ok && len(c.notes) >= c.max {
		for k := range c.notes {
			delete(c.notes, k)
			break
		}
	}
	c.notes[key] = note{reason, now}
}

func (c *noteCache) forget(key string) {
	c.mu.Lock()
	delete(c.notes, key)
	c.mu.Unlock()
}

func (c *noteCache) lookup(key string) (note, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.notes[key]
	return n, ok
}

// parseSurrogateKeys reads the surrogate_keys option:
//
//	surrogate_keys off
//	surrogate_keys {
//		headers <fields...>
//		strip on|off
//	}
func (h *Handler) parseSurrogateKeys(d *caddyfile.Dispenser) error {
	s := new(SurrogateKeys)
	h.SurrogateKeys = s
	if d.NextArg() {
		if d.Val() != "off" {
			return d.Errf("surrogate_keys %q: want off, or options in a block", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		s.Disabled = true
		if d.NextBlock(d.Nesting()) {
			return d.Errf("surrogate_keys off takes no block")
		}
		return nil
	}
	once := make(caddyopt.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if err := once.Check(d, "surrogate_keys"); err != nil {
			return err
		}
		switch opt {
		case "headers":
			s.Headers = d.RemainingArgs()
			if len(s.Headers) == 0 {
				return d.ArgErr()
			}
			for _, f := range s.Headers {
				if strings.ContainsAny(f, " :\t,") {
					return d.Errf("surrogate_keys headers: %q is not a header field name", f)
				}
			}
		case "strip":
			v, err := caddyopt.Word(d, "on", "off")
			if err != nil {
				return err
			}
			s.Strip = new(v == "on")
		default:
			return caddyopt.Unknown(d, "surrogate_keys", opt, surrogateKeysOptions)
		}
	}
	return nil
}
