package file

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage file [<path>] {
//		path           <directory>
//		max_size       <size>|0
//		sweep_interval <duration>
//		compression    zstd|off
//		fsync          [on|off]
//	}
//
// Sizes take units (64MiB, 1GB); max_size 0 means unlimited. Each option may
// appear once.
func (f *File) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		f.Path = d.Val()
		if d.NextArg() {
			return d.Errf("unexpected argument %q after the file storage path", d.Val())
		}
	}
	once := make(caddyopt.Once)
	if f.Path != "" {
		once["path"] = struct{}{}
	}
	for d.NextBlock(0) {
		if err := once.Check(d, ""); err != nil {
			return err
		}
		var err error
		switch opt := d.Val(); opt {
		case "path":
			f.Path, err = caddyopt.String(d)
		case "max_size":
			var n int64
			n, err = caddyopt.Size(d, caddyopt.AllowZero)
			f.MaxSize = &n
		case "sweep_interval":
			f.SweepInterval, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "compression":
			if f.Compression, err = caddyopt.String(d); err == nil && f.Compression != "zstd" && f.Compression != "off" {
				err = d.Errf("compression %q: want zstd or off", f.Compression)
			}
		case "fsync":
			f.Fsync, err = caddyopt.Bool(d)
		default:
			err = caddyopt.Unknown(d, "file storage", opt, options)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// options are the block's option names, for typo hints.
var options = []string{"path", "max_size", "sweep_interval", "compression", "fsync"}
