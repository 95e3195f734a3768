package storagetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// Locker checks storage.Locker on two handles of one store (as two
// processes have): one of concurrent Locks wins, unlock lets the other take
// it, an expired lock can be taken, and a stale holder's unlock leaves the
// new holder's lock in place.
func Locker(t *testing.T, a, b storage.Locker) {
	t.Helper()
	const name = "https://example.com/cold"

	// concurrent Lock: exactly one wins
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		unlocks []func()
		errs    []error
	)
	for i := range 8 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			unlock, ok, err := l.Lock(context.Background(), name, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				unlocks = append(unlocks, unlock)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || len(unlocks) != 1 {
		t.Fatalf("8 concurrent Locks: %d ok, errors %v; want exactly 1 ok", len(unlocks), errs)
	}
	for _, l := range []storage.Locker{a, b} {
		if held, err := l.Locked(context.Background(), name); err != nil || !held {
			t.Fatalf("Locked = %v, %v; want true", held, err)
		}
	}
	if held, err := b.Locked(context.Background(), name+"/other"); err != nil || held {
		t.Fatalf("Locked(other) = %v, %v; want false", held, err)
	}

	// unlock: the other takes it
	unlocks[0]()
	if held, err := b.Locked(context.Background(), name); err != nil || held {
		t.Fatalf("after unlock, Locked = %v, %v; want false", held, err)
	}
	unlockB, ok, err := b.Lock(context.Background(), name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock after unlock: ok=%v err=%v", ok, err)
	}
	unlockB()

	// an expired lock can be taken, and the stale holder's unlock does not
	// remove the new holder's lock
	stale, ok, err := a.Lock(context.Background(), name, 500*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("Lock: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := b.Lock(context.Background(), name, time.Minute); ok {
		t.Fatal("Lock succeeded on a held lock")
	}
	time.Sleep(600 * time.Millisecond)
	if held, err := b.Locked(context.Background(), name); err != nil || held {
		t.Fatalf("expired: Locked = %v, %v; want false", held, err)
	}
	fresh, ok, err := b.Lock(context.Background(), name, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock on an expired lock: ok=%v err=%v", ok, err)
	}
	stale()
	if held, err := a.Locked(context.Background(), name); err != nil || !held {
		t.Fatalf("after the stale holder's unlock, Locked = %v, %v; want true", held, err)
	}
	if _, ok, _ := a.Lock(context.Background(), name, time.Minute); ok {
		t.Fatal("Lock succeeded after a stale unlock")
	}
	fresh()
	if held, err := a.Locked(context.Background(), name); err != nil || held {
		t.Fatalf("after unlock, Locked = %v, %v; want false", held, err)
	}
}

// UpdatedStore is a store that can update entries atomically.
type UpdatedStore interface {
	storage.Store
	storage.Updater
}

// UpdateAtomic checks storage.Updater on two handles of one store with
// clients of their own (as two processes have): 40 concurrent
// read-modify-writes of one entry lose none of the values they add, fn sees
// a plain Put made in between, and nil from fn stores nothing.
func UpdateAtomic(t *testing.T, a, b UpdatedStore) {
	t.Helper()
	bg := context.Background()
	const writers = 40
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.Update(bg, "idx", func(old *storage.Entry) *storage.Entry {
				e := &storage.Entry{Kind: storage.KindVary, Header: map[string][]string{}, Expires: time.Now().Add(time.Minute)}
				if old != nil {
					e.Variants = slices.Clone(old.Variants)
				}
				e.Variants = append(e.Variants, fmt.Sprint(i))
				return e
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	e, err := a.Get(bg, "idx")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Variants) != writers {
		t.Fatalf("%d of %d concurrent additions kept: %v", len(e.Variants), writers, e.Variants)
	}

	// a plain Put in between is seen; nil from fn stores nothing
	put := &storage.Entry{Kind: storage.KindVary, Header: map[string][]string{}, Variants: []string{"put"}, Expires: time.Now().Add(time.Minute)}
	if err := b.Put(bg, "idx", put); err != nil {
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
			t.Errorf("old = %+v for an absent key, want nil", old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(bg, "absent"); err != storage.ErrNotFound {
		t.Fatalf("Get after a nil update: %v", err)
	}
}
