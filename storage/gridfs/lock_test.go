package gridfs

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestLocker(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI}, Bucket: name})
	// a second handle with a client of its own (the locks are decided by the server)
	b := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second)}, Bucket: name})
	if a.shared == b.shared {
		t.Fatal("the two handles share one bucket state; want two")
	}
	testLocker(t, a, b)

	// locks are not entries: List and Stats do not see them
	if _, ok, err := a.Lock(bg, "https://example.com/held", time.Minute); err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	if err := a.Put(bg, "k", storagetest.Entry("k", 10)); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := a.List(bg, "", func(k string, _ *storage.Entry) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(keys) != 1 || keys[0] != "k" {
		t.Errorf("List = %q, want only k", keys)
	}
	if s, err := a.Stats(bg); err != nil || s.Entries != 1 {
		t.Errorf("Stats = %+v, %v; want 1 entry", s, err)
	}

	// the sweeper removes expired locks, not held ones
	if _, ok, err := a.Lock(bg, "https://example.com/expired", time.Millisecond); err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	time.Sleep(10 * time.Millisecond)
	a.shared.sweep(bg)
	n, err := handlesOf(t, a).locks.Coll.CountDocuments(bg, bson.D{})
	if err != nil || n != 1 {
		t.Errorf("after the sweep, %d lock documents (%v), want 1", n, err)
	}
	if held, err := b.Locked(bg, "https://example.com/held"); err != nil || !held {
		t.Errorf("after the sweep, Locked = %v, %v; want true", held, err)
	}
}

// testLocker checks storage.Locker on two handles of one store.
func testLocker(t *testing.T, a, b storage.Locker) {
	t.Helper()
	const name = "https://example.com/cold"

	// concurrent Lock: exactly one wins
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		unlocks []func()
		errs    []error
	)
	for i := 0; i < 8; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, ok, err := l.Lock(bg, name, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				unlocks = append(unlocks, unlock)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(unlocks) != 1 {
		t.Fatalf("8 concurrent Locks: %d ok, errors %v; want exactly 1 ok", len(unlocks), errs)
	}
	for _, l := range []storage.Locker{a, b} {
		if held, err := l.Locked(bg, name); err != nil || !held {
			t.Fatalf("Locked = %v, %v; want true", held, err)
		}
	}
	if held, err := b.Locked(bg, name+"/other"); err != nil || held {
		t.Fatalf("Locked(other) = %v, %v; want false", held, err)
	}

	// unlock: the other takes it
	unlocks[0]()
	if held, err := b.Locked(bg, name); err != nil || held {
		t.Fatalf("after unlock, Locked = %v, %v; want false", held, err)
	}
	unlockB, ok, err := b.Lock(bg, name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock after unlock: ok=%v err=%v", ok, err)
	}
	unlockB()

	// an expired lock can be taken, and the stale holder's unlock does not
	// remove the new holder's lock
	stale, ok, err := a.Lock(bg, name, 500*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := b.Lock(bg, name, time.Minute); ok {
		t.Fatal("Lock succeeded on a held lock")
	}
	time.Sleep(600 * time.Millisecond)
	if held, err := b.Locked(bg, name); err != nil || held {
		t.Fatalf("expired: Locked = %v, %v; want false", held, err)
	}
	fresh, ok, err := b.Lock(bg, name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock on an expired lock: ok=%v err=%v", ok, err)
	}
	stale()
	if held, err := a.Locked(bg, name); err != nil || !held {
		t.Fatalf("after the stale holder's unlock, Locked = %v, %v; want true", held, err)
	}
	if _, ok, _ := a.Lock(bg, name, time.Minute); ok {
		t.Fatal("Lock succeeded after a stale unlock")
	}
	fresh()
	if held, err := a.Locked(bg, name); err != nil || held {
		t.Fatalf("after unlock, Locked = %v, %v; want false", held, err)
	}
}

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two modules with clients of their own (as two Caddy instances
// have), lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI}, Bucket: name})
	// another connect timeout: another client, as another process has
	b := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second)}, Bucket: name})
	if a.shared == b.shared || a.shared.client == b.shared.client {
		t.Fatal("the two modules share one client; want two, as two processes have")
	}
	const writers = 40
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.Update(bg, "idx", func(old *storage.Entry) *storage.Entry {
				e := &storage.Entry{Kind: storage.KindVary, Expires: time.Now().Add(time.Minute)}
				if old != nil {
					e.Variants = slices.Clone(old.Variants)
				}
				e.Variants = append(e.Variants, fmt.Sprint(i))
				return e
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		}()
	}
	wg.Wait()
	e, err := a.Get(bg, "idx")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Variants) != writers {
		t.Fatalf("%d of %d concurrent additions kept: %v", len(e.Variants), writers, e.Variants)
	}

	// the entry fn sees is the stored one; nil from fn stores nothing
	if err := b.Put(bg, "idx", &storage.Entry{Kind: storage.KindVary, Variants: []string{"put"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(bg, "idx", func(old *storage.Entry) *storage.Entry {
		if old == nil || !slices.Equal(old.Variants, []string{"put"}) {
			t.Errorf("old = %+v, want the Put's", old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(bg, "absent", func(old *storage.Entry) *storage.Entry {
		if old != nil {
			t.Errorf("old = %+v, want nil", old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(bg, "absent"); err != storage.ErrNotFound {
		t.Fatalf("Get after a nil update: %v", err)
	}

	// an undecodable entry is nil to fn, and replaced
	if err := a.Put(bg, "bad", storagetest.Entry("bad", 10)); err != nil {
		t.Fatal(err)
	}
	corrupt(t, a, "bad", []byte("garbage"))
	if err := b.Update(bg, "bad", func(old *storage.Entry) *storage.Entry {
		if old != nil {
			t.Errorf("old = %+v, want nil for an undecodable entry", old)
		}
		return &storage.Entry{Kind: storage.KindVary, Variants: []string{"new"}}
	}); err != nil {
		t.Fatal(err)
	}
	if e, err := a.Get(bg, "bad"); err != nil || !slices.Equal(e.Variants, []string{"new"}) {
		t.Fatalf("Get after updating an undecodable entry: %+v, %v", e, err)
	}
}
