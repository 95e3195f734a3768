package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// pollUntil calls cond until it returns true, failing the test with what
// after the deadline. It never sleeps longer than a few milliseconds at a
// time, so a fast machine finishes fast and a slow one still passes.
func pollUntil(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", deadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// unwritablePath is a database path that cannot be created, for root too:
// its parent is a regular file.
func unwritablePath(t *testing.T) (path, blocker string) {
	t.Helper()
	blocker = filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(blocker, "cache.db"), blocker
}

// A database that cannot be opened (its directory cannot be created) does
// not fail Provision: the store answers with an error naming the path, so
// the handler goes to the origin, and it opens once the path works.
func TestUnopenableDatabaseDegrades(t *testing.T) {
	path, blocker := unwritablePath(t)
	var s SQLite
	s.Path = path
	ctx, cancel := newContext()
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision with an unwritable path: %v, want it to succeed (the cache must not stop Caddy)", err)
	}
	defer s.Cleanup()
	e := storagetest.Entry("k", 10)
	_, err := s.Get(bg, "k")
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Get while the database cannot be opened: %v, want an error naming %s", err, path)
	}
	if err := s.Put(bg, "k", e); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Put while the database cannot be opened: %v, want an error naming %s", err, path)
	}
	if err := s.Delete(bg, "k"); err == nil {
		t.Fatal("Delete while the database cannot be opened: nil error")
	}
	if err := s.List(bg, "", func(string, *storage.Entry) error { return nil }); err == nil {
		t.Fatal("List while the database cannot be opened: nil error")
	}
	if _, err := s.Stats(bg); err == nil {
		t.Fatal("Stats while the database cannot be opened: nil error")
	}

	// The path becomes usable: the next retry opens the database (the
	// test wakes the retry instead of waiting for its interval).
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "the database was not opened after its path became usable", func() bool {
		s.db.loop.Kick()
		return s.Put(bg, "k", e) == nil
	})
	got, err := s.Get(bg, "k")
	if err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get after the database opened: %v %s", err, storagetest.Diff(e, got, 0))
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database file: %v", err)
	}
}

// A path that is a directory is a configuration error: Provision fails and
// says so.
func TestPathIsDirectoryRejected(t *testing.T) {
	dir := t.TempDir()
	var s SQLite
	s.Path = dir
	ctx, cancel := newContext()
	defer cancel()
	err := s.Provision(ctx)
	defer s.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "path") || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Provision with a directory as path: %v, want an error saying the path is a directory", err)
	}
	if n := refs(t, dir); n != 0 {
		t.Fatalf("pool references after a failed Provision: %d, want 0", n)
	}
}

// countEntries opens the file at path on its own (as another process
// would) and counts the rows under key; -1 when the file is missing or
// holds no entries table.
func countEntries(t *testing.T, path, key string) int {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return -1
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM entries WHERE key = ?`, key).Scan(&n); err != nil {
		return -1
	}
	return n
}

// The database file removed, or replaced by another one, while the store
// has it open: the next maintenance round notices (the file at the path is
// not the one opened), logs it once and opens the file at the path, so new
// entries are not written to an unlinked file and lost at restart.
func TestDatabaseFileRemovedOrReplaced(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, path string)
	}{
		{"removed", func(t *testing.T, path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			// another database, written elsewhere and moved over the path
			other := filepath.Join(t.TempDir(), "other.db")
			odb, err := openDB(other, connOptions{busyTimeout: time.Second, wal: false, synchronous: "NORMAL"}, 0, time.Hour, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			if err := odb.Put(bg, "from-other", storagetest.Entry("o", 10), storage.CompressionOff); err != nil {
				t.Fatal(err)
			}
			if err := odb.Destruct(); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t)
			core, logs := observer.New(zapcore.InfoLevel)
			opts := connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"}
			db, err := openDB(path, opts, 0, 20*time.Millisecond, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := db.Destruct(); err != nil {
					t.Errorf("Destruct: %v", err)
				}
			}()
			if err := db.Put(bg, "before", storagetest.Entry("b", 10), storage.CompressionOff); err != nil {
				t.Fatal(err)
			}
			if n := countEntries(t, path, "before"); n != 1 {
				t.Fatalf("the file holds %d rows under the first key, want 1", n)
			}
			tc.replace(t, path)
			i := 0
			pollUntil(t, 10*time.Second, "entries written after the file was "+tc.name+" never reached the file at the path", func() bool {
				i++
				key := fmt.Sprintf("after/%d", i)
				if err := db.Put(bg, key, storagetest.Entry(key, 10), storage.CompressionOff); err != nil {
					return false // the moment of the reopen
				}
				if tc.name == "replaced" {
					// (a reader of the new file may also see the old
					// file's WAL until the store lets go of it)
					if _, err := db.Get(bg, "from-other"); err != nil {
						return false
					}
				}
				return countEntries(t, path, key) == 1
			})
			// More maintenance rounds log nothing more.
			for range 3 {
				<-db.loop.Rounds()
			}
			var warns []string
			for _, l := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
				warns = append(warns, l.Message)
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tc.name) {
				t.Fatalf("Warn lines: %q, want one saying the file was %s", warns, tc.name)
			}
		})
	}
}

// An entry read after every insert stays, even when all the reads fall in
// one minute (the interval at which access times used to be written): the
// recency of reads is kept in memory until it is written, and eviction
// uses it.
func TestHotEntrySurvivesEvictionWithinAMinute(t *testing.T) {
	const max = 200 << 10
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](max), Compression: "off"})
	hot := randomEntry("hot", 8<<10)
	if err := s.Put(bg, "hot", hot); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := s.Put(bg, fmt.Sprintf("cold/%03d", i), randomEntry(fmt.Sprint(i), 8<<10)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(bg, "hot"); err != nil {
			t.Fatalf("Get of the entry read after every insert, after insert %d: %v", i, err)
		}
	}
	if st, err := s.Stats(bg); err != nil || st.Evictions == 0 {
		t.Fatalf("stats %+v (%v): want evictions (the test must fill the store)", st, err)
	}
}
