package tiered

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
	"github.com/caddycache/caddy-cache/storage/sqlite"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var bg = context.Background()

// openSQLite provisions a SQLite store in the test's directory.
func openSQLite(t *testing.T) *sqlite.SQLite {
	t.Helper()
	s := &sqlite.SQLite{Path: filepath.Join(t.TempDir(), "cache.db")}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("provisioning sqlite: %v", err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

func openMemory(t *testing.T) *memory.Cache {
	c := memory.New(64 << 20)
	t.Cleanup(func() { c.Destruct() })
	return c
}

type pair struct {
	tier storage.Store
	hot  *memory.Cache
	cold *sqlite.SQLite
}

func open(t *testing.T) pair {
	hot, cold := openMemory(t), openSQLite(t)
	return pair{New(hot, cold), hot, cold}
}

func TestConformance(t *testing.T) {
	stores := map[storage.Store]pair{}
	storagetest.Run(t, func(t *testing.T) storage.Store {
		p := open(t)
		stores[p.tier] = p
		return p.tier
	}, storagetest.Options{Corrupt: func(t *testing.T, s storage.Store, key string, raw []byte) {
		// Damage the cold copy and drop the hot one, as after a restart.
		p := stores[s]
		if err := p.hot.Delete(bg, key); err != nil {
			t.Fatal(err)
		}
		if err := p.cold.Put(bg, key, storagetest.Entry("placeholder", 1)); err != nil {
			t.Fatal(err)
		}
		corruptSQLite(t, p.cold, key, raw)
	}})
}

// wantHit and wantMiss check one tier directly.
func wantHit(t *testing.T, s storage.Store, tier, key string, want *storage.Entry) {
	t.Helper()
	got, err := s.Get(bg, key)
	if err != nil {
		t.Fatalf("%s tier Get(%q): %v, want the entry", tier, key, err)
	}
	if d := storagetest.Diff(want, got, 0); d != "" {
		t.Fatalf("%s tier Get(%q): %s", tier, key, d)
	}
}

func wantMiss(t *testing.T, s storage.Store, tier, key string) {
	t.Helper()
	if got, err := s.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s tier Get(%q): entry %v, error %v; want ErrNotFound", tier, key, got != nil, err)
	}
}

func TestPutWritesBothTiers(t *testing.T) {
	p := open(t)
	e := storagetest.Entry("e", 100)
	if err := p.tier.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	wantHit(t, p.hot, "hot", "k", e)
	wantHit(t, p.cold, "cold", "k", e)
}

func TestDeleteRemovesBothTiers(t *testing.T) {
	p := open(t)
	e := storagetest.Entry("e", 100)
	if err := p.tier.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	if err := p.tier.Delete(bg, "k"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, p.hot, "hot", "k")
	wantMiss(t, p.cold, "cold", "k")
	wantMiss(t, p.tier, "tiered", "k")
}

// A cold hit is copied into hot with the entry's own expiry.
func TestColdHitFillsHot(t *testing.T) {
	p := open(t)
	e := storagetest.Entry("e", 100)
	e.Expires = time.Now().Add(42 * time.Minute)
	if err := p.cold.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, p.hot, "hot", "k")
	wantHit(t, p.tier, "tiered", "k", e)
	wantHit(t, p.hot, "hot", "k", e)
	got, _ := p.hot.Get(bg, "k")
	if !got.Expires.Equal(e.Expires) {
		t.Fatalf("hot copy expires %v, want the entry's %v", got.Expires, e.Expires)
	}
}

// With the cold store down, hot copies are still served, a delete still
// removes the hot copy, and a failed write leaves no hot copy behind.
func TestColdOutage(t *testing.T) {
	hot := openMemory(t)
	cold := openSQLite(t)
	tier := New(hot, cold)
	for _, k := range []string{"a", "b", "c"} {
		if err := tier.Put(bg, k, storagetest.Entry(k, 100)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := hot.Get(bg, "a")

	if err := cold.Cleanup(); err != nil { // closes the database: every cold call fails now
		t.Fatal(err)
	}
	if _, err := cold.Get(bg, "a"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("cold Get after closing the database: %v, want a failure", err)
	}

	wantHit(t, tier, "tiered (cold down)", "a", a)

	if err := tier.Delete(bg, "b"); err == nil {
		t.Fatal("Delete with the cold store down returned nil, want the cold error")
	}
	wantMiss(t, hot, "hot", "b")

	if err := tier.Put(bg, "c", storagetest.Entry("c2", 100)); err == nil {
		t.Fatal("Put with the cold store down returned nil, want the cold error")
	}
	wantMiss(t, hot, "hot", "c")

	if _, err := tier.Get(bg, "never"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a key in no tier with the cold store down: %v, want the cold failure", err)
	}
}

// Delete with a cancelled context still drops the hot copy.
func TestDeleteWithCancelledContextDropsHot(t *testing.T) {
	p := open(t)
	if err := p.tier.Put(bg, "k", storagetest.Entry("k", 10)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := p.tier.Delete(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Delete with a cancelled context: %v, want context.Canceled", err)
	}
	wantMiss(t, p.hot, "hot", "k")
}

// An entry too large for hot is still stored in cold, and no older hot copy
// shadows it.
func TestTooLargeForHot(t *testing.T) {
	hot := memory.New(32 << 10)
	t.Cleanup(func() { hot.Destruct() })
	cold := openSQLite(t)
	tier := New(hot, cold)
	small := storagetest.Entry("small", 100)
	if err := tier.Put(bg, "k", small); err != nil {
		t.Fatal(err)
	}
	big := storagetest.Entry("big", 0)
	big.Body = storagetest.RandomBody(64<<10, 1)
	if err := tier.Put(bg, "k", big); err != nil {
		t.Fatalf("Put of an entry too large for hot: %v, want nil (stored in cold)", err)
	}
	wantMiss(t, hot, "hot", "k")
	wantHit(t, tier, "tiered", "k", big)
}

// paused wraps a real store so a test can hold its next Get between the
// read and the return, to order it against other operations.
type paused struct {
	storage.Store
	armed        atomic.Bool
	read, resume chan struct{}
}

func newPaused(s storage.Store) *paused {
	p := &paused{Store: s, read: make(chan struct{}), resume: make(chan struct{})}
	p.armed.Store(true)
	return p
}

func (p *paused) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := p.Store.Get(ctx, key)
	if p.armed.CompareAndSwap(true, false) {
		p.read <- struct{}{}
		<-p.resume
	}
	return e, err
}

// A cold read that raced with a Delete must not put the deleted entry back
// into hot.
func TestColdReadRacingDelete(t *testing.T) {
	hot := openMemory(t)
	cold := newPaused(openSQLite(t))
	tier := New(hot, cold)
	old := storagetest.Entry("old", 10)
	if err := cold.Store.Put(bg, "k", old); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := tier.Get(bg, "k") // reads the old entry from cold, then waits
		done <- err
	}()
	<-cold.read
	if err := tier.Delete(bg, "k"); err != nil {
		t.Fatal(err)
	}
	close(cold.resume)
	if err := <-done; err != nil {
		t.Fatalf("the racing Get: %v", err)
	}
	wantMiss(t, hot, "hot", "k")
	wantMiss(t, tier, "tiered", "k")
}

// A cold read that raced with a newer Put must not replace the newer hot
// copy with the older entry.
func TestColdReadRacingPut(t *testing.T) {
	hot := openMemory(t)
	cold := newPaused(openSQLite(t))
	tier := New(hot, cold)
	old := storagetest.Entry("old", 10)
	if err := cold.Store.Put(bg, "k", old); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := tier.Get(bg, "k")
		done <- err
	}()
	<-cold.read
	newer := storagetest.Entry("new", 10)
	if err := tier.Put(bg, "k", newer); err != nil {
		t.Fatal(err)
	}
	close(cold.resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantHit(t, hot, "hot", "k", newer)
}

func TestConcurrent(t *testing.T) {
	p := open(t)
	storagetest.Concurrent(t, []storage.Store{p.tier}, 8, 300)
}

// bare hides a store's optional interfaces.
type bare struct{ storage.Store }

func TestOptionalInterfacesFollowCold(t *testing.T) {
	hot := openMemory(t)
	withBoth := New(hot, openSQLite(t))
	if _, ok := withBoth.(storage.Lister); !ok {
		t.Error("over a cold store with List: the tiered store is not a Lister")
	}
	if _, ok := withBoth.(storage.Statser); !ok {
		t.Error("over a cold store with Stats: the tiered store is not a Statser")
	}
	plain := New(hot, bare{openSQLite(t)})
	if _, ok := plain.(storage.Lister); ok {
		t.Error("over a cold store without List: the tiered store claims to be a Lister")
	}
	if _, ok := plain.(storage.Statser); ok {
		t.Error("over a cold store without Stats: the tiered store claims to be a Statser")
	}
	type listOnly struct {
		storage.Store
		storage.Lister
	}
	type statsOnly struct {
		storage.Store
		storage.Statser
	}
	s := openSQLite(t)
	if _, ok := New(hot, listOnly{s, s}).(storage.Statser); ok {
		t.Error("over a cold store with List only: the tiered store claims to be a Statser")
	}
	if _, ok := New(hot, listOnly{s, s}).(storage.Lister); !ok {
		t.Error("over a cold store with List only: the tiered store is not a Lister")
	}
	if _, ok := New(hot, statsOnly{s, s}).(storage.Lister); ok {
		t.Error("over a cold store with Stats only: the tiered store claims to be a Lister")
	}
	if _, ok := New(hot, statsOnly{s, s}).(storage.Statser); !ok {
		t.Error("over a cold store with Stats only: the tiered store is not a Statser")
	}
}

// List and Stats come from cold, including entries not (or no longer) hot.
func TestListAndStatsFromCold(t *testing.T) {
	p := open(t)
	if err := p.cold.Put(bg, "cold-only", storagetest.Entry("c", 10)); err != nil {
		t.Fatal(err)
	}
	if err := p.tier.Put(bg, "both", storagetest.Entry("b", 10)); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := p.tier.(storage.Lister).List(bg, "", func(k string, _ *storage.Entry) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("List: %q, want both keys", keys)
	}
	st, err := p.tier.(storage.Statser).Stats(bg)
	if err != nil || st.Entries != 2 {
		t.Fatalf("Stats: %+v, %v; want 2 entries", st, err)
	}
}

// TestDeleteManyRemovesBothTiers checks that a batch delete drops the hot
// copies as well as the cold entries.
func TestDeleteManyRemovesBothTiers(t *testing.T) {
	p := open(t)
	e := storagetest.Entry("e", 100)
	for _, k := range []string{"a", "b", "c"} {
		if err := p.tier.Put(bg, k, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.tier.(storage.BatchDeleter).DeleteMany(bg, []string{"a", "b", "missing"}); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	for _, k := range []string{"a", "b"} {
		wantMiss(t, p.hot, "hot", k)
		wantMiss(t, p.cold, "cold", k)
		wantMiss(t, p.tier, "tiered", k)
	}
	wantHit(t, p.hot, "hot", "c", e)
	wantHit(t, p.cold, "cold", "c", e)
}

// failingDelete is a cold store without DeleteMany whose Delete of one key
// fails.
type failingDelete struct {
	storage.Store
	bad string
}

func (s failingDelete) Delete(ctx context.Context, key string) error {
	if key == s.bad {
		return errors.New("delete failed")
	}
	return s.Store.Delete(ctx, key)
}

// Over a cold store without DeleteMany, a failed Delete does not stop the
// others: every other key leaves both tiers, and the error is returned.
func TestDeleteManyGoesOnPastAFailure(t *testing.T) {
	hot, cold := openMemory(t), openMemory(t)
	tier := New(hot, failingDelete{cold, "b"})
	e := storagetest.Entry("e", 100)
	for _, k := range []string{"a", "b", "c"} {
		if err := tier.Put(bg, k, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tier.(storage.BatchDeleter).DeleteMany(bg, []string{"a", "b", "c"}); err == nil {
		t.Fatal("DeleteMany over a failing Delete returned no error")
	}
	for _, k := range []string{"a", "c"} {
		wantMiss(t, hot, "hot", k)
		wantMiss(t, cold, "cold", k)
	}
	wantHit(t, cold, "cold", "b", e)
}
