// Package cache is an HTTP response cache for Caddy: the handler
// http.handlers.cache, a shared cache as RFC 9111 defines it, with pluggable
// storage backends (guest modules in http.handlers.cache.storage).
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
	"github.com/caddycache/caddy-cache/storage/tiered"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults.
const (
	DefaultMaxEntrySize   = 16 << 20
	DefaultLockTimeout    = 10 * time.Second
	DefaultStorageTimeout = time.Second
	DefaultStatusHeader   = "Caddy"
	DefaultMaxVariants    = 64
	DefaultHotTierSize    = 64 << 20
	// SurrogateToken is this cache's device token in Surrogate-Capability
	// and Surrogate-Control targets.
	SurrogateToken = "caddy"
	// DefaultRevalidateKeep is how long a stale response with a validator is
	// kept for conditional revalidation after its freshness ends.
	DefaultRevalidateKeep = time.Hour
)

// Handler caches responses of the handlers that follow it in the route
// (typically reverse_proxy), as a shared cache per RFC 9111.
//
// Put it in a route before the handler whose responses it caches. The
// Caddyfile directive `cache` is ordered before `encode`, after
// authentication and rewrites, so that auth still runs on every hit and the
// key uses the final URI.
//
// Every response it handles carries an RFC 9211 Cache-Status header, e.g.
// `Caddy; hit; ttl=42`, `Caddy; fwd=uri-miss; stored`,
// `Caddy; fwd=stale; fwd-status=304; stored`, `Caddy; fwd=bypass; detail="method"`.
//
// Placeholders set for later handlers and access logs:
//
// Placeholder | Description
// ------------|-------------
// `{http.cache.status}` | hit, miss, stale, revalidated or bypass
// `{http.cache.key}` | the cache key of the request without the handler scope ("" when bypassed before a key was made)
// `{http.cache.detail}` | why a response was not served from or not stored in the cache ("" otherwise)
// `{http.cache.stored}` | true or false once a response that was being stored is written, or not
type Handler struct {
	// StorageRaw selects where entries live: a module in the namespace
	// http.handlers.cache.storage, named by the "backend" key. Default:
	// SQLite in Caddy's data directory, behind the memory hot tier.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=http.handlers.cache.storage inline_key=backend"`

	// Memory is the byte size of the in-process hot tier that sits in front
	// of any storage other than memory, so that frequent hits do not touch
	// SQLite, the disk or the network. -1 (Caddyfile: `memory off`) turns it
	// off. Entries deleted or purged through this Caddy leave the hot tier
	// too, and with a store shared by several Caddy instances the others'
	// hot tiers drop them as well (at once on Redis, within
	// InvalidationInterval elsewhere: see sync.go). Default: 64 MiB.
	Memory int64 `json:"memory,omitempty"`

	// TTL is the freshness lifetime given to responses for which the origin
	// gives no explicit freshness (no s-maxage, max-age or Expires). It takes
	// precedence over the heuristic lifetime computed from Last-Modified.
	// Default: 0 (heuristic freshness only).
	TTL caddy.Duration `json:"ttl,omitempty"`

	// TTLRules give per-URL lifetimes, like requests-cache's
	// urls_expire_after: the first rule whose pattern matches wins and
	// replaces TTL. A rule can also forbid storing.
	TTLRules []TTLRule `json:"ttl_rules,omitempty"`

	// CacheControl is "respect" (default) or "ignore". With "ignore", the
	// lifetime of every response comes from TTLRules/TTL, whatever the
	// origin's Cache-Control, Expires and no-cache say; no-store, private and
	// Set-Cookie are still honoured, so private data is never shared.
	CacheControl string `json:"cache_control,omitempty"`

	// RequestCacheControl is "respect" (default) or "ignore". With
	// "ignore", the request's Cache-Control and Pragma are disregarded
	// (no-cache, max-age, min-fresh, max-stale, no-store, only-if-cached),
	// so that clients cannot force origin fetches or skip the cache; the
	// cache then answers as if every request carried none of them.
	RequestCacheControl string `json:"request_cache_control,omitempty"`

	// Methods lists the request methods served from the cache: GET and/or
	// HEAD (HEAD is answered from a stored GET). Default: both.
	Methods []string `json:"methods,omitempty"`

	// Statuses lists the status codes that may be stored without explicit
	// freshness ("heuristically cacheable"). Responses with other statuses
	// are stored only when they carry explicit freshness. Default: 200, 203,
	// 204, 300, 301, 308, 404, 405, 410, 414, 501.
	Statuses []int `json:"status,omitempty"`

	// Key changes what identifies a stored response.
	Key *KeyConfig `json:"key,omitempty"`

	// MaxEntrySize is the largest response body, in bytes, that is stored.
	// Larger responses stream to the client and are not stored.
	// Default: 16 MiB.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`

	// MaxVariants caps how many Vary variants of one URL are kept; the
	// oldest is dropped beyond it. Default: 64.
	MaxVariants int `json:"max_variants,omitempty"`

	// LockTimeout is how long concurrent misses for the same key wait for
	// the one request that fetches it before going to the origin themselves.
	// A negative value (Caddyfile: 0) turns coalescing off. Default: 10s.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`

	// InvalidationInterval is how often this Caddy reads the invalidations
	// (purges, unsafe-method invalidations) made by other Caddy instances
	// sharing the store, to drop them from its hot tier, on stores that
	// cannot broadcast them (all but Redis, whose pub/sub delivers them at
	// once). A hot-tier hit is at most this much older than a purge made
	// elsewhere. Default: 1s.
	InvalidationInterval caddy.Duration `json:"invalidation_interval,omitempty"`

	// StorageTimeout bounds every storage call. A slower or failing store
	// makes the request a miss that goes to the origin. Default: 1s.
	StorageTimeout caddy.Duration `json:"storage_timeout,omitempty"`

	// StatusHeader is the cache name written first in Cache-Status.
	// Default: "Caddy".
	StatusHeader string `json:"status_header,omitempty"`

	// StoreSetCookie allows storing responses that carry Set-Cookie. Off by
	// default: a shared cache must never give one client's cookie to another.
	StoreSetCookie bool `json:"store_set_cookie,omitempty"`

	// StaleWhileRevalidate is how long past its freshness a stored response
	// may be served while one background request revalidates it, when the
	// response has no stale-while-revalidate directive (RFC 5861).
	// Default: 0 (only when the origin says so).
	StaleWhileRevalidate caddy.Duration `json:"stale_while_revalidate,omitempty"`

	// StaleIfError is how long past its freshness a stored response may be
	// served when the origin fails (5xx or no response), when the response
	// has no stale-if-error directive (RFC 5861). Default: 0 (only when the
	// origin says so).
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`

	// RefreshAhead turns on refresh-ahead: a hit on a fresh response in
	// the last part of its freshness lifetime starts one background
	// refresh of it (conditional when it has a validator), so that popular
	// responses are renewed before they expire. A percentage ("10%") or a
	// fraction ("0.1") of the lifetime, or a duration ("30s", capped at
	// half the lifetime). In JSON a string, or a number for a fraction
	// (0.1). Default: off. See refresh.go.
	RefreshAhead RefreshAhead `json:"refresh_ahead,omitempty"`

	// RefreshAheadConcurrency bounds the background refreshes that
	// RefreshAhead runs at once; a hit that finds them all busy starts
	// none. Default: 8.
	RefreshAheadConcurrency int `json:"refresh_ahead_concurrency,omitempty"`

	// TargetedFields are the targeted cache-control fields (RFC 9213) this
	// cache obeys, in order of precedence, before Cache-Control. Each is
	// parsed as a Structured Field Dictionary; one that is not valid is
	// ignored (RFC 9213 §2.1). They are forwarded in responses to clients,
	// as RFC 9213 §2.1 recommends, so that a cache of the same class
	// downstream obeys them too (StripTargeted removes them).
	// Surrogate-Control (Edge Architecture 1.0) is read for the device token
	// "caddy", announced to the origin with Surrogate-Capability, and
	// removed from responses to clients unless ForwardTargeted is set, as
	// its specification asks.
	// Default: ["CDN-Cache-Control", "Surrogate-Control"].
	TargetedFields []string `json:"targeted_fields,omitempty"`

	// ForwardTargeted keeps Surrogate-Control in responses to clients; the
	// other targeted fields are forwarded anyway. Cannot be combined with
	// StripTargeted. Default: false (Surrogate-Control removed).
	ForwardTargeted bool `json:"forward_targeted,omitempty"`

	// StripTargeted removes every targeted field, Surrogate-Control
	// included, from responses to clients, for a cache that is the last of
	// its class (RFC 9213 §2.1 leaves that choice to it). Cannot be
	// combined with ForwardTargeted. Default: false (targeted fields
	// forwarded, except Surrogate-Control).
	StripTargeted bool `json:"strip_targeted,omitempty"`

	// Name identifies the handler in the admin API (/cache/ on Caddy's
	// admin endpoint), the `caddy cache` commands and the handler label of
	// the metrics; the same name in the next config (a reload) is the same
	// handler. The name also scopes the keys: handlers with different
	// names never read each other's entries, even on one store, and
	// handlers with the same name share their entries (give two handlers
	// the same name to share a cache on purpose; they must then use the
	// same storage). Default: the backend and a hash of the storage
	// identity (which data it reaches: the SQLite file, the Redis keyspace,
	// the memory store's name...), e.g. "sqlite-1a2b3c4d": stable across
	// reloads and restarts, the same for handlers on the same store (which
	// then share one cache) and different for handlers on different ones.
	Name string `json:"name,omitempty"`

	// SurrogateKeys chooses the response fields recorded as tags for purge
	// by tag, and whether they are stripped from responses to clients.
	// Default: Surrogate-Key and Cache-Tag, stripped.
	SurrogateKeys *SurrogateKeys `json:"surrogate_keys,omitempty"`

	// Purge lets matching requests on the site (method PURGE by default)
	// purge their URL. Off unless set; see PurgeConfig for the risk.
	Purge *PurgeConfig `json:"purge,omitempty"`

	store        storage.Store
	lister       storage.Lister
	backendName  string
	isMemory     bool
	hot          *memory.Memory  // hot tier in front of a non-memory store, or nil
	ccs          *ccCache        // parsed directives shared by the prepared data of hits (prepared.go)
	storageID    string          // which data the store reaches (storageIdentity)
	scope        string          // key prefix of this handler's name (scopeOf)
	ports        *portSet        // listener ports seen, for purges without a port
	sync         *syncer         // invalidations to and from other instances (sync.go)
	locker       storage.Locker  // the store's locks, for coalescing across instances (clusterlock.go)
	updater      storage.Updater // atomic updates of the Vary index across instances
	dropHot      func(string)    // removes a key from the hot tier only (tiered.DropHot)
	logger       *zap.Logger
	cacheable    func(int) bool
	ignoreCC     bool
	targets      []string
	strip        []string // targeted fields removed from responses to clients
	surrogate    bool
	allowGET     bool
	allowHEAD    bool
	flights      *flightGroup
	uncacheable  *passMemo
	quietStorage bool         // the store logs its own outages (storage.HealthLogger)
	health       *storeHealth // storecalls.go
	now          func() time.Time
	ops          *ops // registry name, metrics, tags, purge (registry.go)

	// maxBytes is the store's size bound, 0 if none or unknown (maxbytes.go).
	maxBytes int64

	// refresh-ahead (refresh.go)
	refreshFrac  float64       // refresh_ahead as a fraction of the lifetime, or
	refreshDur   time.Duration // as a duration
	refreshSlots chan struct{} // refresh_ahead_concurrency; nil when refresh-ahead is off
}

// TTLRule is one per-URL lifetime rule.
type TTLRule struct {
	// Match is a glob: `*` matches any run of characters, including `/`.
	// A pattern starting with `/` is matched against the path; otherwise
	// against host + path (e.g. `example.com/static/*`).
	Match string `json:"match"`
	// TTL is a duration ("10m"), "never" (no expiry: 1 year) or "no-store".
	TTL string `json:"ttl"`
	// ContentTypes lists the media types (e.g. "text/css", "image/*") a
	// response must have for a pattern that ends in an extension ("*.css")
	// to give it a lifetime. Default: the types of that extension in a
	// built-in table (css, js, json, images, fonts, media, …); a pattern
	// whose extension is not in the table applies to any type.
	ContentTypes []string `json:"content_types,omitempty"`

	lifetime time.Duration
	noStore  bool
}

// KeyConfig changes the cache key.
type KeyConfig struct {
	// IgnoreQuery lists query parameters left out of the key, by name or
	// glob (e.g. "utm_*", "fbclid"), matched against the percent-decoded
	// name. Parameters are split at both '&' and ';'.
	IgnoreQuery []string `json:"ignore_query,omitempty"`
	// Headers lists request headers whose values are added to the key.
	Headers []string `json:"headers,omitempty"`
	// Cookies lists request cookies, by name, whose values are added to
	// the key (e.g. "lang", "currency"). A request without the cookie gets
	// the key of an empty value.
	Cookies []string `json:"cookies,omitempty"`
	// Template replaces the URL part of the key with the expansion of a
	// string of placeholders, e.g.
	// "{http.request.host}{http.request.uri.path}{http.request.cookie.lang}".
	// The handler's scope still prefixes it, and Headers and Cookies are
	// still added. Purge by url expands it for a plain GET of that URL.
	Template string `json:"template,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler and loads its storage.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	h.flights = new(flightGroup)
	h.uncacheable = new(passMemo)
	h.health = newStoreHealth()
	if err := h.applyDefaults(); err != nil {
		return err
	}
	// The storage config identifies the store; Caddy empties the raw field
	// when it loads the module, so read it first.
	storageRaw := h.StorageRaw
	var mod any
	var err error
	if h.StorageRaw == nil {
		mod, err = ctx.LoadModuleByID("http.handlers.cache.storage.sqlite", json.RawMessage(`{}`))
		if err != nil {
			return fmt.Errorf("loading default storage (sqlite): %w", err)
		}
	} else {
		mod, err = ctx.LoadModule(h, "StorageRaw")
		if err != nil {
			return fmt.Errorf("loading storage: %w", err)
		}
	}
	st, ok := mod.(storage.Store)
	if !ok {
		return fmt.Errorf("storage module %T is not a storage.Store", mod)
	}
	if info, ok := mod.(caddy.Module); ok {
		h.backendName = strings.TrimPrefix(string(info.CaddyModule().ID), "http.handlers.cache.storage.")
	}
	h.storageID = storageIdentity(h.backendName, storageRaw, mod)
	_, h.isMemory = mod.(*memory.Memory)
	if hl, ok := mod.(storage.HealthLogger); ok && hl.LogsHealth() {
		h.quietStorage = true
	}
	h.store = st
	h.maxBytes = maxBytesOf(mod)
	h.locker = lockerOf(st)
	h.updater, _ = st.(storage.Updater)
	if !h.isMemory && h.Memory >= 0 {
		if err := h.provisionHotTier(ctx); err != nil {
			return err
		}
		if err := h.provisionSync(st); err != nil {
			return err
		}
	}
	h.lister, _ = h.store.(storage.Lister)
	if err := h.provisionOps(ctx); err != nil {
		return err
	}
	h.scope = scopeOf(h.ops.name)
	h.ports = portsOf(h.scope)
	h.ccs = new(ccCache)
	h.logger.Info("cache handler ready", h.readyFields(mod)...)
	return nil
}

// readyFields describe a provisioned handler in its start-up log line:
// name, backend, where the data is (storage.Locator) and the hot tier.
func (h *Handler) readyFields(mod any) []zap.Field {
	location := h.backendName
	if l, ok := mod.(storage.Locator); ok {
		location = l.Location()
	}
	hot := "off"
	if h.hot != nil {
		hot = humanize.IBytes(uint64(h.hotSize()))
	}
	return []zap.Field{
		zap.String("name", h.ops.name), zap.String("backend", h.backendName),
		zap.String("location", location), zap.String("hot_tier", hot),
	}
}

// hotSize is the configured byte size of the hot tier.
func (h *Handler) hotSize() int64 {
	if h.Memory > 0 {
		return h.Memory
	}
	return DefaultHotTierSize
}

// storageIdentity says which data a storage module reaches: the store's own
// identity when it has one (storage.Identifier: the same SQLite file, Redis
// keyspace or memory name whatever the spelling of the config), else the
// backend and its config in canonical JSON (sorted keys, no spaces).
func storageIdentity(backend string, raw json.RawMessage, mod any) string {
	if id, ok := mod.(storage.Identifier); ok {
		if s := id.StorageIdentity(); s != "" {
			return s
		}
	}
	return backend + ":" + canonicalJSON(raw)
}

// canonicalJSON re-encodes a JSON value with sorted object keys and no
// insignificant space, so that key order and layout do not change it.
func canonicalJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(out)
}

// provisionHotTier puts an in-process memory store in front of h.store.
// Handlers whose storage reaches the same data (storageIdentity) share one
// hot tier (and it survives reloads), so that a delete or purge through any
// of them clears it for all; handlers on other stores never share one.
func (h *Handler) provisionHotTier(ctx caddy.Context) error {
	size := h.hotSize()
	id := sha256.Sum256([]byte("hot tier\x00" + h.storageID))
	cfg, _ := json.Marshal(map[string]any{"name": "hot-" + hex.EncodeToString(id[:8]), "max_size": size})
	mod, err := ctx.LoadModuleByID("http.handlers.cache.storage.memory", cfg)
	if err != nil {
		return fmt.Errorf("loading the memory hot tier: %w", err)
	}
	h.hot = mod.(*memory.Memory)
	h.store = tiered.New(h.hot, h.store)
	if t, ok := h.store.(interface{ DropHot(string) }); ok {
		h.dropHot = t.DropHot
	}
	return nil
}

func (h *Handler) applyDefaults() error {
	if h.MaxEntrySize == 0 {
		h.MaxEntrySize = DefaultMaxEntrySize
	}
	if h.LockTimeout == 0 {
		h.LockTimeout = caddy.Duration(DefaultLockTimeout)
	}
	if h.StorageTimeout == 0 {
		h.StorageTimeout = caddy.Duration(DefaultStorageTimeout)
	}
	if h.StatusHeader == "" {
		h.StatusHeader = DefaultStatusHeader
	}
	if h.MaxVariants == 0 {
		h.MaxVariants = DefaultMaxVariants
	}
	if h.TargetedFields == nil {
		h.TargetedFields = []string{"CDN-Cache-Control", "Surrogate-Control"}
	}
	h.targets = make([]string, len(h.TargetedFields))
	for i, f := range h.TargetedFields {
		h.targets[i] = http.CanonicalHeaderKey(f)
		if h.targets[i] == "Surrogate-Control" {
			h.surrogate = true
		}
	}
	h.strip = nil
	for _, f := range h.targets {
		if h.StripTargeted || (f == "Surrogate-Control" && !h.ForwardTargeted) {
			h.strip = append(h.strip, f)
		}
	}
	if err := h.Validate(); err != nil {
		return err
	}
	if len(h.Methods) == 0 {
		h.allowGET, h.allowHEAD = true, true
	}
	for _, m := range h.Methods {
		switch m {
		case http.MethodGet:
			h.allowGET = true
		case http.MethodHead:
			h.allowHEAD = true
		}
	}
	if len(h.Statuses) > 0 {
		set := make(map[int]bool, len(h.Statuses))
		for _, s := range h.Statuses {
			set[s] = true
		}
		h.cacheable = func(s int) bool { return set[s] }
	}
	h.ignoreCC = h.CacheControl == "ignore"
	h.setupRefreshAhead()
	for i := range h.TTLRules {
		if err := h.TTLRules[i].parse(); err != nil {
			return err
		}
	}
	return nil
}

// errForwardStrip: forward_targeted and strip_targeted contradict each other.
var errForwardStrip = errors.New("forward_targeted and strip_targeted: choose one (forward_targeted keeps Surrogate-Control, strip_targeted removes every targeted field)")

// Validate checks the configuration; every error names the option.
func (h *Handler) Validate() error {
	if h.MaxEntrySize < 0 {
		return fmt.Errorf("max_entry_size must not be negative, got %d", h.MaxEntrySize)
	}
	if h.InvalidationInterval < 0 {
		return fmt.Errorf("invalidation_interval must not be negative, got %s", time.Duration(h.InvalidationInterval))
	}
	if h.StorageTimeout < 0 {
		return fmt.Errorf("storage_timeout must not be negative, got %s", time.Duration(h.StorageTimeout))
	}
	if h.TTL < 0 {
		return fmt.Errorf("ttl must not be negative, got %s", time.Duration(h.TTL))
	}
	if h.StaleWhileRevalidate < 0 {
		return fmt.Errorf("stale_while_revalidate must not be negative, got %s", time.Duration(h.StaleWhileRevalidate))
	}
	if h.StaleIfError < 0 {
		return fmt.Errorf("stale_if_error must not be negative, got %s", time.Duration(h.StaleIfError))
	}
	if h.ForwardTargeted && h.StripTargeted {
		return errForwardStrip
	}
	for _, f := range h.TargetedFields {
		if f == "" || strings.ContainsAny(f, " :\t") || strings.EqualFold(f, "Cache-Control") {
			return fmt.Errorf("targeted_fields: %q is not a targeted cache-control field name", f)
		}
	}
	if h.Memory < -1 {
		return fmt.Errorf("memory must be a size in bytes, or -1 for off; got %d", h.Memory)
	}
	if h.MaxVariants < 0 {
		return fmt.Errorf("max_variants must not be negative, got %d", h.MaxVariants)
	}
	switch h.CacheControl {
	case "", "respect", "ignore":
	default:
		return fmt.Errorf("cache_control %q: want respect or ignore", h.CacheControl)
	}
	for _, m := range h.Methods {
		if m != http.MethodGet && m != http.MethodHead {
			return fmt.Errorf("methods: %q is not cacheable here (only GET and HEAD; request bodies are not part of the key)", m)
		}
	}
	for _, s := range h.Statuses {
		if s < 200 || s > 599 || s == http.StatusPartialContent || s == http.StatusNotModified {
			return fmt.Errorf("status: %d cannot be cached (want a final status other than 206 and 304)", s)
		}
	}
	if strings.ContainsAny(h.StatusHeader, " ;,\"=\t") {
		return fmt.Errorf("status_header %q: must be a token (no spaces, quotes, ';', ',' or '=')", h.StatusHeader)
	}
	if err := h.validateRefreshAhead(); err != nil {
		return err
	}
	if err := h.validateOps(); err != nil {
		return err
	}
	if err := h.validateKeyConfig(); err != nil {
		return err
	}
	// (before Provision loads the storage module, which empties StorageRaw)
	if err := validateStorageMemory(h.StorageRaw, h.Memory); err != nil {
		return err
	}
	if h.Key != nil {
		for _, q := range h.Key.IgnoreQuery {
			if _, err := path.Match(q, ""); err != nil {
				return fmt.Errorf("key ignore_query %q: %v", q, err)
			}
		}
		for _, f := range h.Key.Headers {
			if f == "" || strings.ContainsAny(f, " :\t") {
				return fmt.Errorf("key headers: %q is not a header field name", f)
			}
		}
	}
	for i := range h.TTLRules {
		r := h.TTLRules[i]
		if err := r.parse(); err != nil {
			return err
		}
	}
	return nil
}

func (r *TTLRule) parse() error {
	if r.Match == "" {
		return fmt.Errorf("ttl rule: empty pattern")
	}
	for _, t := range r.ContentTypes {
		if _, err := path.Match(t, ""); err != nil || !strings.Contains(t, "/") || strings.ContainsAny(t, " ;,") {
			return fmt.Errorf("ttl %s types %q: want a media type such as text/css or image/*", r.Match, t)
		}
	}
	switch r.TTL {
	case "no-store":
		r.noStore = true
		return nil
	case "never":
		r.lifetime = 365 * 24 * time.Hour
		return nil
	}
	d, err := caddy.ParseDuration(r.TTL)
	if err != nil {
		return fmt.Errorf("ttl %s %q: %v (want a duration, never or no-store)", r.Match, r.TTL, err)
	}
	if d < 0 {
		return fmt.Errorf("ttl %s %q: must not be negative", r.Match, r.TTL)
	}
	r.lifetime = d
	return nil
}

// matches reports whether the rule's glob matches the request.
func (r *TTLRule) matches(host, p string) bool {
	if strings.HasPrefix(r.Match, "/") {
		return glob(r.Match, p)
	}
	return glob(r.Match, host+p)
}

// glob matches s against a pattern in which '*' stands for any run of
// characters (including '/') and every other byte matches itself.
func glob(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	s = s[star:]
	pattern = pattern[star+1:]
	if pattern == "" {
		return true
	}
	// try every position for the rest
	for i := 0; i <= len(s); i++ {
		if glob(pattern, s[i:]) {
			return true
		}
	}
	return false
}

// Cleanup unregisters the handler from the admin API; the storage module is
// cleaned up by Caddy, which loaded it.
func (h *Handler) Cleanup() error {
	h.cleanupSync()
	h.cleanupOps()
	return nil
}

// storeRules returns the storability rules for this configuration.
func (h *Handler) storeRules(forced bool) policy.StoreRules {
	return policy.StoreRules{Cacheable: h.cacheable, StoreSetCookie: h.StoreSetCookie, ForcedTTL: forced}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
