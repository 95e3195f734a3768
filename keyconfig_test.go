package cache

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateKeyConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{name: "empty"},
		{name: "request_cache_control respect", h: Handler{RequestCacheControl: "respect"}},
		{name: "request_cache_control ignore", h: Handler{RequestCacheControl: "ignore"}},
		{
			name: "request_cache_control bogus", h: Handler{RequestCacheControl: "Ignore"},
			wantErr: `request_cache_control "Ignore": want respect or ignore`,
		},
		{name: "empty key", h: Handler{Key: &KeyConfig{}}},
		{name: "cookies", h: Handler{Key: &KeyConfig{Cookies: []string{"lang", "currency", "__Host-sid", "a!#$%&'*+-.^_`|~9"}}}},
		{name: "cookie names are case-sensitive", h: Handler{Key: &KeyConfig{Cookies: []string{"lang", "Lang"}}}},
		{name: "empty cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{""}}}, wantErr: `key cookies "": empty cookie name`},
		{name: "space in cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{"my lang"}}}, wantErr: `key cookies "my lang": not a cookie name`},
		{name: "separator in cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{"a;b"}}}, wantErr: `key cookies "a;b": not a cookie name`},
		{name: "quote in cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{`"lang"`}}}, wantErr: `not a cookie name`},
		{name: "control in cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{"la\x00ng"}}}, wantErr: `not a cookie name`},
		{name: "non-ASCII cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{"länge"}}}, wantErr: `not a cookie name`},
		{name: "brace in cookie name", h: Handler{Key: &KeyConfig{Cookies: []string{"{lang}"}}}, wantErr: `not a cookie name`},
		{name: "commas", h: Handler{Key: &KeyConfig{Cookies: []string{"lang,currency"}}}, wantErr: `separate cookie names with spaces`},
		{name: "name=value", h: Handler{Key: &KeyConfig{Cookies: []string{"lang=en"}}}, wantErr: `give the cookie's name only`},
		{name: "duplicate cookie", h: Handler{Key: &KeyConfig{Cookies: []string{"lang", "lang"}}}, wantErr: `key cookies "lang": listed twice`},
		{name: "template", h: Handler{Key: &KeyConfig{Template: "{http.request.host}{http.request.uri.path}{http.request.cookie.lang}"}}},
		{name: "template with text around a placeholder", h: Handler{Key: &KeyConfig{Template: "v2:{http.request.uri}"}}},
		{name: "constant template", h: Handler{Key: &KeyConfig{Template: "site-a"}}, wantErr: `key template "site-a": no {placeholder}`},
		{name: "empty braces", h: Handler{Key: &KeyConfig{Template: "a{}b"}}, wantErr: "no {placeholder}"},
		{name: "escaped braces", h: Handler{Key: &KeyConfig{Template: `\{http.request.host\}`}}, wantErr: "no {placeholder}"},
		{name: "unclosed brace", h: Handler{Key: &KeyConfig{Template: "{http.request.host"}}, wantErr: "no {placeholder}"},
		{name: "blank template", h: Handler{Key: &KeyConfig{Template: "  "}}, wantErr: "no {placeholder}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.validateKeyConfig()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if err := checkKeyTemplate(""); err == nil || err.Error() != "key template: empty template" {
		t.Errorf("checkKeyTemplate(\"\") = %v", err)
	}
}

func TestValidateStorageMemory(t *testing.T) {
	const msg = ": the hot tier sits in front of other backends; with storage memory set the size with its max_size option instead"
	for _, tc := range []struct {
		name    string
		storage string
		memory  int64
		wantErr string
	}{
		{name: "default storage, memory set", memory: 64 << 20},
		{name: "memory store, memory default", storage: `{"backend":"memory"}`},
		{name: "memory store, memory off", storage: `{"backend":"memory"}`, memory: -1},
		{name: "sqlite, memory set", storage: `{"backend":"sqlite","path":"/x.db"}`, memory: 64 << 20},
		{name: "malformed storage is left to loading", storage: `{"backend":`, memory: 64 << 20},
		{name: "memory store, memory MiB", storage: `{"max_size":1073741824,"backend":"memory"}`, memory: 64 << 20, wantErr: "memory 64MiB" + msg},
		{name: "memory store, memory MB", storage: `{"backend":"memory"}`, memory: 64_000_000, wantErr: "memory 64MB" + msg},
		{name: "memory store, odd bytes", storage: `{"backend":"memory"}`, memory: 1500, wantErr: "memory 1500" + msg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw json.RawMessage
			if tc.storage != "" {
				raw = json.RawMessage(tc.storage)
			}
			err := validateStorageMemory(raw, tc.memory)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		1: "1", 1000: "1KB", 1024: "1KiB", 1536: "1536", 64 << 20: "64MiB", 64_000_000: "64MB",
		1 << 30: "1GiB", 2_000_000_000: "2GB", 3 << 40: "3TiB", 5e12: "5TB",
	} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
