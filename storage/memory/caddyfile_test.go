package memory

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Memory
		wantErr string
	}{
		{in: `memory`, want: Memory{}},
		{in: `memory 1GB`, want: Memory{MaxSize: 1_000_000_000}},
		{in: "memory {\n name site\n max_size 64MiB\n}", want: Memory{Name: "site", MaxSize: 64 << 20}},
		{in: `memory 1 GB`, wantErr: `max_size "1 GB": a size has no space; write 1GB`},
		{in: `memory 1GB 2GB`, wantErr: "max_size takes exactly one argument"},
		{in: `memory lots`, wantErr: `max_size "lots": want a size such as 16MiB, 512KB or 1048576`},
		{in: `memory 0`, wantErr: `max_size "0": must be a positive size`},
		{in: `memory 10EiB`, wantErr: `max_size "10EiB": too large`},
		{in: "memory {\n max_size\n}", wantErr: "max_size takes exactly one argument"},
		{in: "memory {\n max_size 64 MiB\n}", wantErr: `max_size "64 MiB": a size has no space; write 64MiB`},
		{in: "memory 1GB {\n max_size 2GB\n}", wantErr: "max_size specified more than once"},
		{in: "memory {\n name a\n name b\n}", wantErr: "name specified more than once"},
		{in: "memory {\n size 1GB\n}", wantErr: `unrecognized memory storage option "size" (did you mean "max_size"?)`},
		{in: "memory {\n nmae a\n}", wantErr: `unrecognized memory storage option "nmae" (did you mean "name"?)`},
	} {
		var got Memory
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("%q: error %v, want one containing %q and the file and line", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.Name != tc.want.Name || got.MaxSize != tc.want.MaxSize {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range options {
		var m Memory
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("memory {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}
