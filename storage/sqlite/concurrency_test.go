package sqlite

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// load runs workers × ops mixed operations over a few keys, spreading the
// workers over the given stores, and fails on any error other than
// ErrNotFound (in particular SQLITE_BUSY) and on any entry that is not one
// of those written.
func load(t *testing.T, stores []storage.Store, workers, ops int) {
	t.Helper()
	const nkeys = 6
	var written sync.Map
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		st := stores[w%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				key := fmt.Sprintf("load/%d", (w*7+i)%nkeys)
				var err error
				switch i % 10 {
				case 0, 1, 2:
					id := fmt.Sprintf("w%d-%d", w, i)
					e := storagetest.Entry(id, 500+(w*131+i*17)%20000)
					e.URL = key + "#" + id
					written.Store(id, e)
					err = st.Put(bg, key, e)
				case 3:
					err = st.Delete(bg, key)
				case 4:
					if l, ok := st.(storage.Lister); ok && i%50 == 4 {
						err = l.List(bg, "load/", func(string, *storage.Entry) error { return nil })
					}
				default:
					var got *storage.Entry
					got, err = st.Get(bg, key)
					if err == nil {
						id := got.Header.Get("X-Entry-Id")
						want, ok := written.Load(id)
						if !ok || want.(*storage.Entry).URL != key+"#"+id {
							t.Errorf("worker %d: Get(%q) returned an entry never written under that key (id %q)", w, key, id)
						} else if d := storagetest.Diff(want.(*storage.Entry), got, 0); d != "" {
							t.Errorf("worker %d: Get(%q) returned a torn entry: %s", w, key, d)
						}
					}
					if errors.Is(err, storage.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					if errs.Add(1) <= 10 {
						t.Errorf("worker %d op %d on %q: %v", w, i, key, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := errs.Load(); n > 0 {
		t.Fatalf("%d of %d operations failed, want none", n, workers*ops)
	}
}

// Two provisioned handles on one file (one shared database) under load.
func TestConcurrentHandles(t *testing.T) {
	path := tempPath(t)
	a := provision(t, SQLite{Path: path})
	b := provision(t, SQLite{Path: path})
	load(t, []storage.Store{a, b}, 8, 500)
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
	load(t, stores, 8, 500)
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
	load(t, stores, 8, 200)
}
