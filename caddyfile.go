package cache

import (
	"fmt"
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
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
//		ttl <path-pattern> <duration|never|no-store>
//		cache_control respect|ignore
//		methods GET [HEAD]
//		status <codes...>
//		key {
//			ignore_query <names or globs...>
//			headers <fields...>
//		}
//		max_entry_size <size>
//		max_variants <n>
//		lock_timeout <duration>
//		storage_timeout <duration>
//		status_header <name>
//		store_set_cookie
//		stale_while_revalidate <duration>
//		stale_if_error <duration>
//		targeted_fields <fields...>
//		forward_targeted
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
// rule, first match wins).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("unexpected argument %q: cache takes options in a block", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "ttl" || d.CountRemainingArgs() == 1 {
			key := opt
			if seen[key] {
				return d.Errf("%s specified more than once", opt)
			}
			seen[key] = true
		}
		var err error
		switch opt {
		case "storage":
			err = h.parseStorage(d)
		case "ttl":
			err = h.parseTTL(d)
		case "cache_control":
			err = parseWord(d, &h.CacheControl, "respect", "ignore")
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
			err = parseSize(d, &h.MaxEntrySize)
		case "max_variants":
			err = parseInt(d, &h.MaxVariants)
		case "lock_timeout":
			err = parseDuration(d, &h.LockTimeout, true)
		case "storage_timeout":
			err = parseDuration(d, &h.StorageTimeout, false)
		case "status_header":
			if !d.AllArgs(&h.StatusHeader) {
				return d.ArgErr()
			}
		case "stale_while_revalidate":
			err = parseDuration(d, &h.StaleWhileRevalidate, false)
		case "stale_if_error":
			err = parseDuration(d, &h.StaleIfError, false)
		case "targeted_fields":
			h.TargetedFields = d.RemainingArgs()
			if len(h.TargetedFields) == 0 {
				return d.ArgErr()
			}
		case "forward_targeted":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ForwardTargeted = true
		case "name":
			err = h.parseName(d)
		case "surrogate_keys":
			err = h.parseSurrogateKeys(d)
		case "purge":
			err = h.parsePurge(d)
		case "memory":
			var raw string
			if !d.AllArgs(&raw) {
				return d.ArgErr()
			}
			if raw == "off" {
				h.Memory = -1
			} else {
				n, err := humanize.ParseBytes(raw)
				if err != nil || n == 0 || n > math.MaxInt64 {
					return d.Errf("memory %q: want a positive size or off", raw)
				}
				h.Memory = int64(n)
			}
		case "store_set_cookie":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.StoreSetCookie = true
		default:
			return d.Errf("unrecognized cache option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) parseStorage(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	modID := "http.handlers.cache.storage." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return err
	}
	h.StorageRaw = caddyconfig.JSONModuleObject(unm, "backend", name, nil)
	return nil
}

func (h *Handler) parseTTL(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch len(args) {
	case 1:
		v, err := caddy.ParseDuration(args[0])
		if err != nil {
			return d.Errf("ttl %q: %v", args[0], err)
		}
		if v <= 0 {
			return d.Errf("ttl %q: must be positive", args[0])
		}
		h.TTL = caddy.Duration(v)
	case 2:
		r := TTLRule{Match: args[0], TTL: args[1]}
		if err := r.parse(); err != nil {
			return d.Err(err.Error())
		}
		h.TTLRules = append(h.TTLRules, TTLRule{Match: args[0], TTL: args[1]})
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
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("key %s specified more than once", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		switch opt {
		case "ignore_query":
			h.Key.IgnoreQuery = args
		case "headers":
			h.Key.Headers = args
		default:
			return d.Errf("unrecognized key option %q", opt)
		}
	}
	return nil
}

// parseWord reads exactly one argument that must be one of allowed.
func parseWord(d *caddyfile.Dispenser, dst *string, allowed ...string) error {
	opt := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return d.ArgErr()
	}
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return d.Errf("%s %q: want one of %v", opt, v, allowed)
}

// parseDuration reads exactly one duration argument.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration, allowZero bool) error {
	opt := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return d.ArgErr()
	}
	v, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s %q: %v", opt, raw, err)
	}
	if v < 0 || (v == 0 && !allowZero) {
		return d.Errf("%s %q: must be positive", opt, raw)
	}
	if v == 0 {
		v = -1 // explicit "off": negative means disabled internally
	}
	*dst = caddy.Duration(v)
	return nil
}

// parseSize reads exactly one size argument ("16MiB", "1GB", "1048576").
func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	opt := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return d.ArgErr()
	}
	n, err := humanize.ParseBytes(raw)
	if err == nil && (n == 0 || n > math.MaxInt64) {
		err = fmt.Errorf("must be a positive size")
	}
	if err != nil {
		return d.Errf("%s %q: %v", opt, raw, err)
	}
	*dst = int64(n)
	return nil
}

// parseInt reads exactly one positive integer.
func parseInt(d *caddyfile.Dispenser, dst *int) error {
	opt := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(raw)
	if err == nil && n <= 0 {
		err = fmt.Errorf("must be positive")
	}
	if err != nil {
		return d.Errf("%s %q: %v", opt, raw, err)
	}
	*dst = n
	return nil
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
