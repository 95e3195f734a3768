package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/storage"
)

// PurgeConfig lets requests on the site purge the stored responses of their
// URL, e.g. `curl -X PURGE https://example.com/page`. It is off unless
// configured, and a purge request must match one of the request matcher
// sets given with it (typically remote_ip); one that does not gets 405 and
// removes nothing.
//
// Risk: anyone who can send a matching request can empty the cache one URL
// at a time and send every following request to the origin. Restrict it to
// trusted addresses (remote_ip, or client_ip behind a trusted proxy) or to
// requests carrying a secret header, and prefer the admin API, which is
// never reachable through a site.
//
// A successful purge answers 200 with a JSON body:
// {"purged": <responses removed>, "keys": [...]}.
type PurgeConfig struct {
	// Method is the request method that purges. It cannot be GET or HEAD.
	// Default: PURGE.
	Method string `json:"method,omitempty"`

	// MatchersRaw are request matcher sets (modules in http.matchers); a
	// purge request must match at least one set. Required: without it
	// anyone could purge.
	MatchersRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	matchers caddyhttp.MatcherSets
}

func (p *PurgeConfig) validate() error {
	if p == nil {
		return nil
	}
	if p.Method != "" {
		if !isToken(p.Method) {
			return fmt.Errorf("purge method %q: not an HTTP method token", p.Method)
		}
		if p.Method == http.MethodGet || p.Method == http.MethodHead {
			return fmt.Errorf("purge method %q: GET and HEAD are served from the cache; choose another method (default PURGE)", p.Method)
		}
	}
	if len(p.MatchersRaw) == 0 && len(p.matchers) == 0 { // the raw sets are cleared once loaded
		return fmt.Errorf("purge: a request matcher is required (e.g. remote_ip 10.0.0.0/8): without one anyone could purge")
	}
	return nil
}

func (p *PurgeConfig) provision(ctx caddy.Context) error {
	if p.Method == "" {
		p.Method = "PURGE"
	}
	if err := p.validate(); err != nil {
		return err
	}
	mods, err := ctx.LoadModule(p, "MatchersRaw")
	if err != nil {
		return fmt.Errorf("purge: loading request matchers: %w", err)
	}
	if err := p.matchers.FromInterface(mods); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(s[i])) &&
			(('a' > s[i] || s[i] > 'z') && ('A' > s[i] || s[i] > 'Z') && ('0' > s[i] || s[i] > '9')) {
			return false
		}
	}
	return true
}

// isPurge reports whether r is an HTTP purge request for this handler.
func (h *Handler) isPurge(r *http.Request) bool {
	return h.ops != nil && h.ops.purge != nil && r.Method == h.ops.purge.Method
}

// servePurge answers an HTTP purge request: 405 unless it matches the
// purge matchers, else it removes every stored response of its URL.
func (h *Handler) servePurge(w http.ResponseWriter, r *http.Request) error {
	h.count(resultBypass)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.cache.status", statusBypass)
		repl.Set("http.cache.detail", "purge")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	ok, err := h.ops.purge.matchers.AnyMatchWithError(r)
	if err != nil || !ok {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":"purge not allowed"}` + "\n"))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), purgeTimeout(h))
	defer cancel()
	u := h.effectiveURL(r)
	res := h.purge(ctx, purgeRequest{URL: u.String()}, u)
	status := http.StatusOK
	if res.Error != "" {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(struct {
		Purged int      `json:"purged"`
		Keys   []string `json:"keys,omitempty"`
		Error  string   `json:"error,omitempty"`
	}{res.Removed, res.Keys, res.Error})
}

// purgeTimeout bounds one HTTP purge: a few storage calls.
func purgeTimeout(h *Handler) time.Duration {
	return 4 * time.Duration(h.StorageTimeout)
}

// purgeRequest is the body of POST /cache/purge: exactly one of URL, Prefix,
// Host, Tag, Group or All.
type purgeRequest struct {
	// URL purges one URL: all its Vary variants and, when the key
	// includes request headers, every such variant (GET and HEAD share
	// them).
	URL string `json:"url,omitempty"`
	// Prefix purges every URL starting with it (scheme://host/path…).
	Prefix string `json:"prefix,omitempty"`
	// Host purges every URL of that host (http and https; include the
	// port when it is not the default).
	Host string `json:"host,omitempty"`
	// Tag purges every response recorded with that surrogate key.
	Tag string `json:"tag,omitempty"`
	// Group purges every response in that cache group (RFC 9875
	// Cache-Groups; case-sensitive), of every origin unless Origin is set.
	Group string `json:"group,omitempty"`
	// Origin restricts a purge by group to one origin, scheme://host[:port]
	// (without a port, also the non-default listener ports requests came
	// in on, as a purge by url).
	Origin string `json:"origin,omitempty"`
	// All purges everything.
	All bool `json:"all,omitempty"`
	// DryRun reports what would be removed without removing it.
	DryRun bool `json:"dry_run,omitempty"`
	// Handler restricts the purge to the handler with this name.
	Handler string `json:"handler,omitempty"`
}

// check validates the request and returns the parsed URL for a url purge.
func (p *purgeRequest) check() (*url.URL, error) {
	n := 0
	for _, set := range []bool{p.URL != "", p.Prefix != "", p.Host != "", p.Tag != "", p.Group != "", p.All} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("give exactly one of url, prefix, host, tag, group or all (got %d)", n)
	}
	if p.Origin != "" {
		if p.Group == "" {
			return nil, fmt.Errorf("origin %q: only with group", p.Origin)
		}
		if _, err := normalizeOrigin(p.Origin); err != nil {
			return nil, err
		}
	}
	switch {
	case p.Group != "":
		if len(p.Group) > maxGroupNameLen {
			return nil, fmt.Errorf("group: longer than %d bytes, the longest group name recorded", maxGroupNameLen)
		}
	case p.Tag != "":
		if strings.ContainsAny(p.Tag, " \t") {
			return nil, fmt.Errorf("tag %q: a surrogate key never holds a space or tab", p.Tag)
		}
	case p.URL != "":
		return parseAbsURL("url", p.URL)
	case p.Prefix != "":
		if lp := strings.ToLower(p.Prefix); !strings.HasPrefix(lp, "http://") && !strings.HasPrefix(lp, "https://") {
			return nil, fmt.Errorf("prefix %q: must start with http:// or https://", p.Prefix)
		}
	case p.Host != "":
		if strings.ContainsAny(p.Host, "/ ?#") {
			return nil, fmt.Errorf("host %q: want a host name, with a port when not the default", p.Host)
		}
	}
	return nil, nil
}

// parseAbsURL parses an absolute http(s) URL given as option opt.
func parseAbsURL(opt, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", opt, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: want an absolute http:// or https:// URL", opt, raw)
	}
	return u, nil
}

// maxReportedKeys bounds the keys listed in a purge result.
const maxReportedKeys = 1000

// purgeResult is what one handler's store removed (or would remove).
type purgeResult struct {
	Handler string `json:"handler"`
	Backend string `json:"backend"`
	// Removed counts stored responses (Vary index entries are removed
	// along with their variants but not counted).
	Removed int `json:"removed"`
	// Keys are the keys of those responses, at most 1000.
	Keys          []string `json:"keys,omitempty"`
	KeysTruncated bool     `json:"keys_truncated,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// keySet collects the keys a purge removes.
type keySet struct {
	responses []string // counted
	others    []string // Vary indexes, unreadable entries
}

// kind names what selects the entries, for the purges metric; u is
// req.URL parsed.
func (p *purgeRequest) kind(u *url.URL) string {
	switch {
	case u != nil:
		return "url"
	case p.Tag != "":
		return "tag"
	case p.Prefix != "":
		return "prefix"
	case p.Host != "":
		return "host"
	case p.Group != "":
		return "group"
	}
	return "all"
}

// purge removes from h's store what req selects; u is req.URL parsed.
func (h *Handler) purge(ctx context.Context, req purgeRequest, u *url.URL) purgeResult {
	res := purgeResult{Handler: h.ops.name, Backend: h.backendName}
	var ks keySet
	var err error
	switch {
	case u != nil:
		err = h.urlKeys(ctx, u, &ks)
	case req.Tag != "":
		err = h.tagKeys(ctx, req.Tag, &ks)
	case req.Group != "":
		var origins []string
		if origins, err = h.groupOrigins(req.Origin); err == nil {
			err = h.groupKeys(ctx, req.Group, origins, &ks)
		}
	case req.Prefix != "":
		err = h.walkKeys(ctx, []string{h.scope + normalizePrefix(req.Prefix)}, nil, &ks)
	case req.Host != "":
		err = h.walkKeys(ctx, []string{h.scope + "http://" + normalizeHost(req.Host, "http") + "/", h.scope + "https://" + normalizeHost(req.Host, "https") + "/"}, nil, &ks)
	case req.All:
		err = h.walkKeys(ctx, []string{h.scope}, nil, &ks)
	}
	if err == nil && !req.DryRun {
		err = h.deleteKeys(ctx, &ks)
		inv := invalidation{Keys: append(slices.Clone(ks.responses), ks.others...)}
		switch {
		case req.Tag != "":
			inv.Prefix, inv.Tag = h.scope, req.Tag
		case req.Group != "":
			origins, _ := h.groupOrigins(req.Origin) // checked above
			inv.Prefix, inv.Tag = h.scope, h.announceGroup(req.Group, origins)
			h.countGroupInvalidation(groupSourcePurge)
		case req.Prefix != "":
			inv.Prefix = h.scope + normalizePrefix(req.Prefix)
		case req.Host != "":
			h.announce(invalidation{Prefix: h.scope + "https://" + normalizeHost(req.Host, "https") + "/"})
			inv.Prefix = h.scope + "http://" + normalizeHost(req.Host, "http") + "/"
		case req.All:
			inv.Prefix = h.scope
		}
		if inv.Prefix != "" {
			inv.Keys = nil // the rule covers them, on every instance
		}
		h.announce(inv)
	}
	res.Removed = len(ks.responses)
	if !req.DryRun && h.ops.metrics != nil {
		h.ops.metrics.countPurge(req.kind(u), res.Removed)
	}
	res.Keys = displayKeys(unscopedKeys(ks.responses))
	slices.Sort(res.Keys)
	if len(res.Keys) > maxReportedKeys {
		res.Keys, res.KeysTruncated = res.Keys[:maxReportedKeys], true
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// deleteKeys removes the keys of ks: in batches when the store is a
// storage.BatchDeleter (h.ops.raw itself, so that a tiered store drops its
// hot copies too), one Delete per key otherwise.
func (h *Handler) deleteKeys(ctx context.Context, ks *keySet) error {
	if bd, ok := h.ops.raw.(storage.BatchDeleter); ok {
		keys := append(slices.Clone(ks.responses), ks.others...)
		if len(keys) == 0 {
			return nil
		}
		err := bd.DeleteMany(ctx, keys)
		if err == nil {
			h.writeOK()
		} else {
			h.writeFailed("delete", err)
			return fmt.Errorf("deleting %d keys failed: %w", len(keys), err)
		}
		return nil
	}
	var firstErr error
	failed := 0
	for _, list := range [][]string{ks.responses, ks.others} {
		for _, k := range list {
			if err := h.del(ctx, k); err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}
	if firstErr != nil {
		return fmt.Errorf("deleting %d of %d keys failed, first: %w", failed, len(ks.responses)+len(ks.others), firstErr)
	}
	return nil
}

// urlKey returns the primary key under which u's response is stored
// (without key header and cookie lines): the same normal form as the
// request path uses (cacheKey), so /p%41th purges /pAth and /a? purges /a.
// With key.template, the template is expanded for a plain GET of u.
func (h *Handler) urlKey(u *url.URL) string {
	if h.Key != nil && h.Key.Template != "" {
		r, err := http.NewRequest(http.MethodGet, u.String(), nil) //nolint:gosec // G704: built to expand the key template, never sent
		if err != nil {
			return h.scope + u.String()
		}
		return h.scope + caddyhttp.NewTestReplacer(r).ReplaceAll(h.Key.Template, "")
	}
	scheme := strings.ToLower(u.Scheme)
	return h.scope + scheme + "://" + normalizeHost(u.Host, scheme) + normalTarget(u.EscapedPath(), u.RawQuery, h.ignoredQuery())
}

// urlKeys finds the keys stored for u: its primary key and Vary variants
// (including the variants of rewritten targets), and when the key includes
// request headers or cookies, every such primary key with its variants.
// When u has no port, the keys stored through listeners on other ports
// (portSet) are included. Without key headers it needs no listing, so it is
// cheap on every backend.
func (h *Handler) urlKeys(ctx context.Context, u *url.URL, ks *keySet) error {
	urls := []*url.URL{u}
	if u.Port() == "" && h.ports != nil {
		for _, p := range h.ports.list() {
			v := *u
			v.Host = u.Hostname() + ":" + p
			if strings.IndexByte(u.Hostname(), ':') >= 0 {
				v.Host = "[" + u.Hostname() + "]:" + p
			}
			urls = append(urls, &v)
		}
	}
	for _, u := range urls {
		primary := h.urlKey(u)
		if err := h.primaryKeys(ctx, primary, ks); err != nil {
			return err
		}
		if !h.hasKeyExtras() {
			continue
		}
		if h.ops.lister == nil {
			return fmt.Errorf("backend %s cannot list entries, so the key-header variants of %s cannot be found", h.backendName, primary)
		}
		err := h.ops.lister.List(ctx, primary+"\n", func(k string, meta *storage.Entry) error {
			if meta.Kind == storage.KindResponse {
				ks.responses = append(ks.responses, k)
			} else {
				ks.others = append(ks.others, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// primaryKeys adds a primary key and, when it holds a Vary index, the
// variants it lists.
func (h *Handler) primaryKeys(ctx context.Context, key string, ks *keySet) error {
	e, err := h.load(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case errors.Is(err, storage.ErrCorrupt):
		ks.others = append(ks.others, key)
		return nil
	case err != nil:
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if e.Kind != storage.KindVary {
		ks.responses = append(ks.responses, key)
		return nil
	}
	ks.others = append(ks.others, key)
	for _, v := range e.Variants {
		if _, err := h.load(ctx, v); err == nil {
			ks.responses = append(ks.responses, v)
		} else if !errors.Is(err, storage.ErrNotFound) {
			ks.others = append(ks.others, v)
		}
	}
	return nil
}

// tagKeys finds the responses recorded with tag, through the store's tag
// index when it has one, else by walking every entry.
func (h *Handler) tagKeys(ctx context.Context, tag string, ks *keySet) error {
	if ti, ok := optional[storage.TagIndex](h.ops.raw); ok {
		keys, err := ti.KeysForTag(ctx, tag)
		if err != nil {
			return fmt.Errorf("looking up tag %q: %w", tag, err)
		}
		_, exact := ti.(storage.ExactTagIndex)
		for _, k := range keys {
			if !strings.HasPrefix(k, h.scope) {
				continue // another handler's entry on a shared store
			}
			if exact {
				// the index lists only entries stored with tag: no
				// read of each to check
				ks.responses = append(ks.responses, k)
				continue
			}
			if e, err := h.load(ctx, k); err == nil && slices.Contains(e.Tags, tag) {
				ks.responses = append(ks.responses, k)
			}
		}
		return nil
	}
	return h.walkKeys(ctx, []string{h.scope}, func(_ string, meta *storage.Entry) bool {
		return meta.Kind == storage.KindResponse && slices.Contains(meta.Tags, tag)
	}, ks)
}

// walkKeys lists the entries under each prefix, keeping those match
// accepts (all when nil).
func (h *Handler) walkKeys(ctx context.Context, prefixes []string, match func(string, *storage.Entry) bool, ks *keySet) error {
	if h.ops.lister == nil {
		return fmt.Errorf("backend %s cannot list entries; only purge by url works with it", h.backendName)
	}
	for _, p := range prefixes {
		err := h.ops.lister.List(ctx, p, func(k string, meta *storage.Entry) error {
			if match != nil && !match(k, meta) {
				return nil
			}
			if meta.Kind == storage.KindResponse {
				ks.responses = append(ks.responses, k)
			} else {
				ks.others = append(ks.others, k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing entries: %w", err)
		}
	}
	return nil
}

// optional finds an optional interface on a store or, for a tiered store
// (which has Cold), on its cold tier: the hot tier is a memory cache that
// needs neither an index nor a sweep.
func optional[T any](st storage.Store) (T, bool) {
	if v, ok := st.(T); ok {
		return v, true
	}
	if c, ok := st.(interface{ Cold() storage.Store }); ok {
		v, ok := c.Cold().(T)
		return v, ok
	}
	var zero T
	return zero, false
}

// normalizePrefix lower-cases the scheme and host of a URL prefix, removes
// a default port and normalises percent-encoding, as keys have them.
func normalizePrefix(p string) string {
	before, after, ok := strings.Cut(p, "://")
	if !ok {
		return p
	}
	scheme := strings.ToLower(before)
	rest := after
	host, path := rest, ""
	if j := strings.IndexAny(rest, "/?"); j >= 0 {
		host, path = rest[:j], rest[j:]
	}
	if path == "" {
		// a partial host: only lower-case it
		return scheme + "://" + strings.ToLower(host)
	}
	return scheme + "://" + normalizeHost(host, scheme) + normalPercent(path)
}

// parsePurge reads the purge option:
//
//	purge [<method>] {
//		<request matchers>
//	}
//
// e.g. `purge { remote_ip 10.0.0.0/8 127.0.0.1 }`. The block is one matcher
// set (all matchers in it must match) and is required.
func (h *Handler) parsePurge(d *caddyfile.Dispenser) error {
	p := new(PurgeConfig)
	if d.NextArg() {
		p.Method = d.Val()
		if !isToken(p.Method) || p.Method == http.MethodGet || p.Method == http.MethodHead {
			return d.Errf("purge method %q: want a method other than GET and HEAD (default PURGE)", p.Method)
		}
		if d.NextArg() {
			return d.Errf("purge: unexpected argument %q: request matchers go in a block", d.Val())
		}
	}
	set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
	if err != nil {
		return err
	}
	if len(set) == 0 {
		return d.Errf("purge: a block of request matchers is required (e.g. remote_ip 10.0.0.0/8): without one anyone could purge")
	}
	p.MatchersRaw = caddyhttp.RawMatcherSets{set}
	h.Purge = p
	return nil
}
