package redis

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  Redis
	}{
		{"bare", `redis`, Redis{}},
		{"url on the line", `redis rediss://u:p@cache.internal:6380/2`, Redis{URL: "rediss://u:p@cache.internal:6380/2"}},
		{"every option", `redis {
			addresses 10.0.0.1:6379 10.0.0.2:6379
			username cache
			password {env.REDIS_PASSWORD}
			tls {
				insecure_skip_verify
				server_name redis.internal
				ca_file /etc/ca.pem
			}
			cluster
			namespace shop
			pool_size 50
			min_idle_conns 5
			dial_timeout 2s
			read_timeout 500ms
			write_timeout 1s
			stale_grace 1m
			max_entry_size 32MiB
			compression off
		}`, Redis{
			Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379"}, Username: "cache", Password: "{env.REDIS_PASSWORD}",
			TLS:     &TLSConfig{InsecureSkipVerify: true, ServerName: "redis.internal", CAFile: "/etc/ca.pem"},
			Cluster: true, Namespace: "shop", PoolSize: 50, MinIdleConns: 5,
			DialTimeout: caddy.Duration(2 * time.Second), ReadTimeout: caddy.Duration(500 * time.Millisecond),
			WriteTimeout: caddy.Duration(time.Second), StaleGrace: caddy.Duration(time.Minute),
			MaxEntrySize: 32 << 20, Compression: "off",
		}},
		{"sentinel", `redis {
			addresses 127.0.0.1:26379
			sentinel_master mymaster
			sentinel_password s
			db 3
			tls on
			cluster false
		}`, Redis{Addresses: []string{"127.0.0.1:26379"}, SentinelMaster: "mymaster", SentinelPassword: "s", DB: 3, TLS: &TLSConfig{}}},
		{"tls bare", "redis {\n tls\n}", Redis{TLS: &TLSConfig{}}},
		{"tls off", "redis {\n tls off\n}", Redis{TLS: &TLSConfig{disabled: true}}},
		{"url option", "redis {\n url redis://127.0.0.1:7000\n}", Redis{URL: "redis://127.0.0.1:7000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Redis
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"unknown option", "redis {\n hostname x\n}", `unrecognized redis storage option "hostname"`},
		{"typo", "redis {\n pasword x\n}", `unrecognized redis storage option "pasword" (did you mean "password"?)`},
		{"tls typo", "redis {\n tls {\n ca_fiel x\n }\n}", `unrecognized redis storage tls option "ca_fiel" (did you mean "ca_file"?)`},
		{"duration with a space", "redis {\n dial_timeout 2 sec\n}", `dial_timeout "2 sec": a duration has no space; write 2s`},
		{"size with a space", "redis {\n max_entry_size 32 MiB\n}", `max_entry_size "32 MiB": a size has no space; write 32MiB`},
		{"size not leaking humanize", "redis {\n max_entry_size 1.2.3\n}", `max_entry_size "1.2.3": want a size such as 16MiB, 512KB or 1048576`},
		{"bad duration", "redis {\n dial_timeout soon\n}", `dial_timeout "soon"`},
		{"negative duration", "redis {\n stale_grace -1s\n}", `stale_grace "-1s": must not be negative`},
		{"repeated option", "redis {\n namespace a\n namespace b\n}", "namespace specified more than once"},
		{"repeated tls", "redis {\n tls\n tls off\n}", "tls specified more than once"},
		{"url and addresses", "redis {\n url redis://h:1\n addresses h:2\n}", "url and addresses are mutually exclusive"},
		{"url twice", "redis redis://h:1 {\n url redis://h:2\n}", "url specified more than once"},
		{"extra argument on the line", "redis redis://h:1 redis://h:2", "wrong argument count"},
		{"missing argument", "redis {\n namespace\n}", "namespace takes exactly one argument"},
		{"two arguments", "redis {\n namespace a b\n}", "namespace takes exactly one argument"},
		{"bad db", "redis {\n db two\n}", `db "two": want a non-negative integer`},
		{"negative pool", "redis {\n pool_size -1\n}", `pool_size "-1": want a non-negative integer`},
		{"bad size", "redis {\n max_entry_size lots\n}", `max_entry_size "lots"`},
		{"zero size", "redis {\n max_entry_size 0\n}", `max_entry_size "0": must be a positive size`},
		{"bad compression", "redis {\n compression gzip\n}", `compression "gzip": want zstd or off`},
		{"bad address", "redis {\n addresses localhost\n}", `addresses: "localhost": want host:port`},
		{"bad tls", "redis {\n tls maybe\n}", `tls "maybe": want on or off`},
		{"tls off with a block", "redis {\n tls off {\n server_name x\n }\n}", "tls off cannot have a block"},
		{"unknown tls option", "redis {\n tls {\n verify no\n }\n}", `unrecognized redis storage tls option "verify"`},
		{"bad cluster", "redis {\n cluster sometimes\n}", `cluster "sometimes": want on or off`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Redis
			err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
		})
	}
}

// TestOptionsKnown keeps the typo hints' lists in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, in := range append(
		mapStrings(options, func(o string) string { return "redis {\n" + o + "\n}" }),
		mapStrings(tlsOptions, func(o string) string { return "redis {\n tls {\n" + o + "\n}\n}" })...) {
		var r Redis
		err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("%q: option listed for hints but not parsed: %v", in, err)
		}
	}
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

func TestTLSConfigJSON(t *testing.T) {
	for _, tc := range []struct {
		in      string
		enabled bool
		out     string
	}{
		{`{"tls":true}`, true, `{"tls":true}`},
		{`{"tls":false}`, false, `{"tls":false}`},
		{`{"tls":{"server_name":"r","ca_file":"/ca.pem"}}`, true, `{"tls":{"server_name":"r","ca_file":"/ca.pem"}}`},
		{`{"tls":{}}`, true, `{"tls":true}`},
		{`{}`, false, `{}`},
	} {
		var r Redis
		if err := json.Unmarshal([]byte(tc.in), &r); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if r.TLS.Enabled() != tc.enabled {
			t.Errorf("%s: Enabled() = %v, want %v", tc.in, r.TLS.Enabled(), tc.enabled)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.out {
			t.Errorf("%s: marshals as %s, want %s", tc.in, b, tc.out)
		}
	}
	var r Redis
	if err := json.Unmarshal([]byte(`{"tls":{"verify":false}}`), &r); err == nil || !strings.Contains(err.Error(), "verify") {
		t.Fatalf("unknown tls field: %v, want an error naming it", err)
	}
	if err := json.Unmarshal([]byte(`{"tls":"yes"}`), &r); err == nil {
		t.Fatal(`"tls":"yes" accepted`)
	}
}

// Invalid configurations fail Provision with an error naming the option,
// before anything is acquired; secrets never appear in the error.
func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Redis
		want string
	}{
		{"url and addresses", Redis{URL: "redis://h:1", Addresses: []string{"h:2"}}, "url and addresses are mutually exclusive"},
		{"bad scheme", Redis{URL: "http://h:1"}, `url: scheme must be redis or rediss, got "http"`},
		{"bad url port", Redis{URL: "redis://user:s3cret-pw@h:notaport"}, "url"},
		{"bad url db", Redis{URL: "redis://user:s3cret-pw@h:1/x"}, "invalid database number"},
		{"unknown url option", Redis{URL: "redis://user:s3cret-pw@h:1/?nope=1"}, "nope"},
		{"bad address", Redis{Addresses: []string{"no-port"}}, "addresses"},
		{"negative db", Redis{DB: -1}, "db must not be negative"},
		{"db in cluster", Redis{Addresses: []string{"a:1", "b:1"}, DB: 1}, "db must be 0 in Cluster mode"},
		{"db in cluster url", Redis{URL: "redis://h:1/2", Cluster: true}, "db must be 0 in Cluster mode"},
		{"sentinel password alone", Redis{SentinelPassword: "x"}, "sentinel_password needs sentinel_master"},
		{"sentinel and cluster", Redis{SentinelMaster: "m", Cluster: true}, "sentinel_master and cluster are mutually exclusive"},
		{"negative pool", Redis{PoolSize: -1}, "pool_size must not be negative"},
		{"negative timeout", Redis{ReadTimeout: -1}, "read_timeout must not be negative"},
		{"negative grace", Redis{StaleGrace: -1}, "stale_grace must not be negative"},
		{"negative size", Redis{MaxEntrySize: -1}, "max_entry_size must not be negative"},
		{"huge size", Redis{MaxEntrySize: 1 << 30}, "max_entry_size"},
		{"compression", Redis{Compression: "lz4"}, "compression"},
		{"tls off with rediss", Redis{URL: "rediss://h:1", TLS: &TLSConfig{disabled: true}}, "tls is off but url uses rediss"},
		{"missing ca_file", Redis{TLS: &TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "tls ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: bg})
			defer cancel()
			r := tc.cfg
			err := r.Provision(ctx)
			if err == nil {
				r.Cleanup()
				t.Fatalf("Provision succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision error %q, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("Provision error %q shows the password", err)
			}
			if r.poolKey != "" || r.shared != nil {
				t.Fatal("a failed Provision acquired a client")
			}
			if err := r.Cleanup(); err != nil {
				t.Fatalf("Cleanup after a failed Provision: %v", err)
			}
		})
	}
}

// Placeholders in url and password are replaced at Provision; the password
// only reaches the pool key as a hash.
func TestProvisionPlaceholders(t *testing.T) {
	t.Setenv("CACHE_TEST_REDIS_URL", "redis://127.0.0.1:1/4")
	t.Setenv("CACHE_TEST_REDIS_PW", "pw-from-env")
	r := provisionOnly(t, &Redis{URL: "{env.CACHE_TEST_REDIS_URL}", Password: "{env.CACHE_TEST_REDIS_PW}"})
	defer r.Cleanup()
	if !strings.Contains(r.poolKey, "127.0.0.1:1") || !strings.Contains(r.poolKey, `"db":4`) {
		t.Fatalf("pool key %q does not reflect the replaced url", r.poolKey)
	}
	if strings.Contains(r.poolKey, "pw-from-env") || !strings.Contains(r.poolKey, hashSecret("pw-from-env")) {
		t.Fatalf("pool key %q: want the password's hash, never the password", r.poolKey)
	}
	o, _, err := r.clientOptions(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if o.Password != "pw-from-env" || o.DB != 4 {
		t.Fatalf("client options: password %q db %d, want the replaced values", o.Password, o.DB)
	}
	// A password in the url is hashed in the key too, and redacted from the url.
	u := provisionOnly(t, &Redis{URL: "redis://user:url-secret@127.0.0.1:1"})
	defer u.Cleanup()
	if strings.Contains(u.poolKey, "url-secret") {
		t.Fatalf("pool key %q holds the url's password", u.poolKey)
	}
}
