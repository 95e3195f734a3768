package mongodb

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    MongoDB
		wantErr string
	}{
		{in: `mongodb mongodb://h:27017/`, want: MongoDB{Config: mongoconn.Config{URI: "mongodb://h:27017/"}}},
		{in: `mongodb {env.MONGO_URI}`, want: MongoDB{Config: mongoconn.Config{URI: "{env.MONGO_URI}"}}},
		{in: `mongodb {
			uri mongodb://h/
			database cache
			collection entries
			connect_timeout 5s
			sweep_interval 30s
			compression off
		}`, want: MongoDB{
			Config: mongoconn.Config{
				URI: "mongodb://h/", Database: "cache",
				ConnectTimeout: caddy.Duration(5 * time.Second), SweepInterval: caddy.Duration(30 * time.Second), Compression: "off",
			},
			Collection: "entries",
		}},
		{in: `mongodb`, wantErr: "uri is required"},
		{in: `mongodb mongodb://h/ extra`, wantErr: `unexpected argument "extra"`},
		{in: "mongodb mongodb://h/ {\n uri mongodb://i/\n}", wantErr: "uri specified more than once"},
		{in: "mongodb mongodb://h/ {\n database\n}", wantErr: "database takes exactly one argument"},
		{in: "mongodb mongodb://h/ {\n database a b\n}", wantErr: "database takes exactly one argument"},
		{in: "mongodb mongodb://h/ {\n database a.b\n}", wantErr: `database "a.b"`},
		{in: "mongodb mongodb://h/ {\n collection x\n collection y\n}", wantErr: "collection specified more than once"},
		{in: "mongodb mongodb://h/ {\n collection system.users\n}", wantErr: `collection "system.users"`},
		{in: "mongodb mongodb://h/ {\n connect_timeout soon\n}", wantErr: `connect_timeout "soon"`},
		{in: "mongodb mongodb://h/ {\n sweep_interval 0s\n}", wantErr: `sweep_interval "0s": must be positive`},
		{in: "mongodb mongodb://h/ {\n compression brotli\n}", wantErr: "compression"},
		{in: "mongodb mongodb://h/ {\n bucket x\n}", wantErr: `unrecognized mongodb storage option "bucket"`},
		{in: "mongodb mongodb://h/ {\n colection x\n}", wantErr: `unrecognized mongodb storage option "colection" (did you mean "collection"?)`},
		{in: "mongodb mongodb://h/ {\n databse x\n}", wantErr: `unrecognized mongodb storage option "databse" (did you mean "database"?)`},
		{in: "mongodb mongodb://h/ {\n connect_timeout 5 s\n}", wantErr: `connect_timeout "5 s": a duration has no space; write 5s`},
	} {
		var got MongoDB
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestJSONFields checks that the embedded connection config keeps every
// JSON field at the top level of the module's object.
func TestJSONFields(t *testing.T) {
	in := `{"uri":"mongodb://h/","database":"d","collection":"c","connect_timeout":"5s","sweep_interval":"30s","compression":"off"}`
	var m MongoDB
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	want := MongoDB{
		Config: mongoconn.Config{
			URI: "mongodb://h/", Database: "d",
			ConnectTimeout: caddy.Duration(5 * time.Second), SweepInterval: caddy.Duration(30 * time.Second), Compression: "off",
		},
		Collection: "c",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded %+v, want %+v", m, want)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(out, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 6 || fields["collection"] != "c" || fields["uri"] != "mongodb://h/" {
		t.Fatalf("encoded %s, want the six fields flat", out)
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range append(mongoconn.Options, "collection") {
		var m MongoDB
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("mongodb {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}
