package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Many concurrent Puts (committed in shared transactions) are each stored
// once they return, with their tags, and are still there after the file is
// closed and opened again.
func TestGroupCommitConcurrentPuts(t *testing.T) {
	path := tempPath(t)
	opts := connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"}
	db, err := openDB(path, opts, 0, time.Minute, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	want := make([]*storage.Entry, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		want[i] = storagetest.Entry(fmt.Sprint(i), 2000+i)
		want[i].Tags = []string{"all", fmt.Sprintf("t%d", i%7)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k/%d", i)
			if err := db.Put(bg, key, want[i], storage.CompressionZstd); err != nil {
				errs <- fmt.Errorf("Put %s: %w", key, err)
				return
			}
			// returned: readable now
			if _, err := db.Get(bg, key); err != nil {
				errs <- fmt.Errorf("Get %s right after its Put: %w", key, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := db.Destruct(); err != nil {
		t.Fatalf("Destruct: %v", err)
	}

	db, err = openDB(path, opts, 0, time.Minute, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Destruct()
	for i := range n {
		key := fmt.Sprintf("k/%d", i)
		got, err := db.Get(bg, key)
		if err != nil {
			t.Fatalf("after reopening, Get %s: %v", key, err)
		}
		if d := storagetest.Diff(want[i], got, time.Millisecond); d != "" {
			t.Fatalf("after reopening, %s differs: %s", key, d)
		}
	}
	keys, err := db.KeysForTag(bg, "all")
	if err != nil || len(keys) != n {
		t.Fatalf("KeysForTag(all) = %d keys, %v; want %d", len(keys), err, n)
	}
}

// A batch one of whose writes fails is written again entry by entry: the
// other entries are stored and each writer gets its own result.
func TestGroupCommitFailedWrite(t *testing.T) {
	db, err := openDB(tempPath(t), connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"},
		0, time.Minute, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Destruct()
	cancelled, cancel := context.WithCancel(bg)
	cancel()
	req := func(ctx context.Context, key string) *putReq {
		return &putReq{ctx: ctx, key: key, r: db.prepare(key, storagetest.Entry(key, 100), storage.CompressionOff, db.now())}
	}
	live := []*putReq{req(bg, "a"), req(cancelled, "b"), req(bg, "c")}
	db.writeBatch(live)
	for _, q := range live {
		if q.ctx == cancelled {
			if !errors.Is(q.err, context.Canceled) {
				t.Errorf("cancelled write: err %v, want context.Canceled", q.err)
			}
			if _, err := db.Get(bg, q.key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("cancelled write: Get %v, want not found", err)
			}
			continue
		}
		if q.err != nil || q.w.added == 0 {
			t.Errorf("write of %s next to a failed one: err %v, added %d", q.key, q.err, q.w.added)
		}
		if _, err := db.Get(bg, q.key); err != nil {
			t.Errorf("write of %s next to a failed one: Get %v", q.key, err)
		}
	}
}

// A Delete after a Put returned wins: the Put's entry was committed before
// the Put returned, so no write of it is left to undo the Delete.
func TestGroupCommitDeleteAfterPut(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t)})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k/%d", i)
			for range 20 {
				if err := s.Put(bg, key, storagetest.Entry(key, 500)); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if err := s.Delete(bg, key); err != nil {
					t.Errorf("Delete: %v", err)
					return
				}
				if _, err := s.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Get after Delete: %v, want not found", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
