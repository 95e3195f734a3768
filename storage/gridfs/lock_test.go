package gridfs

import (
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/caddyserver/caddy/v2"

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
	b := provision(t, &GridFS{Config: mongoconn.Config{
		URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second),
	}, Bucket: name})
	if a.shared == b.shared {
		t.Fatal("the two handles share one bucket state; want two")
	}
	storagetest.Locker(t, a, b)

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

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two modules with clients of their own (as two Caddy instances
// have), lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI}, Bucket: name})
	// another connect timeout: another client, as another process has
	b := provision(t, &GridFS{Config: mongoconn.Config{
		URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second),
	}, Bucket: name})
	if a.shared == b.shared || a.shared.client == b.shared.client {
		t.Fatal("the two modules share one client; want two, as two processes have")
	}
	storagetest.UpdateAtomic(t, a, b)

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
