package sqlite

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage/internal/caddyopt"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage sqlite [<path>] {
//		path           <path>
//		busy_timeout   <duration>
//		wal            [on|off]
//		synchronous    off|normal|full
//		max_size       <size>|0
//		sweep_interval <duration>
//		compression    zstd|off
//	}
//
// Sizes take units (64MiB, 1GB); max_size 0 means unlimited. Each option may
// appear once.
func (s *SQLite) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		s.Path = d.Val()
		if d.NextArg() {
			return d.Errf("unexpected argument %q after the sqlite storage path", d.Val())
		}
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "path":
			err = caddyopt.String(d, &s.Path)
		case "busy_timeout":
			err = caddyopt.Duration(d, &s.BusyTimeout)
		case "wal":
			err = caddyopt.OnOff(d, &s.WAL)
		case "synchronous":
			if err = caddyopt.String(d, &s.Synchronous); err == nil {
				switch strings.ToLower(s.Synchronous) {
				case "off", "normal", "full":
				default:
					err = d.Errf("synchronous %q: want off, normal or full", s.Synchronous)
				}
			}
		case "max_size":
			err = caddyopt.Size(d, &s.MaxSize)
		case "sweep_interval":
			err = caddyopt.Duration(d, &s.SweepInterval)
		case "shared":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.Shared = true
		case "compression":
			if err = caddyopt.String(d, &s.Compression); err == nil && s.Compression != "zstd" && s.Compression != "off" {
				err = d.Errf("compression %q: want zstd or off", s.Compression)
			}
		default:
			err = caddyopt.Unknown(d, "sqlite storage", opt, options)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// options are the block's option names, for typo hints.
var options = []string{"path", "busy_timeout", "wal", "synchronous", "max_size", "sweep_interval", "compression", "shared"}
