package sqlite

import (
	"errors"
	"fmt"
	"testing"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// TestDeleteMany removes more keys than one batch holds, with keys that
// are not stored among them, and checks that the entries, their tags and
// their bytes in the size estimate are gone while the other entries stay.
func TestDeleteMany(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	const n = 2*deleteBatch + 7
	var purge []string
	for i := range n + 3 {
		e := storagetest.Entry(fmt.Sprintf("body %d", i), 100)
		e.Tags = []string{"t"}
		k := fmt.Sprintf("k%d", i)
		if err := s.Put(bg, k, e); err != nil {
			t.Fatal(err)
		}
		if i < n {
			purge = append(purge, k)
		}
	}
	before := s.db.sizeEst.Load()
	if err := s.DeleteMany(bg, append(purge, "not stored", "k0")); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	for _, k := range purge {
		if _, err := s.Get(bg, k); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get(%q) after DeleteMany: %v, want ErrNotFound", k, err)
		}
	}
	for i := n; i < n+3; i++ {
		if _, err := s.Get(bg, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatalf("Get(k%d), not deleted: %v", i, err)
		}
	}
	if got := rowCount(t, s.db, "tags"); got != 3 {
		t.Errorf("tags rows after DeleteMany: %d, want 3", got)
	}
	keys, err := s.KeysForTag(bg, "t")
	if err != nil || len(keys) != 3 {
		t.Errorf("KeysForTag after DeleteMany: %v, %v; want the 3 others", keys, err)
	}
	after := s.db.sizeEst.Load()
	exact, err := s.db.exactSize(bg)
	if err != nil {
		t.Fatal(err)
	}
	if after != exact || after >= before {
		t.Errorf("size estimate %d -> %d after DeleteMany, exact %d", before, after, exact)
	}
	if err := s.DeleteMany(bg, nil); err != nil {
		t.Errorf("DeleteMany(nil): %v", err)
	}
}

// TestSweepExpiredManyBatches expires more entries than one sweep batch
// and checks that the sweep removes every one, with its tags.
func TestSweepExpiredManyBatches(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	const n = 3*sweepBatch + 1
	for i := range n {
		e := storagetest.Entry("x", 10)
		e.Tags = []string{"t"}
		if err := s.Put(bg, fmt.Sprintf("k%d", i), e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.w().Exec(`UPDATE entries SET expires = 1`); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeleteExpired(bg)
	if err != nil || got != n {
		t.Fatalf("DeleteExpired: %d, %v; want %d", got, err, n)
	}
	if rows := rowCount(t, s.db, "entries"); rows != 0 {
		t.Errorf("entries rows after the sweep: %d, want 0", rows)
	}
	if rows := rowCount(t, s.db, "tags"); rows != 0 {
		t.Errorf("tags rows after the sweep: %d, want 0", rows)
	}
}
