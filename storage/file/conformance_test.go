package file

import (
	"os"
	"testing"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// corruptEntry keeps key's file header (key and expiry) and replaces the encoded
// entry after it with raw.
func corruptEntry(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	p := s.(*File).dir.path(key)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading the file of %q: %v", key, err)
	}
	k, _, enc, err := parseFile(b)
	if err != nil || k != key {
		t.Fatalf("the file of %q has a bad header (key %q): %v", key, k, err)
	}
	header := b[:len(b)-len(enc)]
	if err := os.WriteFile(p, append(append([]byte{}, header...), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, File{Path: t.TempDir()})
	}, storagetest.Options{Corrupt: corruptEntry})
}

func TestConformanceFsyncNoCompression(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, File{Path: t.TempDir(), Fsync: true, Compression: "off"})
	}, storagetest.Options{Corrupt: corruptEntry})
}
