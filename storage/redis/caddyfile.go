package redis

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
)

// options and tlsOptions are the block's option names, for typo hints.
var (
	options = []string{
		"url", "addresses", "username", "password", "db", "tls", "sentinel_master",
		"sentinel_password", "cluster", "namespace", "pool_size", "min_idle_conns", "dial_timeout",
		"read_timeout", "write_timeout", "stale_grace", "max_entry_size", "compression",
	}
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
	once := make(caddyopt.Once)
	if d.NextArg() {
		r.URL = d.Val()
		once["url"] = struct{}{}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if err := once.Check(d, ""); err != nil {
			if opt == "url" {
				return d.Errf("url specified more than once (it may be given on the storage line or as an option, not both)")
			}
			return err
		}
		var err error
		switch opt {
		case "url":
			r.URL, err = caddyopt.String(d)
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
			r.Username, err = caddyopt.String(d)
		case "password":
			r.Password, err = caddyopt.String(d)
		case "db":
			r.DB, err = caddyopt.Int(d, caddyopt.AllowZero)
		case "tls":
			err = r.parseTLS(d)
		case "sentinel_master":
			r.SentinelMaster, err = caddyopt.String(d)
		case "sentinel_password":
			r.SentinelPassword, err = caddyopt.String(d)
		case "cluster":
			r.Cluster, err = caddyopt.Bool(d)
		case "namespace":
			r.Namespace, err = caddyopt.String(d)
		case "pool_size":
			r.PoolSize, err = caddyopt.Int(d, caddyopt.AllowZero)
		case "min_idle_conns":
			r.MinIdleConns, err = caddyopt.Int(d, caddyopt.AllowZero)
		case "dial_timeout":
			r.DialTimeout, err = caddyopt.Duration(d, caddyopt.AllowZero)
		case "read_timeout":
			r.ReadTimeout, err = caddyopt.Duration(d, caddyopt.AllowZero)
		case "write_timeout":
			r.WriteTimeout, err = caddyopt.Duration(d, caddyopt.AllowZero)
		case "stale_grace":
			r.StaleGrace, err = caddyopt.Duration(d, caddyopt.AllowZero)
		case "max_entry_size":
			r.MaxEntrySize, err = caddyopt.Size(d, caddyopt.NoZero)
		case "compression":
			r.Compression, err = caddyopt.String(d)
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
		on, err := onOff(args[0])
		if err != nil {
			return d.Errf("tls %q: want on or off", args[0])
		}
		r.TLS = &TLSConfig{disabled: !on}
	default:
		return d.ArgErr()
	}
	once := make(caddyopt.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if r.TLS.disabled {
			return d.Errf("tls off cannot have a block of TLS settings")
		}
		opt := d.Val()
		if err := once.Check(d, "tls"); err != nil {
			return err
		}
		var err error
		switch opt {
		case "insecure_skip_verify":
			err = caddyopt.Flag(d)
			r.TLS.InsecureSkipVerify = true
		case "server_name":
			r.TLS.ServerName, err = caddyopt.String(d)
		case "ca_file":
			r.TLS.CAFile, err = caddyopt.String(d)
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

// onOff parses the argument of tls: on, off, true or false.
func onOff(s string) (bool, error) {
	switch s {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Redis)(nil)
