package memory

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		c := New(64 << 20)
		t.Cleanup(func() { _ = c.Destruct() })
		return c
	}, storagetest.Options{NoBytes: true})
}

// Two handles with the same name share one cache; the cache outlives the
// first handle's cleanup and is destroyed with the last.
func TestSharedAcrossHandles(t *testing.T) {
	ctx1, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()
	ctx2, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	a := &Memory{Name: t.Name()}
	if err := a.Provision(ctx1); err != nil {
		t.Fatal(err)
	}
	b := &Memory{Name: t.Name(), MaxSize: 1 << 20}
	if err := b.Provision(ctx2); err != nil {
		t.Fatal(err)
	}
	if a.Shared() != b.Shared() {
		t.Fatal("same name, different caches")
	}
	if got := a.Shared().MaxSize(); got != 1<<20 {
		t.Fatalf("max size %d after the second handle resized it, want %d", got, 1<<20)
	}
	bg := context.Background()
	e := &storage.Entry{Status: 200, Body: []byte("x"), Expires: time.Now().Add(time.Minute)}
	if err := a.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(bg, "k"); err != nil || got != e {
		t.Fatalf("after the first cleanup: %v, %v", got, err)
	}
	shared := b.Shared()
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Get(bg, "k"); err == nil {
		t.Fatal("entries survived the last cleanup")
	}
}

// Filling the store to ten times its bound with concurrent writers keeps the
// live heap within the bound plus overhead.
func TestByteBoundUnderConcurrentWriters(t *testing.T) {
	const maxSize = 16 << 20
	c := New(maxSize)
	defer c.Destruct()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	body := make([]byte, 16<<10)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < (10*maxSize)/len(body)/8; i++ {
				e := &storage.Entry{Status: 200, Body: append([]byte(nil), body...), Expires: time.Now().Add(time.Hour)}
				_ = c.Put(context.Background(), fmt.Sprintf("k-%d-%d", w, i), e)
			}
		}(w)
	}
	wg.Wait()
	c.c.CleanUp()
	st, _ := c.Stats(context.Background())
	if st.Bytes > maxSize {
		t.Fatalf("store holds %d bytes, bound %d", st.Bytes, maxSize)
	}
	if st.Evictions == 0 {
		t.Fatal("no evictions counted after writing 10x the bound")
	}
	runtime.GC() // twice: what the first one's finalizers and cleanups free goes too
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// max_size counts what entries hold in memory (weight): bound + 10 %
	if limit := int64(maxSize) * 11 / 10; growth > limit {
		t.Fatalf("live heap grew by %d bytes, limit %d", growth, limit)
	}
}

func TestTooLarge(t *testing.T) {
	c := New(1024)
	defer c.Destruct()
	e := &storage.Entry{Status: 200, Body: make([]byte, 4096), Expires: time.Now().Add(time.Hour)}
	if err := c.Put(context.Background(), "k", e); err != storage.ErrTooLarge {
		t.Fatalf("Put of an entry above max_size: %v, want ErrTooLarge", err)
	}
}
