package sqlite

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
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
	once := make(caddyopt.Once)
	if s.Path != "" {
		once["path"] = struct{}{}
	}
	for d.NextBlock(0) {
		if err := once.Check(d, ""); err != nil {
			return err
		}
		var err error
		switch opt := d.Val(); opt {
		case "path":
			s.Path, err = caddyopt.String(d)
		case "busy_timeout":
			s.BusyTimeout, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "wal":
			var on bool
			on, err = caddyopt.Bool(d)
			s.WAL = &on
		case "synchronous":
			if s.Synchronous, err = caddyopt.String(d); err == nil {
				switch strings.ToLower(s.Synchronous) {
				case "off", "normal", "full":
				default:
					err = d.Errf("synchronous %q: want off, normal or full", s.Synchronous)
				}
			}
		case "max_size":
			var n int64
			n, err = caddyopt.Size(d, caddyopt.AllowZero)
			s.MaxSize = &n
		case "sweep_interval":
			s.SweepInterval, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "shared":
			err = caddyopt.Flag(d)
			s.Shared = true
		case "compression":
			if s.Compression, err = caddyopt.String(d); err == nil && s.Compression != "zstd" && s.Compression != "off" {
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
