package caddyopt

import (
	"strings"
	"testing"

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
		{in: "fsync\nfsync", wantErr: "fsync specified more than once"},
	} {
		var v *bool
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error { return OnOff(d, &v) })
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
		want    int64
		wantErr string
	}{
		{in: "max_size 0", want: 0},
		{in: "max_size 64MiB", want: 64 << 20},
		{in: "max_size 1GB", want: 1_000_000_000},
		{in: "max_size", wantErr: "max_size takes exactly one argument"},
		{in: "max_size 1 2", wantErr: "max_size takes exactly one argument"},
		{in: "max_size lots", wantErr: `max_size "lots"`},
		{in: "max_size 10EiB", wantErr: `max_size "10EiB": too large`},
		{in: "max_size 1\nmax_size 1", wantErr: "max_size specified more than once"},
	} {
		var v *int64
		err := parse(t, tc.in, func(d *caddyfile.Dispenser) error { return Size(d, &v) })
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
