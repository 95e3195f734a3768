package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var bg = context.Background()

// provision loads cfg as a module on a fresh Caddy context, as Caddy does
// for a config, and releases it when the test ends.
func provision(t testing.TB, cfg SQLite) *SQLite {
	t.Helper()
	s := cfg
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return &s
}

// tempPath is a database path in the test's own directory.
func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "cache.db")
}

func ptr[T any](v T) *T { return &v }

// refs reports how many handles use the pool entry of path.
func refs(t testing.TB, path string) int {
	t.Helper()
	n, _ := pool.References("sqlite:" + path)
	return n
}

// rowCount counts the rows of table, expired or not, bypassing the store.
func rowCount(t testing.TB, db *DB, table string) int {
	t.Helper()
	var n int
	if err := db.w().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// pragma reads a setting of the writer connection.
func pragma(t testing.TB, db *DB, name string) string {
	t.Helper()
	var v string
	if err := db.w().QueryRow(`PRAGMA ` + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

// openDB starts the shared state of the database at path as newDB does,
// and fails when the file cannot be opened.
func openDB(path string, opts connOptions, maxSize int64, sweep time.Duration, logger *zap.Logger) (*DB, error) {
	db := newDB(path, opts, maxSize, sweep, logger)
	if _, err := db.conn(); err != nil {
		db.Destruct()
		return nil, err
	}
	return db, nil
}

// w is the writer connection of the open database.
func (db *DB) w() *sql.DB { return db.c.Load().w }

// r is the reader pool of the open database.
func (db *DB) r() *sql.DB { return db.c.Load().r }

func newContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}
