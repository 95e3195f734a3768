package sqlite

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// schemaV1 is the layout version 1 created, for files written before
// version 2: an index on tags.key that the delete trigger untags through,
// no tags column and no totals.
const schemaV1 = `
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE entries (
	key      TEXT    NOT NULL PRIMARY KEY,
	url      TEXT    NOT NULL,
	expires  INTEGER NOT NULL,
	size     INTEGER NOT NULL,
	created  INTEGER NOT NULL,
	accessed INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
CREATE INDEX entries_expires ON entries (expires);
CREATE INDEX entries_accessed ON entries (accessed);
CREATE INDEX entries_url ON entries (url);
CREATE TABLE tags (
	tag TEXT NOT NULL,
	key TEXT NOT NULL,
	PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX tags_key ON tags (key);
CREATE TRIGGER entries_delete_tags AFTER DELETE ON entries
BEGIN
	DELETE FROM tags WHERE key = old.key;
END;
`

// writeV1File creates a version 1 file at path holding entries under keys,
// tagged as version 1 wrote them (rows of tags, nothing in the entry's row).
func writeV1File(t *testing.T, path string, entries map[string]*storage.Entry) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for k, e := range entries {
		data := storage.Encode(e, storage.CompressionOff)
		if _, err := db.Exec(`INSERT INTO entries (key, url, expires, size, created, accessed, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k, e.URL, e.Expires.UnixNano(), len(k)+len(data), now, now, data); err != nil {
			t.Fatal(err)
		}
		for _, tag := range e.Tags {
			if _, err := db.Exec(`INSERT INTO tags (tag, key) VALUES (?, ?)`, tag, k); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkTotals fails unless totals hold the entries and bytes of the table,
// and every row of tags names a stored entry that has that tag.
func checkTotals(t *testing.T, db *DB) {
	t.Helper()
	var entries, bytes, wantEntries, wantBytes int64
	if err := db.w().QueryRow(`SELECT entries, bytes FROM totals`).Scan(&entries, &bytes); err != nil {
		t.Fatal(err)
	}
	if err := db.w().QueryRow(`SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries`).Scan(&wantEntries, &wantBytes); err != nil {
		t.Fatal(err)
	}
	if entries != wantEntries || bytes != wantBytes {
		t.Errorf("totals: %d entries, %d bytes; the table holds %d entries, %d bytes", entries, bytes, wantEntries, wantBytes)
	}
	var orphans int
	if err := db.w().QueryRow(`SELECT COUNT(*) FROM tags t WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.key = t.key)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d rows of tags name no stored entry", orphans)
	}
	var check string
	if err := db.w().QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q (%v)", check, err)
	}
}

// keysForTag is KeysForTag, sorted, failing the test on an error.
func keysForTag(t *testing.T, s *SQLite, tag string) []string {
	t.Helper()
	keys, err := s.KeysForTag(bg, tag)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func tagged(id string, size int, tags ...string) *storage.Entry {
	e := storagetest.Entry(id, size)
	e.Tags = tags
	return e
}

func indexExists(t *testing.T, db *DB, name string) bool {
	t.Helper()
	var n int
	if err := db.w().QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// The bytes and entries in totals and the tags table follow every kind of
// write: new entries, replacements with another size and other tags,
// deletes, batch deletes, the sweep of expired entries and eviction.
func TestTotalsAndTagsFollowEveryWrite(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](40_000)})
	if indexExists(t, s.db, "tags_key") {
		t.Error("a new file has the index tags_key")
	}
	checkTotals(t, s.db)
	for i := range 10 {
		if err := s.Put(bg, fmt.Sprint("k", i), tagged(fmt.Sprint(i), 1000, "all", fmt.Sprint("n", i%2))); err != nil {
			t.Fatal(err)
		}
	}
	checkTotals(t, s.db)
	if got := keysForTag(t, s, "n1"); len(got) != 5 {
		t.Fatalf("keys tagged n1: %q, want 5", got)
	}
	// replaced: larger, with other tags, then with none
	if err := s.Put(bg, "k1", tagged("1", 3000, "other", "other")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(bg, "k3", tagged("3", 10)); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s.db)
	if got, want := keysForTag(t, s, "n1"), []string{"k5", "k7", "k9"}; !slices.Equal(got, want) {
		t.Fatalf("keys tagged n1 after replacing k1 and k3: %q, want %q", got, want)
	}
	if got := keysForTag(t, s, "other"); !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("keys tagged other: %q, want [k1]", got)
	}
	if err := s.Delete(bg, "k0"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMany(bg, []string{"k2", "k4", "missing"}); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s.db)
	if got := keysForTag(t, s, "n0"); !slices.Equal(got, []string{"k6", "k8"}) {
		t.Fatalf("keys tagged n0 after deleting k0, k2, k4: %q, want [k6 k8]", got)
	}
	// expired entries swept
	short := tagged("short", 100, "all", "short")
	short.Expires = time.Now().Add(time.Minute)
	if err := s.Put(bg, "short", short); err != nil {
		t.Fatal(err)
	}
	s.db.skew.Store(int64(time.Hour))
	st, err := s.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 7 {
		t.Errorf("Stats with one expired entry of 8: %d entries, want 7", st.Entries)
	}
	if err := s.db.sweep(bg); err != nil {
		t.Fatal(err)
	}
	s.db.skew.Store(0)
	if n := rowCount(t, s.db, "tags WHERE tag = 'short'"); n != 0 {
		t.Errorf("rows tagged short after the sweep: %d", n)
	}
	checkTotals(t, s.db)
	// past max_size: evicted
	for i := range 40 {
		if err := s.Put(bg, fmt.Sprint("big", i), tagged(fmt.Sprint("big", i), 2000, "big")); err != nil {
			t.Fatal(err)
		}
	}
	if s.db.evictions.Load() == 0 {
		t.Fatal("no entry was evicted")
	}
	checkTotals(t, s.db)
	if got, n := keysForTag(t, s, "big"), rowCount(t, s.db, "entries WHERE key LIKE 'big%'"); len(got) != n {
		t.Errorf("keys tagged big: %d, entries stored: %d", len(got), n)
	}
	st, err = s.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if total, _ := s.db.exactSize(bg); st.Bytes != total || st.Bytes > 40_000 {
		t.Errorf("Stats: %d bytes, totals %d, max_size 40000", st.Bytes, total)
	}
}

// A tag is untagged by the bytes it was tagged with, whatever they are: the
// tags column escapes only what JSON must.
func TestTagsOfAnyBytes(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	tags := []string{"\xff\xfe not UTF-8", `quote " and \ backslash`, "tab\tnewline\n\x00nul", "ünïcödé", "[", "]", ","}
	if err := s.Put(bg, "k", tagged("k", 10, tags...)); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if got := keysForTag(t, s, tag); !slices.Equal(got, []string{"k"}) {
			t.Errorf("keys tagged %q: %q, want [k]", tag, got)
		}
	}
	if n := rowCount(t, s.db, "tags"); n != len(tags) {
		t.Errorf("rows of tags: %d, want %d", n, len(tags))
	}
	if err := s.Put(bg, "k", tagged("k", 10, "new")); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, s.db, "tags"); n != 1 {
		t.Errorf("rows of tags after replacing the entry: %d, want 1", n)
	}
	if err := s.Delete(bg, "k"); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, s.db, "tags"); n != 0 {
		t.Errorf("rows of tags after deleting the entry: %d, want 0", n)
	}
}

// A file of version 1 is brought to version 2 when opened: its entries
// are still served, the tags written by version 1 are still found and go
// with their entries, and totals start from what the file holds.
func TestVersion1FileMigrated(t *testing.T) {
	path := tempPath(t)
	old := map[string]*storage.Entry{}
	for i := range 6 {
		old[fmt.Sprint("k", i)] = tagged(fmt.Sprint(i), 500, "old", fmt.Sprint("n", i%2))
	}
	writeV1File(t, path, old)
	s := provision(t, SQLite{Path: path})
	var v int
	if err := s.db.w().QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("schema version after opening a version 1 file: %d (%v), want %d", v, err, schemaVersion)
	}
	if !indexExists(t, s.db, "tags_key") || !indexExists(t, s.db, "entries_url") {
		t.Error("the migration dropped an index of version 1")
	}
	checkTotals(t, s.db)
	for k, want := range old {
		got, err := s.Get(bg, k)
		if err != nil {
			t.Fatalf("Get(%s) from the migrated file: %v", k, err)
		}
		if string(got.Body) != string(want.Body) {
			t.Fatalf("Get(%s): another body", k)
		}
	}
	if got := keysForTag(t, s, "old"); len(got) != 6 {
		t.Fatalf("keys tagged old: %q, want 6", got)
	}
	// a row of version 1 replaced, another deleted, a new one stored
	if err := s.Put(bg, "k0", tagged("0", 500, "new")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(bg, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(bg, "k9", tagged("9", 700, "new", "n1")); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s.db)
	if got, want := keysForTag(t, s, "old"), []string{"k2", "k3", "k4", "k5"}; !slices.Equal(got, want) {
		t.Errorf("keys tagged old: %q, want %q", got, want)
	}
	if got, want := keysForTag(t, s, "n1"), []string{"k3", "k5", "k9"}; !slices.Equal(got, want) {
		t.Errorf("keys tagged n1: %q, want %q", got, want)
	}
	// an entry stored after the migration, replaced and deleted there
	if err := s.Put(bg, "k9", tagged("9", 100, "newer")); err != nil {
		t.Fatal(err)
	}
	if got := keysForTag(t, s, "new"); !slices.Equal(got, []string{"k0"}) {
		t.Errorf("keys tagged new after replacing k9: %q, want [k0]", got)
	}
	if err := s.DeleteMany(bg, []string{"k9", "k2"}); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s.db)
	if n := rowCount(t, s.db, "tags WHERE key IN ('k9', 'k2')"); n != 0 {
		t.Errorf("rows of tags of deleted entries: %d", n)
	}
	// and it opens again as version 2, unchanged
	s.Cleanup()
	again := provision(t, SQLite{Path: path})
	checkTotals(t, again.db)
	if got := keysForTag(t, again, "old"); !slices.Equal(got, []string{"k3", "k4", "k5"}) {
		t.Errorf("keys tagged old after reopening: %q", got)
	}
}
