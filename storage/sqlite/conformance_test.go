package sqlite

import (
	"testing"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// corrupt overwrites the data column of key's row, leaving its expiry.
func corrupt(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	res, err := s.(*SQLite).db.w().Exec(`UPDATE entries SET data = ? WHERE key = ?`, raw, key)
	if err != nil {
		t.Fatalf("corrupting %q: %v", key, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupting %q: %d rows updated, want 1", key, n)
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, SQLite{Path: tempPath(t)})
	}, storagetest.Options{Corrupt: corrupt})
}

// The rollback journal, full sync and no compression take other code paths
// in SQLite and in the codec.
func TestConformanceNoWALNoCompression(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, SQLite{Path: tempPath(t), WAL: ptr(false), Synchronous: "full", Compression: "off"})
	}, storagetest.Options{Corrupt: corrupt})
}
