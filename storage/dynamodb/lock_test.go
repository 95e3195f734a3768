package dynamodb

import (
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestLocker(t *testing.T) {
	srv := testservers.DynamoDBLocal(t)
	cfg := local(t, srv.URI)
	a := provision(t, cfg)
	cfg2 := *cfg
	cfg2.logger = nil
	b := provision(t, &cfg2)
	testLocker(t, a, b)

	// lock items are not entries: List, Stats and DeleteExpired skip them
	if _, ok, err := a.Lock(bg, "https://example.com/held", time.Minute); err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	if _, ok, err := a.Lock(bg, "https://example.com/expired", time.Millisecond); err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	if err := a.Put(bg, "k", storagetest.Entry("k", 10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
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
	if _, err := a.DeleteExpired(bg); err != nil {
		t.Errorf("DeleteExpired: %v", err)
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
