package file

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  File
	}{
		{"bare", `file`, File{}},
		{"path argument", `file /var/cache/entries`, File{Path: "/var/cache/entries"}},
		{"every option", `file {
			path           /srv/cache
			max_size       2GiB
			sweep_interval 30s
			compression    off
			fsync
		}`, File{Path: "/srv/cache", MaxSize: ptr[int64](2 << 30), SweepInterval: caddyDuration(30 * time.Second), Compression: "off", Fsync: true}},
		{"fsync off", "file {\n fsync off\n}", File{}},
		{"max_size 0 is unlimited", "file {\n max_size 0\n}", File{MaxSize: ptr[int64](0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got File
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{"file {\n shards 3\n}", `unrecognized file storage option "shards"`},
		{"file {\n compresion off\n}", `unrecognized file storage option "compresion" (did you mean "compression"?)`},
		{"file {\n sweep_interval 1 hour\n}", `sweep_interval "1 hour": a duration has no space; write 1h`},
		{"file {\n max_size huge\n}", `max_size "huge"`},
		{"file {\n max_size 1GB\n max_size 1GB\n}", "max_size specified more than once"},
		{"file {\n max_size\n}", "max_size takes exactly one argument"},
		{"file /a {\n path /b\n}", "path specified more than once"},
		{"file /a /b", `unexpected argument "/b"`},
		{"file {\n sweep_interval often\n}", `sweep_interval "often"`},
		{"file {\n sweep_interval -1s\n}", `sweep_interval "-1s": must be positive`},
		{"file {\n sweep_interval 1s\n sweep_interval 2s\n}", "sweep_interval specified more than once"},
		{"file {\n compression lz4\n}", `compression "lz4": want zstd or off`},
		{"file {\n fsync always\n}", `fsync "always": want on or off`},
		{"file {\n fsync\n fsync\n}", "fsync specified more than once"},
		{"file {\n fsync on off\n}", "fsync takes at most one argument"},
	} {
		var f File
		err := f.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil {
			t.Errorf("%q: no error, want one containing %q", tc.input, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %q, want one containing %q and the file and line", tc.input, err, tc.want)
		}
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range options {
		var f File
		err := f.UnmarshalCaddyfile(caddyfile.NewTestDispenser("file {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}

func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(File{Path: "p", MaxSize: ptr[int64](0), SweepInterval: 2, Compression: "off", Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"path":"p","max_size":0,"sweep_interval":2,"compression":"off","fsync":true}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
}
