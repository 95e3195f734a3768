package dynamodb

import (
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
	storagetest.Locker(t, a, b)

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
