package sqlite

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// The WAL is copied back into the file by the checkpointer, not by the
// commits: after more than walAutocheckpoint pages of entries, a
// checkpoint ran on its connection, and the writer's own threshold is the
// backstop.
func TestCheckpointInBackground(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), MaxSize: ptr[int64](0)})
	k := s.db.c.Load().ckpt
	if k == nil {
		t.Fatal("no checkpointer with WAL on")
	}
	if got := pragma(t, s.db, "wal_autocheckpoint"); got != fmt.Sprint(walBackstop) {
		t.Fatalf("writer wal_autocheckpoint = %s, want the backstop %d", got, walBackstop)
	}
	e := randomEntry("big", 64<<10) // 16 pages and more each
	for i := range walAutocheckpoint/16 + 100 {
		if err := s.Put(bg, fmt.Sprint("k", i), e); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for k.runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint 30 s after writing %d pages (estimate now %d)", walAutocheckpoint, k.frames.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := k.frames.Load(); n >= walAutocheckpoint {
		t.Errorf("pages left after the checkpoint: %d", n)
	}
	if _, err := os.Stat(s.db.path + "-wal"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(bg, "k7")
	if err != nil || string(got.Body) != string(e.Body) {
		t.Fatalf("Get after the checkpoint: %v", err)
	}
}

// Without WAL there is nothing to checkpoint and no checkpointer.
func TestNoCheckpointerWithoutWAL(t *testing.T) {
	s := provision(t, SQLite{Path: tempPath(t), WAL: ptr(false)})
	if s.db.c.Load().ckpt != nil {
		t.Fatal("a checkpointer with WAL off")
	}
	if err := s.Put(bg, "k", randomEntry("k", 100)); err != nil {
		t.Fatal(err)
	}
}
