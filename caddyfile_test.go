package cache

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt runs every testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, a line of dashes, then either the expected JSON or the text the
// adapt error must contain (errors must also point at the Caddyfile line).
// UPDATE_GOLDEN=1 rewrites the JSON of the non-error files.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(data), "----------", 2)
			if len(parts) != 2 {
				t.Fatalf("%s: no ---------- separator", f)
			}
			input := strings.TrimSpace(parts[0]) + "\n"
			want := strings.TrimSpace(parts[1])
			if strings.HasPrefix(filepath.Base(f), "err-") {
				_, _, err := adapt(input)
				if err == nil {
					t.Fatalf("adapting succeeded, want an error containing %q", want)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
				if !strings.Contains(err.Error(), "Caddyfile:") {
					t.Fatalf("error %q does not name the Caddyfile line", err)
				}
				return
			}
			if os.Getenv("UPDATE_GOLDEN") == "1" {
				out, _, err := adapt(input)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				_ = json.Unmarshal(out, &v)
				pretty, _ := json.MarshalIndent(v, "", "\t")
				if err := os.WriteFile(f, []byte(strings.TrimSpace(parts[0])+"\n----------\n"+string(pretty)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, input, "caddyfile", want) {
				t.Fatalf("adapted JSON differs from %s", f)
			}
		})
	}
}

func adapt(input string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
}

// TestCaddyfileOptionsKnown keeps the lists behind the typo hints in step
// with the parser: every listed option must be one the parser handles.
func TestCaddyfileOptionsKnown(t *testing.T) {
	check := func(list []string, block, wrap string) {
		for _, opt := range list {
			in := strings.Replace(wrap, "OPT", opt, 1)
			err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
			if err != nil && strings.Contains(err.Error(), "unrecognized "+block+" option") {
				t.Errorf("%s option %q is listed for hints but not parsed: %v", block, opt, err)
			}
		}
	}
	check(cacheOptions, "cache", "cache {\nOPT\n}")
	check(keyOptions, "key", "cache {\nkey {\nOPT\n}\n}")
	check(surrogateKeysOptions, "surrogate_keys", "cache {\nsurrogate_keys {\nOPT\n}\n}")
}

// TestUnknownBackend checks the message for an unknown backend with the
// shipped backends (the test binary registers test stores too, so the
// golden files match only part of it).
func TestUnknownBackend(t *testing.T) {
	shipped := []string{"dynamodb", "file", "gridfs", "memory", "mongodb", "redis", "sqlite"}
	registered := storageBackends()
	for _, b := range shipped {
		if !slices.Contains(registered, b) {
			t.Errorf("backend %q is not registered (backends.go?); registered: %v", b, registered)
		}
	}
	if !slices.IsSorted(registered) {
		t.Errorf("storageBackends() = %v, want them sorted", registered)
	}
	for _, tc := range []struct{ name, want string }{
		{"redsi", `storage "redsi": unknown backend; registered: dynamodb, file, gridfs, memory, mongodb, redis, sqlite (did you mean "redis"?)`},
		{"sqlite3", `storage "sqlite3": unknown backend; registered: dynamodb, file, gridfs, memory, mongodb, redis, sqlite (did you mean "sqlite"?)`},
		{"mongo", `storage "mongo": unknown backend; registered: dynamodb, file, gridfs, memory, mongodb, redis, sqlite (did you mean "mongodb"?)`},
		{"nosuch", `storage "nosuch": unknown backend; registered: dynamodb, file, gridfs, memory, mongodb, redis, sqlite`},
		{"./cache.db", `storage "./cache.db": unknown backend; registered: dynamodb, file, gridfs, memory, mongodb, redis, sqlite; a path goes after the backend's name, e.g. storage sqlite ./cache.db`},
	} {
		if got := unknownBackend(tc.name, shipped); got != tc.want {
			t.Errorf("unknownBackend(%q)\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestCaddyfileKey checks the parsed key options and that their errors
// point at the line of the option.
func TestCaddyfileKey(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`cache {
		request_cache_control ignore
		key {
			cookies lang currency
			template "{http.request.host}{http.request.uri.path}"
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.RequestCacheControl != "ignore" || !slices.Equal(h.Key.Cookies, []string{"lang", "currency"}) ||
		h.Key.Template != "{http.request.host}{http.request.uri.path}" {
		t.Fatalf("got request_cache_control %q, key %+v", h.RequestCacheControl, h.Key)
	}
	if err := h.validateKeyConfig(); err != nil {
		t.Fatalf("validateKeyConfig on parsed config: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"cache {\n key {\n cookies a\n cookies b\n }\n}", "key cookies specified more than once, at Testfile:4"},
		{"cache {\n key {\n template {a}\n template {b}\n }\n}", "key template specified more than once, at Testfile:4"},
		{"cache {\n key {\n cookies a b a\n }\n}", `key cookies "a": listed twice, at Testfile:3`},
		{"cache {\n key {\n cookies lang=en\n }\n}", `key cookies "lang=en": give the cookie's name only`},
		{"cache {\n key {\n templaet {a}\n }\n}", `unrecognized key option "templaet" (did you mean "template"?), at Testfile:3`},
		{"cache {\n request_cache_control\n}", "request_cache_control takes exactly one argument"},
		{"cache {\n request_cache_control ignore\n request_cache_control ignore\n}", "request_cache_control specified more than once"},
	} {
		err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

// TestCaddyfileStorageMemory checks that memory with storage memory is an
// error in either order, at the memory line, and that memory off is not.
func TestCaddyfileStorageMemory(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cache {\n storage memory\n memory 32MiB\n}", "memory 32MiB: the hot tier sits in front of other backends; with storage memory set the size with its max_size option instead, at Testfile:3"},
		{"cache {\n memory 1GB\n storage memory {\n name x\n }\n}", "memory 1GB: the hot tier sits in front of other backends; with storage memory set the size with its max_size option instead, at Testfile:2"},
		{"cache {\n storage memory\n memory off\n}", ""},
		{"cache {\n storage sqlite\n memory 32MiB\n}", ""},
	} {
		err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}
