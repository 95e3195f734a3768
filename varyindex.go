package cache

import (
	"context"
	"net/http"
	"slices"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// The Vary index: a URL whose responses vary has, under its primary key, an
// index entry (storage.KindVary) naming the selecting fields and the
// variants stored; each variant is under its own key (key.go).

// notReusable says why the header a 304 produced makes the stored response
// one a shared cache must not reuse any more, or "".
func (h *Handler) notReusable(x *exchange, old *storage.Entry, merged http.Header, respCC policy.Directives, forced, ruleNoStore bool) string {
	n := len(old.Vary)
	names, why := x.storableVary(reprStatus(old.Status), merged, respCC, forced, ruleNoStore, n > 0 && old.Vary[n-1] == rewriteField)
	if why == "" && !slices.Equal(names, old.Vary) {
		why = "Vary changed"
	}
	return why
}

// storableVary decides whether a response (a new one, or a stored one as a
// 304 updated it) may be stored for the request, and returns its selecting
// names (rewriteField last when rewritten) or why not.
func (x *exchange) storableVary(status int, hdr http.Header, respCC policy.Directives, forced, ruleNoStore, rewritten bool) ([]string, string) {
	h := x.h
	if ruleNoStore {
		return nil, "ttl rule no-store"
	}
	checkCC := respCC
	if h.ignoreCC {
		checkCC = policy.Directives{NoStore: respCC.NoStore, Private: respCC.Private}
	}
	if ok, why := policy.Storable(x.r.Header, x.reqCC, status, hdr, checkCC, h.storeRules(forced)); !ok {
		return nil, why
	}
	names, star := policy.VaryNames(hdr)
	if star {
		return nil, "Vary: *"
	}
	if rewritten {
		names = append(names, rewriteField)
	}
	return names, ""
}

// varyLocks serialise, within the process, the read-modify-write of Vary
// indexes: without them concurrent variants of one URL drop each other from
// the index, and a variant missing from its index escapes max_variants.
// Striped by key; waiting for one honours ctx (storage_timeout).
var varyLocks = func() (l [64]chan struct{}) {
	for i := range l {
		l[i] = make(chan struct{}, 1)
	}
	return l
}()

func lockVaryIndex(ctx context.Context, key string) (unlock func(), ok bool) {
	var sum uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(key); i++ {
		sum = (sum ^ uint32(key[i])) * 16777619
	}
	l := varyLocks[sum%uint32(len(varyLocks))]
	select {
	case l <- struct{}{}:
		return func() { <-l }, true
	case <-ctx.Done():
		return nil, false
	}
}

// updateVaryIndex records a new variant in the URL's Vary index, dropping the
// oldest variants beyond max_variants.
func (h *Handler) updateVaryIndex(ctx context.Context, key string, e *storage.Entry, vk string) {
	unlock, ok := lockVaryIndex(ctx, key)
	if !ok {
		return
	}
	defer unlock()
	var evicted []string
	next := func(old *storage.Entry) *storage.Entry {
		evicted = evicted[:0]
		idx := &storage.Entry{Kind: storage.KindVary, URL: e.URL, Vary: e.Vary, Expires: e.Expires, Header: http.Header{}}
		if old != nil && old.Kind == storage.KindVary && slices.Equal(old.Vary, e.Vary) {
			for _, v := range old.Variants {
				if v != vk {
					idx.Variants = append(idx.Variants, v)
				}
			}
			if old.Expires.After(idx.Expires) {
				idx.Expires = old.Expires
			}
		}
		idx.Variants = append(idx.Variants, vk)
		for len(idx.Variants) > h.MaxVariants {
			evicted = append(evicted, idx.Variants[0])
			idx.Variants = idx.Variants[1:]
		}
		return idx
	}
	if h.updater != nil {
		// shared by several instances: one atomic read-modify-write, so
		// that variants added elsewhere at the same moment are kept
		err := h.updater.Update(ctx, key, next)
		if h.dropHot != nil {
			h.dropHot(key) // the hot copy is the old index
		}
		if err != nil {
			h.storeFailed("put", err)
			return
		}
		h.storeUp()
	} else {
		var old *storage.Entry
		if o, err := h.get(ctx, key); err == nil {
			old = o
		}
		idx := next(old)
		if err := h.put(ctx, key, idx); err != nil {
			return
		}
	}
	for _, v := range evicted {
		_ = h.del(ctx, v)
	}
}
