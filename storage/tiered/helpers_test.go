package tiered

import (
	"database/sql"
	"testing"

	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// corruptSQLite replaces the stored bytes of key in s with raw through a
// connection of its own to the database file, as a damaged disk or another
// process would.
func corruptSQLite(t *testing.T, s *sqlite.SQLite, key string, raw []byte) {
	t.Helper()
	db, err := sql.Open("sqlite", s.Path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE entries SET data = ? WHERE key = ?`, raw, key)
	if err != nil {
		t.Fatalf("corrupting %q: %v", key, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupting %q: %d rows updated, want 1", key, n)
	}
}
