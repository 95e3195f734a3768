package redis

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddycache/caddy-cache/internal/suggest"
	"github.com/caddycache/caddy-cache/storage/internal/caddyopt"
)

// options and tlsOptions are the block's option names, for typo hints.
var (
	options = []string{"url", "addresses", "username", "password", "db", "tls", "sentinel_master",
		"sentinel_password", "cluster", "namespace", "pool_size", "min_idle_conns", "dial_timeout",
		"read_timeout", "write_timeout", "stale_grace", "max_entry_size", "compression"}
	tlsOptions = []string{"insecure_skip_verify", "server_name", "ca_file"}
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage redis [<url>] {
//		url               <redis://…|rediss://…>
//		addresses         <host:port...>
//		username          <name>
//		password          <password>
//		db                <n>
//		tls               [on|off]
//		tls {
//			insecure_skip_verify
//			server_name <name>
//			ca_file     <path>
//		}
//		sentinel_master   <name>
//		sentinel_password <password>
//		cluster           [true|false]
//		namespace         <prefix>
//		pool_size         <n>
//		min_idle_conns    <n>
//		dial_timeout      <duration>
//		read_timeout      <duration>
//		write_timeout     <duration>
//		stale_grace       <duration>
//		max_entry_size    <size>
//		compression       zstd|off
//	}
//
// The url may be given on the first line or as an option, not both; url and
// addresses are mutually exclusive. Each option may appear once. Secrets can
// come from placeholders, e.g. password {env.REDIS_PASSWORD}.
func (r *Redis) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	seen := map[string]bool{}
	if d.NextArg() {
		r.URL = d.Val()
		seen["url"] = true
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			if opt == "url" {
				return d.Errf("url specified more than once (it may be given on the storage line or as an option, not both)")
			}
			return d.Errf("%s specified more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "url":
			err = oneArg(d, &r.URL)
		case "addresses":
			r.Addresses = d.RemainingArgs()
			if len(r.Addresses) == 0 {
				return d.ArgErr()
			}
			for _, a := range r.Addresses {
				if err := checkAddress(a); err != nil && !hasPlaceholder(a) {
					return d.Errf("addresses: %v", err)
				}
			}
		case "username":
			err = oneArg(d, &r.Username)
		case "password":
			err = oneArg(d, &r.Password)
		case "db":
			err = intArg(d, &r.DB)
		case "tls":
			err = r.parseTLS(d)
		case "sentinel_master":
			err = oneArg(d, &r.SentinelMaster)
		case "sentinel_password":
			err = oneArg(d, &r.SentinelPassword)
		case "cluster":
			err = boolArg(d, &r.Cluster)
		case "namespace":
			err = oneArg(d, &r.Namespace)
		case "pool_size":
			err = intArg(d, &r.PoolSize)
		case "min_idle_conns":
			err = intArg(d, &r.MinIdleConns)
		case "dial_timeout":
			err = durationArg(d, &r.DialTimeout)
		case "read_timeout":
			err = durationArg(d, &r.ReadTimeout)
		case "write_timeout":
			err = durationArg(d, &r.WriteTimeout)
		case "stale_grace":
			err = durationArg(d, &r.StaleGrace)
		case "max_entry_size":
			err = sizeArg(d, &r.MaxEntrySize)
		case "compression":
			err = oneArg(d, &r.Compression)
			if err == nil && r.Compression != "zstd" && r.Compression != "off" {
				return d.Errf("compression %q: want zstd or off", r.Compression)
			}
		default:
			return caddyopt.Unknown(d, "redis storage", opt, options)
		}
		if err != nil {
			return err
		}
	}
	if r.URL != "" && len(r.Addresses) > 0 {
		return d.Errf("url and addresses are mutually exclusive: set one of them")
	}
	return nil
}

// parseTLS reads `tls`, `tls on|off|true|false` or a `tls { … }` block.
func (r *Redis) parseTLS(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		r.TLS = &TLSConfig{}
	case 1:
		on, err := parseBool(args[0])
		if err != nil {
			return d.Errf("tls %q: want on or off", args[0])
		}
		r.TLS = &TLSConfig{disabled: !on}
	default:
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if r.TLS.disabled {
			return d.Errf("tls off cannot have a block of TLS settings")
		}
		opt := d.Val()
		if seen[opt] {
			return d.Errf("tls %s specified more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "insecure_skip_verify":
			if d.NextArg() {
				return d.ArgErr()
			}
			r.TLS.InsecureSkipVerify = true
		case "server_name":
			err = oneArg(d, &r.TLS.ServerName)
		case "ca_file":
			err = oneArg(d, &r.TLS.CAFile)
		default:
			return caddyopt.Unknown(d, "redis storage tls", opt, tlsOptions)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

func parseBool(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return strconv.ParseBool(s)
}

// oneArg reads exactly one argument of the current option.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	if *dst == "" {
		return d.Errf("%s must not be empty", d.Val())
	}
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int) error {
	opt := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return d.Errf("%s %q: want a non-negative integer", opt, raw)
	}
	*dst = n
	return nil
}

func boolArg(d *caddyfile.Dispenser, dst *bool) error {
	opt := d.Val()
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		*dst = true
	case 1:
		v, err := parseBool(args[0])
		if err != nil {
			return d.Errf("%s %q: want true or false", opt, args[0])
		}
		*dst = v
	default:
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Duration(args) != "" { // "5 min"
			return d.Errf("%s %s", opt, suggest.BadDuration(args))
		}
		return d.ArgErr()
	}
	raw := args[0]
	v, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s %s", opt, suggest.BadDuration(args))
	}
	if v < 0 {
		return d.Errf("%s %q: must not be negative", opt, raw)
	}
	*dst = caddy.Duration(v)
	return nil
}

func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Size(args) != "" { // "10 MB"
			return d.Errf("%s %s", opt, suggest.BadSize(args))
		}
		return d.ArgErr()
	}
	raw := args[0]
	n, err := humanize.ParseBytes(raw)
	switch {
	case err != nil:
		return d.Errf("%s %s", opt, suggest.BadSize(args))
	case n == 0:
		return d.Errf("%s %q: must be a positive size", opt, raw)
	case n > math.MaxInt64:
		return d.Errf("%s %q: too large", opt, raw)
	}
	*dst = int64(n)
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Redis)(nil)
