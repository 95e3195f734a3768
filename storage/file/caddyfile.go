package file

import (
	"math"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
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
			err = parseString(d, &f.Path)
		case "max_size":
			err = parseSize(d, &f.MaxSize)
		case "sweep_interval":
			err = parseDuration(d, &f.SweepInterval)
		case "compression":
			if err = parseString(d, &f.Compression); err == nil && f.Compression != "zstd" && f.Compression != "off" {
				err = d.Errf("compression %q: want zstd or off", f.Compression)
			}
		case "fsync":
			if err = parseBool(d, &fsync); err == nil {
				f.Fsync = *fsync
			}
		default:
			err = d.Errf("unrecognized file storage option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseString reads the single argument of the current option.
func parseString(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if *dst != "" {
		return d.Errf("%s specified more than once", opt)
	}
	var v string
	if !d.AllArgs(&v) {
		return d.Errf("%s takes exactly one argument", opt)
	}
	if v == "" {
		return d.Errf("%s: empty value", opt)
	}
	*dst = v
	return nil
}

// parseDuration reads the single positive duration argument of the current
// option.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	if *dst != 0 {
		return d.Errf("%s specified more than once", opt)
	}
	var raw string
	if !d.AllArgs(&raw) {
		return d.Errf("%s takes exactly one argument", opt)
	}
	v, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s %q: %v", opt, raw, err)
	}
	if v <= 0 {
		return d.Errf("%s %q: must be positive", opt, raw)
	}
	*dst = caddy.Duration(v)
	return nil
}

// parseBool reads a flag: alone it means on, otherwise on|off|true|false.
func parseBool(d *caddyfile.Dispenser, dst **bool) error {
	opt := d.Val()
	if *dst != nil {
		return d.Errf("%s specified more than once", opt)
	}
	v := true
	if d.NextArg() {
		switch d.Val() {
		case "on", "true":
		case "off", "false":
			v = false
		default:
			return d.Errf("%s %q: want on or off", opt, d.Val())
		}
		if d.NextArg() {
			return d.Errf("%s takes at most one argument", opt)
		}
	}
	*dst = &v
	return nil
}

// parseSize reads a byte size with optional unit; 0 is allowed (unlimited).
func parseSize(d *caddyfile.Dispenser, dst **int64) error {
	opt := d.Val()
	if *dst != nil {
		return d.Errf("%s specified more than once", opt)
	}
	var raw string
	if !d.AllArgs(&raw) {
		return d.Errf("%s takes exactly one argument", opt)
	}
	n, err := humanize.ParseBytes(raw)
	if err != nil {
		return d.Errf("%s %q: %v", opt, raw, err)
	}
	if n > math.MaxInt64 {
		return d.Errf("%s %q: too large", opt, raw)
	}
	v := int64(n)
	*dst = &v
	return nil
}
