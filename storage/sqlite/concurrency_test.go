package sqlite

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Two provisioned handles on one file (one shared database) under load.
func TestConcurrentHandles(t *testing.T) {
	path := tempPath(t)
	a := provision(t, SQLite{Path: path})
	b := provision(t, SQLite{Path: path})
	storagetest.Concurrent(t, []storage.Store{a, b}, 8, 500)
}

// Two independent database stacks on one file, as two Caddy processes
// would have, under concurrent load, with a small max_size so evictions and
// sweeps write too: no operation may fail (no SQLITE_BUSY reaches a caller).
func TestTwoProcessesOneFile(t *testing.T) {
	path := tempPath(t)
	opts := connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"}
	var stores []storage.Store
	for range 2 {
		db, err := openDB(path, opts, 256<<10, 10*time.Millisecond, zap.NewNop())
		if err != nil {
			t.Fatalf("opening a second stack on one file: %v", err)
		}
		t.Cleanup(func() {
			if err := db.Destruct(); err != nil {
				t.Errorf("Destruct: %v", err)
			}
		})
		stores = append(stores, &SQLite{db: db, compression: storage.CompressionZstd})
	}
	storagetest.Concurrent(t, stores, 8, 500)
	// Both see the same data.
	for k := range 6 {
		key := fmt.Sprintf("load/%d", k)
		a, errA := stores[0].Get(bg, key)
		b, errB := stores[1].Get(bg, key)
		if (errA == nil) != (errB == nil) || (errA == nil && storagetest.Diff(a, b, 0) != "") {
			t.Fatalf("the two stacks disagree on %q: %v / %v", key, errA, errB)
		}
	}
}

// The same without WAL (rollback journal): readers and the writer exclude
// each other, and busy_timeout must still hide it.
func TestTwoProcessesOneFileNoWAL(t *testing.T) {
	path := tempPath(t)
	opts := connOptions{busyTimeout: DefaultBusyTimeout, wal: false, synchronous: "NORMAL"}
	var stores []storage.Store
	for range 2 {
		db, err := openDB(path, opts, 0, time.Minute, zap.NewNop())
		if err != nil {
			t.Fatalf("opening a stack: %v", err)
		}
		t.Cleanup(func() { db.Destruct() })
		stores = append(stores, &SQLite{db: db, compression: storage.CompressionZstd})
	}
	storagetest.Concurrent(t, stores, 8, 200)
}
