// Package caddyopt has the Caddyfile parsing helpers of the cache directive
// and of every storage backend, so that all of them follow one set of rules:
// an option appears at most once per block (Once), takes an exact number of
// arguments, says whether 0 is allowed (AllowZero, NoZero), and its errors
// name the option and the value.
package caddyopt

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/suggest"
)

// The allowZero argument of Duration, Size and Int, spelled out at the
// call site.
const (
	// AllowZero accepts 0 (for most options: off).
	AllowZero = true
	// NoZero rejects 0: the value must be positive.
	NoZero = false
)

// Once tracks the options given in one block, so that each appears at most
// once. The zero value is not ready: make one with make(caddyopt.Once).
type Once map[string]struct{}

// Check returns an error when the current option was given before in this
// block, and records it otherwise. prefix names a sub-block in the message
// ("key"), or is empty.
func (o Once) Check(d *caddyfile.Dispenser, prefix string) error {
	opt := d.Val()
	if _, ok := o[opt]; ok {
		if prefix != "" {
			return d.Errf("%s %s specified more than once", prefix, opt)
		}
		return d.Errf("%s specified more than once", opt)
	}
	o[opt] = struct{}{}
	return nil
}

// Unknown is the error for an option the block does not know, with the
// closest of known as a hint: `unrecognized redis storage option "pasword"
// (did you mean "password"?)`. what names the block ("redis storage").
func Unknown(d *caddyfile.Dispenser, what, opt string, known []string) error {
	return d.Errf("unrecognized %s option %q%s", what, opt, suggest.DidYouMean(opt, known))
}

// String reads the single, non-empty argument of the current option.
func String(d *caddyfile.Dispenser) (string, error) {
	opt := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return "", d.Errf("%s takes exactly one argument", opt)
	}
	if v == "" {
		return "", d.Errf("%s: empty value", opt)
	}
	return v, nil
}

// Word reads the single argument of the current option, which must be one
// of allowed: `cache_control "ignor": want respect or ignore (did you mean
// "ignore"?)`.
func Word(d *caddyfile.Dispenser, allowed ...string) (string, error) {
	opt := d.Val()
	v, err := String(d)
	if err != nil {
		return "", err
	}
	if slices.Contains(allowed, v) {
		return v, nil
	}
	want := allowed[0]
	if n := len(allowed); n > 1 {
		want = strings.Join(allowed[:n-1], ", ") + " or " + allowed[n-1]
	}
	return "", d.Errf("%s %q: want %s%s", opt, v, want, suggest.DidYouMean(v, allowed))
}

// Duration reads the single duration argument of the current option
// (90s, 5m, 2h, 7d). Negative durations are rejected, and 0 unless
// allowZero.
func Duration(d *caddyfile.Dispenser, allowZero bool) (caddy.Duration, error) {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		if suggest.Duration(args) != "" { // "5 min"
			return 0, d.Errf("%s %s", opt, suggest.BadDuration(args))
		}
		return 0, d.Errf("%s takes exactly one argument", opt)
	}
	raw := args[0]
	v, err := caddy.ParseDuration(raw)
	if err != nil {
		return 0, d.Errf("%s %s", opt, suggest.BadDuration(args))
	}
	switch {
	case v < 0 && allowZero:
		return 0, d.Errf("%s %q: must not be negative", opt, raw)
	case v <= 0 && !allowZero:
		return 0, d.Errf("%s %q: must be positive", opt, raw)
	}
	return caddy.Duration(v), nil
}

// Size reads the single byte-size argument of the current option, with an
// optional unit (64MiB, 1GB, 1048576). 0 is rejected unless allowZero.
func Size(d *caddyfile.Dispenser, allowZero bool) (int64, error) {
	return SizeArgs(d, d.Val(), d.RemainingArgs(), allowZero)
}

// SizeArgs parses args, arguments already read, as Size does, with errors
// naming opt: for a size given on a directive's first line.
func SizeArgs(d *caddyfile.Dispenser, opt string, args []string, allowZero bool) (int64, error) {
	if len(args) != 1 {
		if suggest.Size(args) != "" { // "10 MB"
			return 0, d.Errf("%s %s", opt, suggest.BadSize(args))
		}
		return 0, d.Errf("%s takes exactly one argument", opt)
	}
	raw := args[0]
	n, err := humanize.ParseBytes(raw)
	switch {
	case err != nil:
		return 0, d.Errf("%s %s", opt, suggest.BadSize(args))
	case n == 0 && !allowZero:
		return 0, d.Errf("%s %q: must be a positive size", opt, raw)
	case n > math.MaxInt64:
		return 0, d.Errf("%s %q: too large", opt, raw)
	}
	return int64(n), nil
}

// Int reads the single integer argument of the current option. Negative
// numbers are rejected, and 0 unless allowZero.
func Int(d *caddyfile.Dispenser, allowZero bool) (int, error) {
	opt := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return 0, d.Errf("%s takes exactly one argument", opt)
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || (n == 0 && !allowZero) {
		want := "a positive integer"
		if allowZero {
			want = "a non-negative integer"
		}
		return 0, d.Errf("%s %q: want %s", opt, raw, want)
	}
	return n, nil
}

// Bool reads the current option as a switch: alone it means true,
// otherwise its single argument must be on, off, true or false.
func Bool(d *caddyfile.Dispenser) (bool, error) {
	opt := d.Val()
	if !d.NextArg() {
		return true, nil
	}
	var v bool
	switch d.Val() {
	case "on", "true":
		v = true
	case "off", "false":
	default:
		return false, d.Errf("%s %q: want on or off", opt, d.Val())
	}
	if d.NextArg() {
		return false, d.Errf("%s takes at most one argument", opt)
	}
	return v, nil
}

// Flag reads an option that takes no argument.
func Flag(d *caddyfile.Dispenser) error {
	opt := d.Val()
	if d.NextArg() {
		return d.Errf("%s takes no argument", opt)
	}
	return nil
}

// Positive returns d, or def when d is zero or negative.
func Positive(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}
