package caddyopt

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parse runs fn on the first option of the block in "x {\n<opts>\n}".
func parse(t *testing.T, opts string, fn func(d *caddyfile.Dispenser) error) error {
	t.Helper()
	d := caddyfile.NewTestDispenser("x {\n" + opts + "\n}")
	d.Next()
	for d.NextBlock(0) {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func TestOnOff(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    bool
		wantErr string
	}{
		{in: "fsync", want: true},
		{in: "fsync on", want: true},
		{in: "fsync true", want: true},
		{in: "fsync off", want: false},
		{in: "fsync false", want: false},
		{in: "fsync 1", wantErr: `fsync "1": want on or off`},
		{in: "fsync on off", wantErr: "fsync takes at most one argument"},
	} {
		var v *bool
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error {
			b, err := Bool(d)
			v = &b
			return err
		})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || v == nil || *v != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.in, v, err, tc.want)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		zero    bool
		want    int64
		wantErr string
	}{
		{in: "max_size 0", zero: AllowZero, want: 0},
		{in: "max_size 64MiB", want: 64 << 20},
		{in: "max_size 1GB", want: 1_000_000_000},
		{in: "max_size", wantErr: "max_size takes exactly one argument"},
		{in: "max_size 1 2", wantErr: "max_size takes exactly one argument"},
		{in: "max_size lots", wantErr: `max_size "lots": want a size such as 16MiB, 512KB or 1048576`},
		{in: "max_size 10 MB", wantErr: `max_size "10 MB": a size has no space; write 10MB`},
		{in: "max_size 1.5.2MB", wantErr: `max_size "1.5.2MB": want a size such as`},
		{in: "max_size 10EiB", wantErr: `max_size "10EiB": too large`},
		{in: "max_size 0", zero: NoZero, wantErr: `max_size "0": must be a positive size`},
	} {
		var v *int64
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error {
			n, err := Size(d, tc.zero)
			v = &n
			return err
		})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || v == nil || *v != tc.want {
			t.Errorf("%q: got %v, %v; want %d", tc.in, v, err, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in      string
		zero    bool
		want    time.Duration
		wantErr string
	}{
		{in: "sweep 90s", want: 90 * time.Second},
		{in: "sweep 1d", want: 24 * time.Hour},
		{in: "sweep", wantErr: "sweep takes exactly one argument"},
		{in: "sweep 1s 2s", wantErr: "sweep takes exactly one argument"},
		{in: "sweep 5 min", wantErr: `sweep "5 min": a duration has no space; write 5m`},
		{in: "sweep 2hours", wantErr: `sweep "2hours": unknown unit; write 2h`},
		{in: "sweep soon", wantErr: `sweep "soon": want a duration such as 90s, 5m, 2h or 7d`},
		{in: "sweep 0s", wantErr: `sweep "0s": must be positive`},
		{in: "sweep -1s", zero: AllowZero, wantErr: `sweep "-1s": must not be negative`},
		{in: "sweep 0s", zero: AllowZero, want: 0},
	} {
		var v caddy.Duration
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error {
			var err error
			v, err = Duration(d, tc.zero)
			return err
		})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "time:") {
				t.Errorf("%q: error %v leaks the time package's message", tc.in, err)
			}
			continue
		}
		if err != nil || time.Duration(v) != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.in, time.Duration(v), err, tc.want)
		}
	}
}

func TestUnknown(t *testing.T) {
	err := parse(t, "pasword x", func(d *caddyfile.Dispenser) error {
		return Unknown(d, "redis storage", d.Val(), []string{"url", "password"})
	})
	if err == nil || !strings.Contains(err.Error(), `unrecognized redis storage option "pasword" (did you mean "password"?)`) {
		t.Fatalf("error %v", err)
	}
	err = parse(t, "zzz x", func(d *caddyfile.Dispenser) error {
		return Unknown(d, "redis storage", d.Val(), []string{"url", "password"})
	})
	if err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("error %v, want no suggestion", err)
	}
}

func TestOnce(t *testing.T) {
	for _, tc := range []struct {
		in, prefix, wantErr string
	}{
		{in: "a 1\nb 2"},
		{in: "a 1\na 2", wantErr: "a specified more than once"},
		{in: "a 1\nb 2\na 3", prefix: "key", wantErr: "key a specified more than once"},
	} {
		once := make(Once)
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error {
			err := once.Check(d, tc.prefix)
			d.RemainingArgs()
			return err
		})
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestInt(t *testing.T) {
	for _, tc := range []struct {
		in      string
		zero    bool
		want    int
		wantErr string
	}{
		{in: "db 3", want: 3},
		{in: "db 0", zero: AllowZero, want: 0},
		{in: "db 0", wantErr: `db "0": want a positive integer`},
		{in: "db -1", zero: AllowZero, wantErr: `db "-1": want a non-negative integer`},
		{in: "db x", wantErr: `db "x": want a positive integer`},
		{in: "db", wantErr: "db takes exactly one argument"},
	} {
		var got int
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error {
			var err error
			got, err = Int(d, tc.zero)
			return err
		})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
