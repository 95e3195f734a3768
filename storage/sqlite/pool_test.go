package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Two configs naming one file share one open database; releasing one keeps
// the other working; releasing both closes it.
func TestTwoHandlesShareOneDatabase(t *testing.T) {
	path := tempPath(t)
	a := provision(t, SQLite{Path: path})
	b := provision(t, SQLite{Path: path})
	if a.db != b.db {
		t.Fatal("two handles on one path got different databases, want one shared")
	}
	if n := refs(t, path); n != 2 {
		t.Fatalf("pool references after two Provisions: %d, want 2", n)
	}
	e := storagetest.Entry("shared", 100)
	if err := a.Put(bg, "k", e); err != nil {
		t.Fatalf("Put through handle a: %v", err)
	}
	if got, err := b.Get(bg, "k"); err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get through handle b of what a stored: %v", err)
	}

	if err := a.Cleanup(); err != nil {
		t.Fatalf("Cleanup of a: %v", err)
	}
	if n := refs(t, path); n != 1 {
		t.Fatalf("pool references after one Cleanup: %d, want 1", n)
	}
	if err := a.Cleanup(); err != nil { // idempotent: releases nothing twice
		t.Fatalf("second Cleanup of a: %v", err)
	}
	if n := refs(t, path); n != 1 {
		t.Fatalf("pool references after a second Cleanup of the same handle: %d, want 1", n)
	}
	if got, err := b.Get(bg, "k"); err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get through b after a's Cleanup: %v", err)
	}
	e2 := storagetest.Entry("after", 10)
	if err := b.Put(bg, "k2", e2); err != nil {
		t.Fatalf("Put through b after a's Cleanup: %v", err)
	}

	db, open := b.db, b.db.c.Load()
	if err := b.Cleanup(); err != nil {
		t.Fatalf("Cleanup of b: %v", err)
	}
	if n := refs(t, path); n != 0 {
		t.Fatalf("pool references after both Cleanups: %d, want 0", n)
	}
	if err := open.w.Ping(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("writer after the last Cleanup: Ping returned %v, want database closed", err)
	}
	if err := open.r.Ping(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("readers after the last Cleanup: Ping returned %v, want database closed", err)
	}
	if _, err := db.Get(bg, "k"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Get after the last Cleanup: %v, want an error saying the store is closed", err)
	}

	// The data is on disk: a new handle (a restart) finds it.
	c := provision(t, SQLite{Path: path})
	if c.db == db {
		t.Fatal("a handle provisioned after the database was closed got the closed one")
	}
	if got, err := c.Get(bg, "k2"); err != nil || storagetest.Diff(e2, got, 0) != "" {
		t.Fatalf("Get after reopening the file: %v", err)
	}
}

// Equivalent spellings of one path share a pool entry.
func TestPoolKeyIsTheCleanAbsolutePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	a := provision(t, SQLite{Path: "cache.db"})
	b := provision(t, SQLite{Path: filepath.Join(dir, "sub", "..", "cache.db")})
	if a.db != b.db {
		t.Fatal("a relative and an unclean absolute spelling of one path got different databases")
	}
	if n := refs(t, filepath.Join(dir, "cache.db")); n != 2 {
		t.Fatalf("pool references under the clean absolute path: %d, want 2", n)
	}
}

// A later Provision applies max_size and sweep_interval to the shared
// database.
func TestTunablesAppliedToSharedDatabase(t *testing.T) {
	path := tempPath(t)
	a := provision(t, SQLite{Path: path})
	if got := a.db.maxSize.Load(); got != DefaultMaxSize {
		t.Fatalf("default max_size: %d, want %d", got, DefaultMaxSize)
	}
	if got := a.db.loop.Interval(); got != DefaultSweepInterval {
		t.Fatalf("default sweep_interval: %v, want %v", got, DefaultSweepInterval)
	}
	provision(t, SQLite{Path: path, MaxSize: ptr[int64](1 << 20), SweepInterval: caddyDuration(time.Hour)})
	if got := a.db.maxSize.Load(); got != 1<<20 {
		t.Fatalf("max_size after a second config set 1 MiB: %d", got)
	}
	if got := a.db.loop.Interval(); got != time.Hour {
		t.Fatalf("sweep_interval after a second config set 1h: %v", got)
	}
	provision(t, SQLite{Path: path, MaxSize: ptr[int64](0)})
	if got := a.db.maxSize.Load(); got != 0 {
		t.Fatalf("max_size after a third config set 0 (unlimited): %d", got)
	}
}

func TestConnectionSettings(t *testing.T) {
	def := provision(t, SQLite{Path: tempPath(t)})
	for name, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "1", "busy_timeout": "5000", "auto_vacuum": "2", "page_size": "4096",
		"wal_autocheckpoint": fmt.Sprint(walBackstop), "journal_size_limit": fmt.Sprint(walSizeLimit),
	} {
		if got := pragma(t, def.db, name); got != want {
			t.Errorf("default %s = %s, want %s", name, got, want)
		}
	}
	var queryOnly int
	if err := def.db.r().QueryRow(`PRAGMA query_only`).Scan(&queryOnly); err != nil || queryOnly != 1 {
		t.Errorf("reader connections: query_only = %d (%v), want 1", queryOnly, err)
	}
	custom := provision(t, SQLite{Path: tempPath(t), WAL: ptr(false), Synchronous: "full", BusyTimeout: caddyDuration(1500 * time.Millisecond)})
	for name, want := range map[string]string{"journal_mode": "delete", "synchronous": "2", "busy_timeout": "1500"} {
		if got := pragma(t, custom.db, name); got != want {
			t.Errorf("configured %s = %s, want %s", name, got, want)
		}
	}
}

// A new file has no index on url (no query reads it); a file created with
// one keeps it, and stores, replaces and deletes entries with it kept
// consistent.
func TestURLIndexOnlyInOlderFiles(t *testing.T) {
	index := func(t *testing.T, db *DB) bool {
		t.Helper()
		var n int
		if err := db.w().QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'entries_url'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	path := tempPath(t)
	s := provision(t, SQLite{Path: path})
	if index(t, s.db) {
		t.Fatal("a new file has the index entries_url")
	}
	if _, err := s.db.w().Exec(`CREATE INDEX entries_url ON entries (url)`); err != nil {
		t.Fatal(err)
	}
	s.Cleanup()
	old := provision(t, SQLite{Path: path})
	if !index(t, old.db) {
		t.Fatal("reopening dropped the index entries_url of an older file")
	}
	for i := range 3 {
		if err := old.Put(bg, "k", storagetest.Entry(fmt.Sprint("v", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Put(bg, "gone", storagetest.Entry("gone", 100)); err != nil {
		t.Fatal(err)
	}
	if err := old.Delete(bg, "gone"); err != nil {
		t.Fatal(err)
	}
	var check string
	if err := old.db.w().QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q (%v)", check, err)
	}
	var n int
	if err := old.db.w().QueryRow(`SELECT COUNT(*) FROM entries INDEXED BY entries_url WHERE url = ?`,
		storagetest.Entry("v2", 0).URL).Scan(&n); err != nil || n != 1 {
		t.Fatalf("entries found through the url index: %d (%v), want 1", n, err)
	}
}

func TestDefaultPathInDataDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_DATA_HOME", home)
	t.Setenv("HOME", home)
	s := provision(t, SQLite{})
	want := filepath.Join(home, "caddy", "cache", "cache.db")
	if s.db.path != want {
		t.Fatalf("default path %q, want %q", s.db.path, want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("database file at the default path: %v", err)
	}
}

// A file that is not a database is moved aside and replaced.
func TestDamagedFileMovedAside(t *testing.T) {
	path := tempPath(t)
	junk := []byte(strings.Repeat("this is not a database file. ", 200))
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	s := provision(t, SQLite{Path: path})
	e := storagetest.Entry("fresh", 10)
	if err := s.Put(bg, "k", e); err != nil {
		t.Fatalf("Put into the replacement database: %v", err)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("files moved aside: %q, want one %s.corrupt-*", aside, path)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != string(junk) {
		t.Fatalf("the moved file does not hold the original bytes (err %v)", err)
	}
}

// A database from a newer schema is left alone: Provision succeeds (the
// cache must not stop Caddy, e.g. after a downgrade), and every call says
// why the store is not usable.
func TestNewerSchemaLeftAlone(t *testing.T) {
	path := tempPath(t)
	s := provision(t, SQLite{Path: path})
	if _, err := s.db.w().Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Cleanup()
	again := provision(t, SQLite{Path: path})
	_, err := again.Get(bg, "k")
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Get from a database of schema version 99: %v, want an error naming the version and the path", err)
	}
	if err := again.Put(bg, "k", storagetest.Entry("k", 10)); err == nil {
		t.Fatal("Put into a database of schema version 99 succeeded")
	}
	again.Cleanup()
	check := provision(t, SQLite{Path: path})
	if _, err := check.Get(bg, "k"); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("the file was altered: Get after reopening it: %v", err)
	}
}

// Provision fails with an error naming the option for invalid values, before
// touching the file system.
func TestProvisionRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "cache.db")
	for _, tc := range []struct {
		cfg  SQLite
		want string
	}{
		{SQLite{Path: path, Synchronous: "sometimes"}, `synchronous "sometimes"`},
		{SQLite{Path: path, Compression: "gzip"}, `compression: unknown compression "gzip"`},
		{SQLite{Path: path, MaxSize: ptr[int64](-1)}, "max_size -1"},
		{SQLite{Path: path, BusyTimeout: caddyDuration(-time.Second)}, "busy_timeout -1s"},
		{SQLite{Path: path, SweepInterval: caddyDuration(-time.Second)}, "sweep_interval -1s"},
	} {
		s := tc.cfg
		ctx, cancel := newContext()
		err := s.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Provision(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
		if err := s.Cleanup(); err != nil {
			t.Errorf("Cleanup after a failed Provision: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a rejected config created its directory (stat: %v)", err)
	}
}

// Corrupt rows are a miss for Get and invisible to List.
func TestCorruptRowSkippedByList(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put(bg, k, storagetest.Entry(k, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.w().Exec(`UPDATE entries SET data = x'00' WHERE key = 'b'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(bg, "b"); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Get of the corrupt row: %v, want ErrCorrupt", err)
	}
	var keys []string
	if err := s.List(bg, "", func(k string, _ *storage.Entry) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatalf("List over a corrupt row: %v", err)
	}
	if strings.Join(keys, ",") != "a,c" {
		t.Fatalf("List over a corrupt row: keys %q, want a and c", keys)
	}
}

// Listing pages through more rows than fit one page, in key order.
func TestListPages(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	const n = 200
	for i := range n {
		if err := s.Put(bg, keyN(i), storagetest.Entry(keyN(i), 5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(bg, "other", storagetest.Entry("other", 5)); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(bg, "page/", func(k string, _ *storage.Entry) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("List over %d rows: got %d", n, len(got))
	}
	for i, k := range got {
		if k != keyN(i) {
			t.Fatalf("List result %d: %q, want %q", i, k, keyN(i))
		}
	}
}

func keyN(i int) string { return fmt.Sprintf("page/%04d", i) }

// ListFrom walks in key order from the first key after its start, within
// the prefix, and stops at ErrStop.
func TestListFrom(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	for i := range 150 {
		if err := s.Put(bg, keyN(i), storagetest.Entry(keyN(i), 5)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"other", "page", "pagf/x"} {
		if err := s.Put(bg, k, storagetest.Entry(k, 5)); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(prefix, after string, stopAt int) []string {
		var got []string
		err := s.ListFrom(bg, prefix, after, func(k string, _ *storage.Entry) error {
			if len(got) == stopAt {
				return storage.ErrStop
			}
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := walk("page/", keyN(99), 1000); len(got) != 50 || got[0] != keyN(100) || got[49] != keyN(149) {
		t.Fatalf("after %s: %d keys, %q … %q", keyN(99), len(got), got[0], got[len(got)-1])
	}
	if got := walk("page/", "", 3); len(got) != 3 || got[0] != keyN(0) {
		t.Fatalf("from the start, stopped at 3: %q", got)
	}
	if got := walk("page/", "a", 1000); len(got) != 150 {
		t.Fatalf("a start before the prefix: %d keys, want 150", len(got))
	}
	if got := walk("page/", "pagf", 1000); len(got) != 0 {
		t.Fatalf("a start past the prefix: %q", got)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a": "b", "ab": "ac", "a\xff": "b", "\xff\xff": "", "": "", "é": "\xc3\xaa"} {
		got, ok := prefixEnd(in)
		if got != want || ok != (want != "") {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
