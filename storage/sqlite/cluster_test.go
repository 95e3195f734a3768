package sqlite

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// twoProcesses opens two independent database stacks on one file, as two
// Caddy processes would have them: newDB directly, not through the pool
// (which would hand both the same connections).
func twoProcesses(t *testing.T) [2]*SQLite {
	t.Helper()
	path := tempPath(t)
	opts := connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"}
	var s [2]*SQLite
	for i := range s {
		db, err := openDB(path, opts, 0, time.Minute, zap.NewNop())
		if err != nil {
			t.Fatalf("opening stack %d on one file: %v", i, err)
		}
		t.Cleanup(func() {
			if err := db.Destruct(); err != nil {
				t.Errorf("Destruct: %v", err)
			}
		})
		s[i] = &SQLite{db: db, compression: storage.CompressionZstd}
	}
	if s[0].db.c.Load().w == s[1].db.c.Load().w {
		t.Fatal("the two stacks share their writer connection")
	}
	return s
}

// Concurrent Lock calls on one name from two processes: exactly one wins;
// once it unlocks, another takes it; an expired lock is taken; an unlock
// with a stale token leaves the newer holder's lock in place.
func TestLockAcrossProcesses(t *testing.T) {
	p := twoProcesses(t)
	const name = "flight:GET http://example.test/cold"
	const tries = 16
	type result struct {
		from   int
		unlock func()
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []result
	)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, ok, err := p[i%2].Lock(bg, name, time.Minute)
			if err != nil {
				t.Errorf("Lock from process %d: %v", i%2, err)
				return
			}
			if ok {
				mu.Lock()
				wins = append(wins, result{i % 2, unlock})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d concurrent Lock calls from two processes: %d took the lock, want exactly 1", tries, len(wins))
	}
	holder, other := p[wins[0].from], p[1-wins[0].from]
	for i, s := range p {
		if held, err := s.Locked(bg, name); err != nil || !held {
			t.Fatalf("Locked from process %d while held: %v %v", i, held, err)
		}
	}
	if _, ok, err := other.Lock(bg, name, time.Minute); err != nil || ok {
		t.Fatalf("Lock from the other process while held: ok=%v err=%v", ok, err)
	}

	wins[0].unlock()
	if held, err := other.Locked(bg, name); err != nil || held {
		t.Fatalf("Locked after unlock: %v %v", held, err)
	}
	unlock, ok, err := other.Lock(bg, name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock from the other process after unlock: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := holder.Lock(bg, name, time.Minute); ok {
		t.Fatal("the first holder took the lock the other process now holds")
	}

	// The holder dies: its lock expires (the clock of the first process is
	// moved past the ttl) and is taken; the dead holder's late unlock,
	// with its stale token, must not remove the new holder's lock.
	holder.db.skew.Store(int64(2 * time.Minute))
	if held, err := holder.Locked(bg, name); err != nil || held {
		t.Fatalf("Locked after the ttl: %v %v, want not held", held, err)
	}
	unlock2, ok, err := holder.Lock(bg, name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock of an expired lock: ok=%v err=%v", ok, err)
	}
	unlock() // stale: the other process's lock expired and was taken
	if held, err := holder.Locked(bg, name); err != nil || !held {
		t.Fatalf("after an unlock with a stale token, Locked: %v %v, want the new holder's lock kept", held, err)
	}
	unlock2()
	if held, err := holder.Locked(bg, name); err != nil || held {
		t.Fatalf("Locked after the new holder's unlock: %v %v", held, err)
	}
	if n := rowCount(t, holder.db, "locks"); n != 0 {
		t.Fatalf("%d lock rows left after every holder unlocked", n)
	}
}

// Long names are hashed: rows stay short, and two long names differing in
// their last byte are two locks.
func TestLockNamesHashed(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	long := strings.Repeat("x", storage.MaxKeyLen)
	u1, ok1, err1 := s.Lock(bg, long+"a", time.Minute)
	_, ok2, err2 := s.Lock(bg, long+"b", time.Minute)
	if err1 != nil || err2 != nil || !ok1 || !ok2 {
		t.Fatalf("two long names: %v %v %v %v, want two locks", ok1, err1, ok2, err2)
	}
	var longest int
	if err := s.db.w().QueryRow(`SELECT MAX(LENGTH(name)) FROM locks`).Scan(&longest); err != nil {
		t.Fatal(err)
	}
	if longest != 64 {
		t.Fatalf("lock row names up to %d characters, want 64 (SHA-256 hex)", longest)
	}
	u1()
}

// The sweep removes the rows of locks whose holders never unlocked.
func TestSweepRemovesExpiredLocks(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	if _, ok, err := s.Lock(bg, "dead", time.Second); err != nil || !ok {
		t.Fatalf("Lock: %v %v", ok, err)
	}
	s.db.skew.Store(int64(time.Minute))
	if _, err := s.DeleteExpired(bg); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, s.db, "locks"); n != 0 {
		t.Fatalf("%d expired lock rows after a sweep", n)
	}
}

// 40 concurrent Updates from two processes, each appending one variant to
// one Vary index: all 40 are kept. fn pauses so that a read-then-write that
// is not one transaction loses variants every time.
func TestUpdateAtomicAcrossProcesses(t *testing.T) {
	p := twoProcesses(t)
	const key, n = "vary-index", 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("variant-%d", i)
			err := p[i%2].Update(bg, key, func(old *storage.Entry) *storage.Entry {
				idx := &storage.Entry{
					Kind: storage.KindVary, URL: "http://example.test/v",
					Vary: []string{"X-Variant"}, Expires: time.Now().Add(time.Hour),
				}
				if old != nil {
					idx.Variants = slices.Clone(old.Variants)
				}
				time.Sleep(2 * time.Millisecond)
				idx.Variants = append(idx.Variants, v)
				return idx
			})
			if err != nil {
				t.Errorf("Update from process %d: %v", i%2, err)
			}
		}()
	}
	wg.Wait()
	for i, s := range p {
		e, err := s.Get(bg, key)
		if err != nil {
			t.Fatalf("Get from process %d: %v", i, err)
		}
		if len(e.Variants) != n {
			t.Fatalf("process %d sees %d of %d variants added concurrently: %v", i, len(e.Variants), n, e.Variants)
		}
		for j := range n {
			if !slices.Contains(e.Variants, fmt.Sprintf("variant-%d", j)) {
				t.Fatalf("variant-%d lost", j)
			}
		}
	}
	// the size accounting of Put: the row's size is its key plus encoding
	var size, data int64
	if err := p[0].db.w().QueryRow(`SELECT size, LENGTH(data) FROM entries WHERE key = ?`, key).Scan(&size, &data); err != nil {
		t.Fatal(err)
	}
	if size != data+int64(len(key)) {
		t.Fatalf("size column %d, want %d", size, data+int64(len(key)))
	}
}

// fn sees nil for an absent, expired or corrupt entry; a nil result stores
// nothing; an entry past max_size is not stored (ErrTooLarge) and removes
// the old one, as Put does.
func TestUpdateEdges(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](64 << 10)})
	seen := func(key string) *storage.Entry {
		t.Helper()
		var got *storage.Entry
		if err := s.Update(bg, key, func(old *storage.Entry) *storage.Entry { got = old; return nil }); err != nil {
			t.Fatalf("Update %q: %v", key, err)
		}
		return got
	}
	if old := seen("absent"); old != nil {
		t.Fatalf("fn got %v for an absent key", old)
	}
	if _, err := s.Get(bg, "absent"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a nil result stored something: %v", err)
	}

	e := storagetest.Entry("k", 100)
	if err := s.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	if old := seen("k"); old == nil || storagetest.Diff(e, old, 0) != "" {
		t.Fatalf("fn got %v, want the stored entry: %s", old, storagetest.Diff(e, old, 0))
	}
	corrupt(t, s, "k", []byte("not an entry"))
	if old := seen("k"); old != nil {
		t.Fatal("fn got an entry for a corrupt row")
	}
	if err := s.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	s.db.skew.Store(int64(3 * time.Hour))
	if old := seen("k"); old != nil {
		t.Fatal("fn got an expired entry")
	}
	s.db.skew.Store(0)

	big := storagetest.Entry("big", 256<<10)
	_, _ = rand.Read(big.Body) // not compressible below max_size
	err := s.Update(bg, "k", func(*storage.Entry) *storage.Entry { return big })
	if !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Update with an entry past max_size: %v, want ErrTooLarge", err)
	}
	if _, err := s.Get(bg, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the old entry after a too-large Update: %v, want it removed", err)
	}
}

// While the database cannot be opened, Lock, Locked and Update fail like
// Get and Put, with the error naming the path (so the handler coalesces
// within the process and goes to the origin).
func TestClusterCallsWhileUnopenable(t *testing.T) {
	path, _ := unwritablePath(t)
	var s SQLite
	s.Path = path
	ctx, cancel := newContext()
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	_, getErr := s.Get(bg, "k")
	var want *unavailableError
	if !errors.As(getErr, &want) {
		t.Fatalf("Get: %v, want the store's unavailable error", getErr)
	}
	if _, ok, err := s.Lock(bg, "k", time.Second); ok || !errors.As(err, &want) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Lock while unopenable: ok=%v err=%v", ok, err)
	}
	if held, err := s.Locked(bg, "k"); held || !errors.As(err, &want) {
		t.Fatalf("Locked while unopenable: %v %v", held, err)
	}
	called := false
	err := s.Update(bg, "k", func(*storage.Entry) *storage.Entry { called = true; return nil })
	if !errors.As(err, &want) || called {
		t.Fatalf("Update while unopenable: %v (fn called: %v)", err, called)
	}
}

// A file written before the locks table existed gets it when opened, and
// keeps its entries.
func TestLocksTableAddedToExistingFile(t *testing.T) {
	path := tempPath(t)
	s := provision(t, SQLite{Path: path})
	e := storagetest.Entry("k", 10)
	if err := s.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.w().Exec(`DROP TABLE locks`); err != nil {
		t.Fatal(err)
	}
	s.Cleanup()
	again := provision(t, SQLite{Path: path})
	if got, err := again.Get(bg, "k"); err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get after reopening: %v", err)
	}
	unlock, ok, err := again.Lock(bg, "n", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock on a file that had no locks table: %v %v", ok, err)
	}
	unlock()
}
