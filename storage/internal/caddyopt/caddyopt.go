// Package caddyopt has the small Caddyfile parsing helpers shared by the
// storage backends: every option takes an exact number of arguments, may
// appear only once, and errors name the option and the value.
package caddyopt

import (
	"math"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddycache/caddy-cache/internal/suggest"
)

// Unknown is the error for an option the block does not know, with the
// closest of known as a hint: `unrecognized redis storage option "pasword"
// (did you mean "password"?)`. what names the block ("redis storage").
func Unknown(d *caddyfile.Dispenser, what, opt string, known []string) error {
	return d.Errf("unrecognized %s option %q%s", what, opt, suggest.DidYouMean(opt, known))
}

// String reads the single argument of the current option into dst.
func String(d *caddyfile.Dispenser, dst *string) error {
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

// Duration reads the single positive duration argument of the current
// option into dst.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	if *dst != 0 {
		return d.Errf("%s specified more than once", opt)
	}
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Duration(args) != "" { // "5 min"
			return d.Errf("%s %s", opt, suggest.BadDuration(args))
		}
		return d.Errf("%s takes exactly one argument", opt)
	}
	raw := args[0]
	v, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s %s", opt, suggest.BadDuration(args))
	}
	if v <= 0 {
		return d.Errf("%s %q: must be positive", opt, raw)
	}
	*dst = caddy.Duration(v)
	return nil
}

// Bool reads the current option as a flag: alone it means true, otherwise
// its single argument must be true or false.
func Bool(d *caddyfile.Dispenser, dst **bool) error {
	opt := d.Val()
	if *dst != nil {
		return d.Errf("%s specified more than once", opt)
	}
	v := true
	if d.NextArg() {
		b, err := strconv.ParseBool(d.Val())
		if err != nil {
			return d.Errf("%s %q: want true or false", opt, d.Val())
		}
		v = b
		if d.NextArg() {
			return d.Errf("%s takes at most one argument", opt)
		}
	}
	*dst = &v
	return nil
}

// OnOff reads the current option as a switch: alone it means on, otherwise
// its single argument must be on, off, true or false.
func OnOff(d *caddyfile.Dispenser, dst **bool) error {
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

// Size reads the single byte-size argument of the current option, with an
// optional unit (64MiB, 1GB); 0 is allowed.
func Size(d *caddyfile.Dispenser, dst **int64) error {
	opt := d.Val()
	if *dst != nil {
		return d.Errf("%s specified more than once", opt)
	}
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Size(args) != "" { // "10 MB"
			return d.Errf("%s %s", opt, suggest.BadSize(args))
		}
		return d.Errf("%s takes exactly one argument", opt)
	}
	raw := args[0]
	n, err := humanize.ParseBytes(raw)
	if err != nil {
		return d.Errf("%s %s", opt, suggest.BadSize(args))
	}
	if n > math.MaxInt64 {
		return d.Errf("%s %q: too large", opt, raw)
	}
	v := int64(n)
	*dst = &v
	return nil
}

// Positive returns d, or def when d is zero.
func Positive(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}
