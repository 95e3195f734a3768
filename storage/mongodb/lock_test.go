package mongodb

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestLocker(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: name})
	// a second handle on the same collection (the locks are decided by the server)
	b := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI, Database: a.Database}, Collection: name})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		_ = rawCollection(t, a).Database().Collection(name + locksSuffix).Drop(ctx)
	})
	storagetest.Locker(t, a, b)

	// locks are not entries: List, Stats and DeleteExpired do not see them
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
	if err := a.shared.sweepLocks(bg); err != nil {
		t.Fatalf("sweepLocks: %v", err)
	}
	n, err := rawCollection(t, a).Database().Collection(name+locksSuffix).CountDocuments(bg, bson.D{})
	if err != nil || n != 1 {
		t.Errorf("after the sweep, %d lock documents (%v), want 1", n, err)
	}
	if held, err := b.Locked(bg, "https://example.com/held"); err != nil || !held {
		t.Errorf("after the sweep, Locked = %v, %v; want true", held, err)
	}
}
