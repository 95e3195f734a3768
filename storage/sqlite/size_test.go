package sqlite

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func storedBytes(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.w().QueryRow(`SELECT COALESCE(SUM(size), 0) FROM entries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func randomEntry(id string, n int) *storage.Entry {
	e := storagetest.Entry(id, 0)
	e.Body = storagetest.RandomBody(n, byte(len(id)))
	return e
}

// Filling to three times max_size keeps the stored bytes under it after every
// Put, evicting the oldest entries.
func TestMaxSizeRespected(t *testing.T) {
	const max = 256 << 10
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](max)})
	var written int64
	for i := 0; written < 3*max; i++ {
		e := randomEntry(fmt.Sprint(i), 8<<10)
		if err := s.Put(bg, fmt.Sprintf("fill/%03d", i), e); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		written += int64(len(e.Body))
		if got := storedBytes(t, s.db); got > max {
			t.Fatalf("after Put %d (%d bytes written): %d bytes stored, max_size %d", i, written, got, max)
		}
	}
	st, err := s.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Evictions == 0 || st.Bytes > max || st.Bytes < max/2 {
		t.Fatalf("after writing 3x max_size: %+v, want evictions and between max/2 and max bytes", st)
	}
	if _, err := s.Get(bg, "fill/000"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the first entry written: %v, want it evicted", err)
	}
	if rows := rowCount(t, s.db, "tags"); rows != 3*int(st.Entries) {
		t.Fatalf("tags rows after evictions: %d, want 3 per remaining entry (%d entries)", rows, st.Entries)
	}
}

// Eviction removes the least recently used entries, not just the oldest.
func TestEvictionIsLRU(t *testing.T) {
	const max = 256 << 10
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](max)})
	hot := randomEntry("hot", 8<<10)
	if err := s.Put(bg, "hot", hot); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s.Put(bg, fmt.Sprintf("cold/%03d", i), randomEntry(fmt.Sprint(i), 8<<10)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(bg, "hot"); err != nil {
			t.Fatalf("Get of the entry read after every Put, after Put %d: %v", i, err)
		}
	}
	if _, err := s.Get(bg, "cold/000"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the oldest unread entry: %v, want it evicted", err)
	}
}

// An entry larger than max_size is refused and does not leave the previous
// value behind.
func TestEntryLargerThanMaxSize(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](64 << 10)})
	if err := s.Put(bg, "k", randomEntry("small", 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(bg, "k", randomEntry("big", 100<<10)); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put of an entry larger than max_size: %v, want ErrTooLarge", err)
	}
	if _, err := s.Get(bg, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after a too-large Put replaced an entry: %v, want ErrNotFound", err)
	}
	// Unlimited takes it.
	u := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](0)})
	if err := u.Put(bg, "k", randomEntry("big", 2<<20)); err != nil {
		t.Fatalf("Put of 2 MiB with max_size 0 (unlimited): %v", err)
	}
}

// A sweep deletes expired rows (and their tags); before it, Get already
// hides them.
func TestSweepRemovesExpiredRows(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	for i := range 10 {
		e := storagetest.Entry(fmt.Sprint(i), 100)
		e.Expires = time.Now().Add(time.Hour)
		if err := s.Put(bg, fmt.Sprintf("exp/%d", i), e); err != nil {
			t.Fatal(err)
		}
	}
	forever := storagetest.Entry("forever", 10)
	forever.Expires = time.Time{}
	if err := s.Put(bg, "forever", forever); err != nil {
		t.Fatal(err)
	}
	live := storagetest.Entry("live", 10)
	live.Expires = time.Now().Add(10 * time.Hour)
	if err := s.Put(bg, "live", live); err != nil {
		t.Fatal(err)
	}
	s.db.skew.Store(int64(2 * time.Hour))
	if _, err := s.Get(bg, "exp/0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after expiry, before a sweep: %v, want ErrNotFound", err)
	}
	if n := rowCount(t, s.db, "entries"); n != 12 {
		t.Fatalf("rows before the sweep: %d, want 12", n)
	}
	if err := s.db.sweep(bg); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n := rowCount(t, s.db, "entries"); n != 2 {
		t.Fatalf("rows after the sweep: %d, want 2 (the unexpired and the never-expiring)", n)
	}
	if n := rowCount(t, s.db, "tags"); n != 6 {
		t.Fatalf("tag rows after the sweep: %d, want 6 (3 per remaining entry)", n)
	}
	for _, k := range []string{"forever", "live"} {
		if _, err := s.Get(bg, k); err != nil {
			t.Fatalf("Get(%q) after the sweep: %v", k, err)
		}
	}
}

// The maintenance goroutine sweeps on its own at sweep_interval.
func TestSweeperRuns(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), SweepInterval: caddyDuration(20 * time.Millisecond)})
	for i := range 5 {
		if err := s.Put(bg, fmt.Sprintf("exp/%d", i), storagetest.Entry(fmt.Sprint(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	s.db.skew.Store(int64(24 * time.Hour))
	// The second sweep signalled after this point started after the clock
	// moved.
	<-s.db.loop.Rounds()
	<-s.db.loop.Rounds()
	if n := rowCount(t, s.db, "entries"); n != 0 {
		t.Fatalf("rows after the sweeper ran past their expiry: %d, want 0", n)
	}
}

// Shrinking max_size through a new config, then a sweep, evicts down to it.
func TestShrinkMaxSize(t *testing.T) {
	path := tempPath(t)
	s := provision(t, SQLite{Path: path, MaxSize: ptr[int64](4 << 20)})
	for i := range 64 {
		if err := s.Put(bg, fmt.Sprint(i), randomEntry(fmt.Sprint(i), 16<<10)); err != nil {
			t.Fatal(err)
		}
	}
	provision(t, SQLite{Path: path, MaxSize: ptr[int64](256 << 10)})
	if err := s.db.sweep(bg); err != nil {
		t.Fatal(err)
	}
	if got := storedBytes(t, s.db); got > 256<<10 {
		t.Fatalf("after shrinking max_size to 256 KiB and a sweep: %d bytes stored", got)
	}
}

// After many deletions, a sweep gives free pages back to the file system.
func TestSweepReturnsFreePages(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](0)})
	for i := range 40 {
		if err := s.Put(bg, fmt.Sprint(i), randomEntry(fmt.Sprint(i), 256<<10)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		if err := s.Delete(bg, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	free := func() int64 {
		var n, size int64
		s.db.w().QueryRow(`PRAGMA freelist_count`).Scan(&n)
		s.db.w().QueryRow(`PRAGMA page_size`).Scan(&size)
		return n * size
	}
	before := free()
	if before < 8<<20 {
		t.Fatalf("free bytes after deleting 10 MiB: %d, want at least 8 MiB", before)
	}
	if err := s.db.sweep(bg); err != nil {
		t.Fatal(err)
	}
	if after := free(); after > 4<<20 {
		t.Fatalf("free bytes after a sweep: %d (before %d), want at most 4 MiB kept", after, before)
	}
}

// DeleteExpired removes exactly the expired rows and says how many; tags of
// expired entries are no longer returned.
func TestDeleteExpiredAndTags(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	for i := range 7 {
		e := storagetest.Entry(fmt.Sprint(i), 10)
		e.Expires = time.Now().Add(time.Hour)
		e.Tags = []string{"t"}
		if err := s.Put(bg, fmt.Sprintf("exp/%d", i), e); err != nil {
			t.Fatal(err)
		}
	}
	live := storagetest.Entry("live", 10)
	live.Expires = time.Now().Add(5 * time.Hour)
	live.Tags = []string{"t"}
	if err := s.Put(bg, "live", live); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.KeysForTag(bg, "t"); err != nil || len(keys) != 8 {
		t.Fatalf("KeysForTag before expiry: %q, %v; want 8 keys", keys, err)
	}
	s.db.skew.Store(int64(2 * time.Hour))
	if keys, err := s.KeysForTag(bg, "t"); err != nil || len(keys) != 1 || keys[0] != "live" {
		t.Fatalf("KeysForTag after 7 of 8 expired: %q, %v; want [live]", keys, err)
	}
	n, err := s.DeleteExpired(bg)
	if err != nil || n != 7 {
		t.Fatalf("DeleteExpired: %d, %v; want 7", n, err)
	}
	if rows := rowCount(t, s.db, "entries"); rows != 1 {
		t.Fatalf("rows after DeleteExpired: %d, want 1", rows)
	}
	if rows := rowCount(t, s.db, "tags"); rows != 1 {
		t.Fatalf("tag rows after DeleteExpired: %d, want 1", rows)
	}
}
