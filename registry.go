package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
)

// Live handlers register here when provisioned and leave at Cleanup, so that
// the admin API, the metrics collector and the `caddy cache` commands can
// reach their stores. During a reload the new config provisions before the
// old one is cleaned up, so a name can briefly belong to two handlers: the
// most recently provisioned one is the one used.
var registry struct {
	sync.RWMutex
	seq  uint64
	list []*registered
}

type registered struct {
	h    *Handler
	name string
	cfg  context.Context // the config that provisioned h (its identity)
	seq  uint64
}

// ops is the operational state of a handler: its registry name, metrics,
// surrogate key settings and the notes explain uses.
type ops struct {
	name    string
	auto    bool          // name was generated
	raw     storage.Store // the store as loaded, before instrumentation
	lister  storage.Lister
	statser storage.Statser
	metrics *handlerMetrics
	tags    tagRules
	notes   *noteCache
	purge   *PurgeConfig
}

// validName reports whether a handler name is usable as an identifier in
// URLs, command lines and metric labels.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '/':
		default:
			return false
		}
	}
	return true
}

// validateOps checks the options this file and its siblings own.
func (h *Handler) validateOps() error {
	if h.Name != "" && !validName(h.Name) {
		return fmt.Errorf("name %q: use letters, digits and - _ . : / only (at most 128)", h.Name)
	}
	if err := h.SurrogateKeys.validate(); err != nil {
		return err
	}
	return h.Purge.validate()
}

// provisionOps runs at the end of Provision: it sets up surrogate keys, the
// purge matcher and metrics, instruments the store and registers the
// handler.
func (h *Handler) provisionOps(ctx caddy.Context) error {
	o := &ops{raw: h.store, notes: newNoteCache(noteCacheSize)}
	o.lister, _ = h.store.(storage.Lister)
	o.statser, _ = h.store.(storage.Statser)
	o.tags = h.SurrogateKeys.rules()
	if h.Purge != nil {
		if err := h.Purge.provision(ctx); err != nil {
			return err
		}
		o.purge = h.Purge
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering cache metrics: %w", err)
	}
	registry.Lock()
	defer registry.Unlock()
	o.name, o.auto = h.Name, h.Name == ""
	if o.auto {
		o.name = autoName(h.backendName, h.storageID)
	}
	for _, r := range registry.list {
		if r.name == o.name && r.cfg == ctx.Context && r.h.storageID != h.storageID {
			return fmt.Errorf("name %q: already used by a cache handler on another storage in this config (handlers share a name only to share one store)", o.name)
		}
	}
	if other := sharesStoreWith(h.storageID, o.name, ctx.Context); other != "" {
		h.logger.Warn("two cache handlers share a store under different names: their entries stay apart (purges by one do not reach the other's) while they share its size; give them the same name to share one cache",
			zap.String("handler", o.name), zap.String("other", other), zap.String("backend", h.backendName))
	}
	o.metrics = newHandlerMetrics(o.name)
	if !h.isMemory {
		// the in-process memory store answers in ~100 ns: timing it
		// would cost more than the call
		h.store = instrument(h.store, h.backendName)
	}
	h.ops = o
	registry.seq++
	registry.list = append(registry.list, &registered{h: h, name: o.name, cfg: ctx.Context, seq: registry.seq})
	return nil
}

// sharesStoreWith returns the name of another handler of the config cfg on
// the store storageID under a name other than name, or "". Call with the
// registry locked.
func sharesStoreWith(storageID, name string, cfg context.Context) string {
	for _, r := range registry.list {
		if r.cfg == cfg && r.name != name && r.h.storageID == storageID {
			return r.name
		}
	}
	return ""
}

// autoName is the generated name of a handler without one: the backend and
// a hash of its storage identity, stable across reloads and restarts, and
// the same for every handler on that store.
func autoName(backend, storageID string) string {
	sum := sha256.Sum256([]byte(storageID))
	return backend + "-" + hex.EncodeToString(sum[:4])
}

// cleanupOps unregisters the handler; safe when provisioning failed.
func (h *Handler) cleanupOps() {
	if h.ops == nil {
		return
	}
	registry.Lock()
	defer registry.Unlock()
	still := false
	for i := 0; i < len(registry.list); i++ {
		r := registry.list[i]
		if r.h == h {
			registry.list = append(registry.list[:i], registry.list[i+1:]...)
			i--
			continue
		}
		if r.name == h.ops.name {
			still = true
		}
	}
	if !still {
		h.ops.metrics.forget()
	}
}

// liveHandlers returns the registered handlers, one per name (the most
// recently provisioned), sorted by name.
func liveHandlers() []*Handler {
	registry.RLock()
	defer registry.RUnlock()
	newest := make(map[string]*registered, len(registry.list))
	for _, r := range registry.list {
		if cur, ok := newest[r.name]; !ok || r.seq > cur.seq {
			newest[r.name] = r
		}
	}
	names := make([]string, 0, len(newest))
	for n := range newest {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*Handler, len(names))
	for i, n := range names {
		out[i] = newest[n].h
	}
	return out
}

// handlerNamed returns the live handler with that name, or nil.
func handlerNamed(name string) *Handler {
	for _, h := range liveHandlers() {
		if h.ops.name == name {
			return h
		}
	}
	return nil
}

// parseName reads the name option: `name <name>`.
func (h *Handler) parseName(d *caddyfile.Dispenser) error {
	if !d.AllArgs(&h.Name) {
		return d.ArgErr()
	}
	if !validName(h.Name) {
		return d.Errf("name %q: use letters, digits and - _ . : / only (at most 128)", h.Name)
	}
	return nil
}
