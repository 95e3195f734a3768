package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Update is atomic across processes sharing the directory: 40 concurrent
// read-modify-writes of one entry from two stores opened apart (as two
// Caddy processes open it) lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	root := t.TempDir()
	var stores []*File
	for range 2 {
		d, err := openDir(root, 0, time.Minute, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Destruct() })
		<-d.loop.Ready()
		stores = append(stores, &File{dir: d, compression: storage.CompressionZstd})
	}
	storagetest.UpdateAtomic(t, stores[0], stores[1])
	if _, err := os.Stat(stores[0].dir.path("idx") + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("the lock file is left behind: %v", err)
	}
}

// A lock file left by a crashed process is taken over once stale.
func TestUpdateTakesOverStaleLock(t *testing.T) {
	f := provision(t, File{Path: t.TempDir()})
	lock := f.dir.path("k") + ".lock"
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	if err := f.Update(bg, "k", func(*storage.Entry) *storage.Entry {
		return &storage.Entry{Header: map[string][]string{}, Body: []byte("x"), Expires: time.Now().Add(time.Minute)}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(bg, "k"); err != nil {
		t.Fatalf("the update behind a stale lock was not written: %v", err)
	}
}
