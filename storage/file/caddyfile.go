package file

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage/internal/caddyopt"
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
	var fsync *bool
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "path":
			err = caddyopt.String(d, &f.Path)
		case "max_size":
			err = caddyopt.Size(d, &f.MaxSize)
		case "sweep_interval":
			err = caddyopt.Duration(d, &f.SweepInterval)
		case "compression":
			if err = caddyopt.String(d, &f.Compression); err == nil && f.Compression != "zstd" && f.Compression != "off" {
				err = d.Errf("compression %q: want zstd or off", f.Compression)
			}
		case "fsync":
			if err = caddyopt.OnOff(d, &fsync); err == nil {
				f.Fsync = *fsync
			}
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
