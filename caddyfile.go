package cache

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/internal/suggest"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("cache", parseCaddyfile)
	// After basic_auth, forward_auth, request_header, rewrite and uri (auth
	// runs on every hit; the key uses the final URI); before encode,
	// templates and the responders.
	httpcaddyfile.RegisterDirectiveOrder("cache", httpcaddyfile.Before, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Handler)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	cache [<matcher>] {
//		storage <backend> [<args...>] {
//			<backend options>
//		}
//		memory <size>|off
//		ttl <duration>
//		ttl <path-pattern> <duration|never|no-store> [types <media types...>]
//		cache_control respect|ignore
//		request_cache_control respect|ignore
//		methods GET [HEAD]
//		status <codes...>
//		key {
//			ignore_query <names or globs...>
//			headers <fields...>
//			cookies <names...>
//			template <placeholders>
//		}
//		max_entry_size <size>
//		max_variants <n>
//		lock_timeout <duration>
//		storage_timeout <duration>
//		invalidation_interval <duration>
//		status_header <name>
//		store_set_cookie
//		stale_while_revalidate <duration>
//		stale_if_error <duration>
//		refresh_ahead <percentage|fraction|duration>
//		refresh_ahead_concurrency <n>
//		targeted_fields <fields...>
//		forward_targeted
//		strip_targeted
//		name <name>
//		surrogate_keys off
//		surrogate_keys {
//			headers <fields...>
//			strip on|off
//		}
//		purge [<method>] {
//			<request matchers>
//		}
//	}
//
// Every option may appear once, except ttl with a pattern (one line per
// rule, first match wins). Sizes take units (16MiB, 512KB) and durations
// Caddy's suffixes (90s, 5m, 2h, 7d), written without a space. A key
// template containing spaces must be quoted. memory sizes the hot tier in
// front of the other backends; with storage memory, size that store with
// its max_size instead.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("unexpected argument %q: cache takes options in a block", d.Val())
	}
	once := make(caddyopt.Once)
	var memoryTok caddyfile.Token // where memory was set, for the check after the block
	var stripTok caddyfile.Token  // where strip_targeted was set
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "ttl" || d.CountRemainingArgs() == 1 { // ttl rules may repeat
			if err := once.Check(d, ""); err != nil {
				return err
			}
		}
		var err error
		switch opt {
		case "storage":
			err = h.parseStorage(d)
		case "ttl":
			err = h.parseTTL(d)
		case "cache_control":
			h.CacheControl, err = caddyopt.Word(d, "respect", "ignore")
		case "request_cache_control":
			h.RequestCacheControl, err = caddyopt.Word(d, "respect", "ignore")
		case "methods":
			h.Methods = d.RemainingArgs()
			if len(h.Methods) == 0 {
				return d.ArgErr()
			}
			for _, m := range h.Methods {
				if m != "GET" && m != "HEAD" {
					return d.Errf("methods %q: only GET and HEAD can be cached", m)
				}
			}
		case "status":
			err = parseStatuses(d, &h.Statuses)
		case "key":
			err = h.parseKey(d)
		case "max_entry_size":
			h.MaxEntrySize, err = caddyopt.Size(d, caddyopt.NoZero)
		case "max_variants":
			h.MaxVariants, err = caddyopt.Int(d, caddyopt.NoZero)
		case "lock_timeout":
			h.LockTimeout, err = offDuration(d)
		case "invalidation_interval":
			h.InvalidationInterval, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "storage_timeout":
			h.StorageTimeout, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "status_header":
			h.StatusHeader, err = caddyopt.String(d)
		case "stale_while_revalidate":
			h.StaleWhileRevalidate, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "stale_if_error":
			h.StaleIfError, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "refresh_ahead":
			err = h.parseRefreshAheadOption(d)
		case "refresh_ahead_concurrency":
			h.RefreshAheadConcurrency, err = caddyopt.Int(d, caddyopt.NoZero)
		case "targeted_fields":
			h.TargetedFields = d.RemainingArgs()
			if len(h.TargetedFields) == 0 {
				return d.ArgErr()
			}
		case "forward_targeted":
			err = caddyopt.Flag(d)
			h.ForwardTargeted = true
		case "strip_targeted":
			stripTok = d.Token()
			err = caddyopt.Flag(d)
			h.StripTargeted = true
		case "name":
			err = h.parseName(d)
		case "surrogate_keys":
			err = h.parseSurrogateKeys(d)
		case "purge":
			err = h.parsePurge(d)
		case "memory":
			memoryTok = d.Token()
			err = h.parseMemory(d)
		case "store_set_cookie":
			err = caddyopt.Flag(d)
			h.StoreSetCookie = true
		default:
			return caddyopt.Unknown(d, "cache", opt, cacheOptions)
		}
		if err != nil {
			return err
		}
	}
	if err := validateStorageMemory(h.StorageRaw, h.Memory); err != nil {
		return errAt(memoryTok, err)
	}
	if h.ForwardTargeted && h.StripTargeted {
		return errAt(stripTok, errForwardStrip)
	}
	return nil
}

// cacheOptions, keyOptions and surrogateKeysOptions are the options of
// the cache block and its sub-blocks, for typo hints
// (TestCaddyfileOptionsKnown keeps them in step with the parser).
var (
	cacheOptions = []string{
		"storage", "memory", "ttl", "cache_control", "request_cache_control",
		"methods", "status", "key", "max_entry_size", "max_variants", "lock_timeout", "storage_timeout", "invalidation_interval",
		"status_header", "store_set_cookie", "stale_while_revalidate", "stale_if_error",
		"refresh_ahead", "refresh_ahead_concurrency",
		"targeted_fields", "forward_targeted", "strip_targeted", "name", "surrogate_keys", "purge",
	}
	keyOptions           = []string{"ignore_query", "headers", "cookies", "template"}
	surrogateKeysOptions = []string{"headers", "strip"}
)

// errAt reports err at tok's file and line, as d.Errf does at the
// dispenser's current token: for a check that can only run once the whole
// block is read.
func errAt(tok caddyfile.Token, err error) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.WrapErr(err)
}

// parseMemory reads `memory <size>|off`.
func (h *Handler) parseMemory(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Size(args) != "" { // "64 MB"
			return d.Errf("memory %s", suggest.BadSize(args))
		}
		return d.ArgErr()
	}
	raw := args[0]
	if raw == "off" {
		h.Memory = -1
		return nil
	}
	n, err := humanize.ParseBytes(raw)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return d.Errf("memory %q: want off or a size such as 64MiB or 512KB", raw)
	}
	h.Memory = int64(n)
	return nil
}

func (h *Handler) parseStorage(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if known := storageBackends(); !slices.Contains(known, name) {
		return d.Err(unknownBackend(name, known))
	}
	modID := "http.handlers.cache.storage." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return err
	}
	h.StorageRaw = caddyconfig.JSONModuleObject(unm, "backend", name, nil)
	return nil
}

// storageBackends returns the names of the registered storage modules,
// sorted.
func storageBackends() []string {
	mods := caddy.GetModules("http.handlers.cache.storage")
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		names = append(names, m.ID.Name())
	}
	slices.Sort(names)
	return names
}

// unknownBackend explains that no storage module is called name:
// `storage "redsi": unknown backend; registered: file, memory, redis,
// sqlite (did you mean "redis"?)`.
func unknownBackend(name string, known []string) string {
	hint := suggest.DidYouMean(name, known)
	if hint == "" && strings.ContainsAny(name, "/\\.") {
		hint = "; a path goes after the backend's name, e.g. storage sqlite " + name
	}
	return fmt.Sprintf("storage %q: unknown backend; registered: %s%s", name, strings.Join(known, ", "), hint)
}

func (h *Handler) parseTTL(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 2 && suggest.Duration(args) != "": // ttl 5 min
		return d.Errf("ttl %s", suggest.BadDuration(args))
	case len(args) == 3 && suggest.Duration(args[1:]) != "": // ttl /x/* 5 min
		return d.Errf("ttl %s %s", args[0], suggest.BadDuration(args[1:]))
	}
	var types []string
	if len(args) >= 4 && args[2] == "types" { // ttl *.css 1h types text/css text/x-css
		types, args = args[3:], args[:2]
	}
	switch len(args) {
	case 1:
		v, err := caddy.ParseDuration(args[0])
		if err != nil {
			return d.Errf("ttl %s", suggest.BadDuration(args))
		}
		if v <= 0 {
			return d.Errf("ttl %q: must be positive", args[0])
		}
		h.TTL = caddy.Duration(v)
	case 2:
		if t := args[1]; t != "never" && t != "no-store" {
			if _, err := caddy.ParseDuration(t); err != nil {
				if suggest.Duration(args[1:]) != "" { // ttl /x/* 5min
					return d.Errf("ttl %s %s", args[0], suggest.BadDuration(args[1:]))
				}
				return d.Errf("ttl %s %q: want a duration (such as 5m or 7d), never or no-store", args[0], t)
			}
		}
		r := TTLRule{Match: args[0], TTL: args[1], ContentTypes: types}
		if err := r.parse(); err != nil {
			return d.Err(err.Error())
		}
		h.TTLRules = append(h.TTLRules, TTLRule{Match: args[0], TTL: args[1], ContentTypes: types})
	default:
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("ttl takes no block")
	}
	return nil
}

func (h *Handler) parseKey(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if h.Key == nil {
		h.Key = new(KeyConfig)
	}
	once := make(caddyopt.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if !slices.Contains(keyOptions, opt) {
			return caddyopt.Unknown(d, "key", opt, keyOptions)
		}
		if err := once.Check(d, "key"); err != nil {
			return err
		}
		args := d.RemainingArgs()
		if opt == "template" && len(args) != 1 {
			return d.Errf("key template takes exactly one argument (quote a template that contains spaces)")
		}
		if len(args) == 0 {
			return d.Errf("key %s: want at least one name", opt)
		}
		switch opt {
		case "ignore_query":
			h.Key.IgnoreQuery = args
		case "headers":
			h.Key.Headers = args
		case "cookies":
			if err := checkKeyCookies(args); err != nil {
				return d.WrapErr(err)
			}
			h.Key.Cookies = args
		case "template":
			if err := checkKeyTemplate(args[0]); err != nil {
				return d.WrapErr(err)
			}
			h.Key.Template = args[0]
		}
	}
	return nil
}

// offDuration reads a duration where 0 means off, stored as -1 (a zero
// field means the default).
func offDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	v, err := caddyopt.Duration(d, caddyopt.AllowZero)
	if err == nil && v == 0 {
		v = -1
	}
	return v, err
}

func parseStatuses(d *caddyfile.Dispenser, dst *[]int) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	for _, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 200 || n > 599 || n == 206 || n == 304 {
			return d.Errf("status %q: want a final status code other than 206 and 304", a)
		}
		*dst = append(*dst, n)
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
