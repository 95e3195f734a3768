package sqlite

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
		want  SQLite
	}{
		{"bare", `sqlite`, SQLite{}},
		{"path argument", `sqlite /var/cache/c.db`, SQLite{Path: "/var/cache/c.db"}},
		{"every option", `sqlite {
			path           "/srv/with space/c.db"
			busy_timeout   2s
			wal            off
			synchronous    full
			max_size       512MiB
			sweep_interval 5m
			compression    off
		}`, SQLite{
			Path: "/srv/with space/c.db", BusyTimeout: caddyDuration(2 * time.Second), WAL: ptr(false),
			Synchronous: "full", MaxSize: ptr[int64](512 << 20), SweepInterval: caddyDuration(5 * time.Minute),
			Compression: "off",
		}},
		{"bare wal flag", "sqlite {\n wal\n}", SQLite{WAL: ptr(true)}},
		{"max_size 0 is unlimited", "sqlite {\n max_size 0\n}", SQLite{MaxSize: ptr[int64](0)}},
		{"max_size in plain bytes", "sqlite {\n max_size 1000\n}", SQLite{MaxSize: ptr[int64](1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got SQLite
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
		{"sqlite {\n frobnicate 1\n}", `unrecognized sqlite storage option "frobnicate"`},
		{"sqlite {\n max_sise 1GB\n}", `unrecognized sqlite storage option "max_sise" (did you mean "max_size"?)`},
		{"sqlite {\n sweep_interval 5 min\n}", `sweep_interval "5 min": a duration has no space; write 5m`},
		{"sqlite {\n max_size 1 GB\n}", `max_size "1 GB": a size has no space; write 1GB`},
		{"sqlite {\n max_size lots\n}", `max_size "lots"`},
		{"sqlite {\n max_size -1\n}", `max_size "-1"`},
		{"sqlite {\n max_size 1MB\n max_size 2MB\n}", "max_size specified more than once"},
		{"sqlite {\n max_size\n}", "max_size takes exactly one argument"},
		{"sqlite {\n max_size 1MB 2MB\n}", "max_size takes exactly one argument"},
		{"sqlite /a.db {\n path /b.db\n}", "path specified more than once"},
		{"sqlite /a.db /b.db", `unexpected argument "/b.db"`},
		{"sqlite {\n busy_timeout soon\n}", `busy_timeout "soon"`},
		{"sqlite {\n busy_timeout 1s\n busy_timeout 2s\n}", "busy_timeout specified more than once"},
		{"sqlite {\n sweep_interval 0s\n}", `sweep_interval "0s": must be positive`},
		{"sqlite {\n wal maybe\n}", `wal "maybe": want on or off`},
		{"sqlite {\n wal on\n wal off\n}", "wal specified more than once"},
		{"sqlite {\n wal on off\n}", "wal takes at most one argument"},
		{"sqlite {\n synchronous sometimes\n}", `synchronous "sometimes": want off, normal or full`},
		{"sqlite {\n synchronous full\n synchronous off\n}", "synchronous specified more than once"},
		{"sqlite {\n compression gzip\n}", `compression "gzip": want zstd or off`},
		{"sqlite {\n compression off\n compression off\n}", "compression specified more than once"},
	} {
		var s SQLite
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil {
			t.Errorf("%q: no error, want one containing %q", tc.input, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want one containing %q", tc.input, err, tc.want)
		}
		if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %q does not give the file and line", tc.input, err)
		}
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range options {
		var s SQLite
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("sqlite {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}

func TestJSONFieldNames(t *testing.T) {
	s := SQLite{Path: "p", BusyTimeout: 1, WAL: ptr(true), Synchronous: "full", MaxSize: ptr[int64](0), SweepInterval: 2, Compression: "off"}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"path":"p","busy_timeout":1,"wal":true,"synchronous":"full","max_size":0,"sweep_interval":2,"compression":"off"}`
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	if b, _ := json.Marshal(SQLite{}); string(b) != `{}` {
		t.Fatalf("JSON of the zero config %s, want {}", b)
	}
}
