package file

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func randomEntry(id string, n int) *storage.Entry {
	e := storagetest.Entry(id, 0)
	e.Body = storagetest.RandomBody(n, byte(len(id)))
	return e
}

// Files are named by the hex SHA-256 of the key in two levels of
// subdirectories, start with the entry header, and no temporary file is
// left behind.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	f := provision(t, File{Path: root})
	key := "https://example.com/a?b=c"
	if err := f.Put(bg, key, storagetest.Entry("x", 100)); err != nil {
		t.Fatal(err)
	}
	h := name(key)
	if len(h) != 64 {
		t.Fatalf("name(%q) = %q, want 64 hex digits", key, h)
	}
	want := filepath.Join(h[:2], h[2:4], h)
	names, _ := diskFiles(t, root)
	if len(names) != 1 || names[0] != want {
		t.Fatalf("files after one Put: %q, want [%q]", names, want)
	}
	b, err := os.ReadFile(filepath.Join(root, want))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("CCF\x01")) {
		t.Fatalf("file starts with %q, want the entry header CCF\\x01", b[:4])
	}
	k, _, enc, err := parseFile(b)
	if err != nil || k != key {
		t.Fatalf("parseFile: key %q, %v", k, err)
	}
	if _, err := storage.Decode(enc); err != nil {
		t.Fatalf("the file's entry does not decode: %v", err)
	}
	fi, _ := os.Stat(filepath.Join(root, want))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("entry file mode %v, want 0600", fi.Mode().Perm())
	}
}

// Damage to a file's header is ErrCorrupt; a header for another key (a hash
// collision) or past its expiry is a miss.
func TestDamagedFiles(t *testing.T) {
	f := provision(t, File{Path: t.TempDir()})
	key := "k"
	good := storagetest.Entry("good", 500)
	write := func(t *testing.T, b []byte) {
		t.Helper()
		os.MkdirAll(filepath.Dir(f.dir.path(key)), 0o700)
		if err := os.WriteFile(f.dir.path(key), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	enc := storage.Encode(good, storage.CompressionZstd)
	valid := encodeFile(key, good.Expires.UnixNano(), enc)
	headerLen := len(valid) - len(enc)
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 0x10; return b }
	for name, b := range map[string][]byte{
		"empty file":                  {},
		"garbage":                     []byte("<html>not an entry</html>"),
		"cut inside the fixed header": valid[:fixedLen-1],
		"cut inside the key":          valid[:fixedLen+0],
		"cut inside the checksum":     valid[:headerLen-1],
		"header only":                 valid[:headerLen],
		"cut inside the entry":        valid[:headerLen+len(enc)/2],
		"wrong magic":                 flip(0),
		"future version":              flip(3),
		"expiry altered":              flip(8),
		"key length altered":          flip(13),
		"key altered":                 flip(fixedLen),
		"header checksum altered":     flip(headerLen - 1),
		"entry altered":               flip(headerLen + 10),
		"trailing byte":               append(bytes.Clone(valid), 0),
	} {
		t.Run(name, func(t *testing.T) {
			write(t, b)
			got, err := f.Get(bg, key)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Get: entry %v, error %v; want ErrCorrupt", got != nil, err)
			}
		})
	}
	t.Run("another key with the same file name", func(t *testing.T) {
		write(t, encodeFile("other key", good.Expires.UnixNano(), enc))
		if _, err := f.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
	})
	t.Run("header expired", func(t *testing.T) {
		write(t, encodeFile(key, time.Now().Add(-time.Second).UnixNano(), enc))
		if _, err := f.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
	})
	t.Run("valid", func(t *testing.T) {
		write(t, valid)
		got, err := f.Get(bg, key)
		if err != nil {
			t.Fatalf("Get of a valid file written by hand: %v", err)
		}
		if d := storagetest.Diff(good, got, 0); d != "" {
			t.Fatal(d)
		}
	})
}

func TestTwoHandlesShareOneDirectory(t *testing.T) {
	root := t.TempDir()
	a := provision(t, File{Path: root})
	b := provision(t, File{Path: filepath.Join(root, "x", "..")})
	if a.dir != b.dir {
		t.Fatal("two handles on one directory got different janitors, want one shared")
	}
	if n := refs(root); n != 2 {
		t.Fatalf("pool references after two Provisions: %d, want 2", n)
	}
	e := storagetest.Entry("shared", 100)
	if err := a.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatalf("Cleanup of a: %v", err)
	}
	if n := refs(root); n != 1 {
		t.Fatalf("pool references after one Cleanup: %d, want 1", n)
	}
	if b.dir.loop.Stopped() {
		t.Fatal("the janitor stopped while handle b still uses the directory")
	}
	if got, err := b.Get(bg, "k"); err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get through b after a's Cleanup: %v", err)
	}
	d := b.dir
	if err := b.Cleanup(); err != nil {
		t.Fatalf("Cleanup of b: %v", err)
	}
	if n := refs(root); n != 0 {
		t.Fatalf("pool references after both Cleanups: %d, want 0", n)
	}
	if !d.loop.Stopped() {
		t.Fatal("the janitor still runs after the last Cleanup")
	}

	// The entries stay on disk for the next start, which counts them.
	c := provision(t, File{Path: root})
	if got, err := c.Get(bg, "k"); err != nil || storagetest.Diff(e, got, 0) != "" {
		t.Fatalf("Get after reopening the directory: %v", err)
	}
	st, _ := c.Stats(bg)
	if st.Entries != 1 || st.Bytes <= 0 {
		t.Fatalf("Stats after reopening a directory with one entry: %+v", st)
	}
}

func TestTunablesAppliedToSharedDirectory(t *testing.T) {
	root := t.TempDir()
	a := provision(t, File{Path: root})
	if a.dir.maxSize.Load() != DefaultMaxSize || a.dir.loop.Interval() != DefaultSweepInterval {
		t.Fatalf("defaults: max_size %d, sweep_interval %v", a.dir.maxSize.Load(), a.dir.loop.Interval())
	}
	provision(t, File{Path: root, MaxSize: ptr[int64](1 << 20), SweepInterval: caddyDuration(time.Hour)})
	if a.dir.maxSize.Load() != 1<<20 || a.dir.loop.Interval() != time.Hour {
		t.Fatalf("after a second config: max_size %d, sweep_interval %v; want 1 MiB, 1h", a.dir.maxSize.Load(), a.dir.loop.Interval())
	}
}

func TestDefaultPathInDataDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_DATA_HOME", home)
	t.Setenv("HOME", home)
	f := provision(t, File{})
	if want := filepath.Join(home, "caddy", "cache", "files"); f.dir.root != want {
		t.Fatalf("default path %q, want %q", f.dir.root, want)
	}
}

func TestProvisionRejectsBadConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	for _, tc := range []struct {
		cfg  File
		want string
	}{
		{File{Path: dir, Compression: "brotli"}, `compression: unknown compression "brotli"`},
		{File{Path: dir, MaxSize: ptr[int64](-5)}, "max_size -5"},
		{File{Path: dir, SweepInterval: caddyDuration(-time.Minute)}, "sweep_interval -1m0s"},
	} {
		f := tc.cfg
		ctx, cancel := newContext()
		err := f.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Provision(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
		f.Cleanup()
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a rejected config created its directory (stat: %v)", err)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere; use a path below a regular file instead.
		base := filepath.Join(t.TempDir(), "file")
		os.WriteFile(base, nil, 0o600)
		var f File
		f.Path = filepath.Join(base, "cache")
		ctx, cancel := newContext()
		defer cancel()
		err := f.Provision(ctx)
		defer f.Cleanup()
		if err == nil || !strings.Contains(err.Error(), f.Path) {
			t.Fatalf("Provision under a regular file: %v, want an error naming the path", err)
		}
		return
	}
	ro := t.TempDir()
	os.Chmod(ro, 0o500)
	defer os.Chmod(ro, 0o700)
	var f File
	f.Path = ro
	ctx, cancel := newContext()
	defer cancel()
	err := f.Provision(ctx)
	defer f.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("Provision on a read-only directory: %v, want not writable", err)
	}
}

// Two janitors on one directory, as two Caddy processes would have, under
// concurrent load with a small max_size: no operation fails and no reader
// sees a partial file.
func TestTwoProcessesOneDirectory(t *testing.T) {
	root := t.TempDir()
	var stores []storage.Store
	for range 2 {
		d, err := openDir(root, 256<<10, 10*time.Millisecond, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Destruct() })
		<-d.loop.Ready()
		stores = append(stores, &File{dir: d, compression: storage.CompressionZstd})
	}
	storagetest.Concurrent(t, stores, 8, 500)
	for k := range 6 {
		key := fmt.Sprintf("load/%d", k)
		a, errA := stores[0].Get(bg, key)
		b, errB := stores[1].Get(bg, key)
		if (errA == nil) != (errB == nil) || (errA == nil && storagetest.Diff(a, b, 0) != "") {
			t.Fatalf("the two processes disagree on %q: %v / %v", key, errA, errB)
		}
	}
}

func TestConcurrentHandles(t *testing.T) {
	root := t.TempDir()
	a := provision(t, File{Path: root})
	b := provision(t, File{Path: root})
	storagetest.Concurrent(t, []storage.Store{a, b}, 8, 500)
}

// Filling to three times max_size keeps the bytes on disk under it after
// every Put.
func TestMaxSizeRespected(t *testing.T) {
	const max = 256 << 10
	root := t.TempDir()
	f := provision(t, File{Path: root, MaxSize: ptr[int64](max)})
	var written int64
	for i := 0; written < 3*max; i++ {
		e := randomEntry(fmt.Sprint(i), 8<<10)
		if err := f.Put(bg, fmt.Sprintf("fill/%03d", i), e); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		written += int64(len(e.Body))
		if n, total := entryFiles(t, root); total > max {
			t.Fatalf("after Put %d (%d bytes written): %d files of %d bytes on disk, max_size %d", i, written, n, total, max)
		}
	}
	n, total := entryFiles(t, root)
	st, _ := f.Stats(bg)
	if st.Evictions == 0 || st.Entries != int64(n) || st.Bytes != total {
		t.Fatalf("after writing 3x max_size: Stats %+v, on disk %d files of %d bytes; want evictions and matching counts", st, n, total)
	}
	if total < max/2 {
		t.Fatalf("after writing 3x max_size: %d bytes left, want at least half of max_size (eviction stops at 90%%)", total)
	}
	if _, err := f.Get(bg, "fill/000"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the first entry written: %v, want it evicted", err)
	}
}

func TestEvictionIsLRU(t *testing.T) {
	const max = 256 << 10
	f := provision(t, File{Path: t.TempDir(), MaxSize: ptr[int64](max)})
	f.dir.accessEvery = 0
	if err := f.Put(bg, "hot", randomEntry("hot", 8<<10)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := f.Put(bg, fmt.Sprintf("cold/%03d", i), randomEntry(fmt.Sprint(i), 8<<10)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Get(bg, "hot"); err != nil {
			t.Fatalf("Get of the entry read after every Put, after Put %d: %v", i, err)
		}
	}
	if _, err := f.Get(bg, "cold/000"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the oldest unread entry: %v, want it evicted", err)
	}
}

func TestEntryLargerThanMaxSize(t *testing.T) {
	f := provision(t, File{Path: t.TempDir(), MaxSize: ptr[int64](64 << 10)})
	if err := f.Put(bg, "k", randomEntry("small", 100)); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(bg, "k", randomEntry("big", 100<<10)); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put of an entry larger than max_size: %v, want ErrTooLarge", err)
	}
	if _, err := f.Get(bg, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after a too-large Put replaced an entry: %v, want ErrNotFound", err)
	}
}

// A sweep removes expired and damaged entry files and old temporary files,
// and leaves alone what is not an entry file.
func TestSweep(t *testing.T) {
	root := t.TempDir()
	f := provision(t, File{Path: root})
	for i := range 10 {
		e := storagetest.Entry(fmt.Sprint(i), 100)
		e.Expires = time.Now().Add(time.Hour)
		if err := f.Put(bg, fmt.Sprintf("exp/%d", i), e); err != nil {
			t.Fatal(err)
		}
	}
	forever := storagetest.Entry("forever", 10)
	forever.Expires = time.Time{}
	live := storagetest.Entry("live", 10)
	live.Expires = time.Now().Add(10 * time.Hour)
	for k, e := range map[string]*storage.Entry{"forever": forever, "live": live, "damaged": storagetest.Entry("d", 10)} {
		if err := f.Put(bg, k, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.dir.path("damaged"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	shard := filepath.Dir(f.dir.path("live"))
	oldTemp := filepath.Join(shard, tempPrefix+"old")
	newTemp := filepath.Join(shard, tempPrefix+"new")
	for _, p := range []string{oldTemp, newTemp} {
		os.WriteFile(p, []byte("partial"), 0o600)
	}
	os.Chtimes(oldTemp, time.Time{}, time.Now().Add(-2*staleTemp))
	foreign := []string{
		filepath.Join(root, "README"),
		filepath.Join(root, "zz", "note"),
		filepath.Join(shard, "not-an-entry.txt"),
		filepath.Join(shard, strings.Repeat("0", 64)), // a hash name in the wrong shard
	}
	for _, p := range foreign {
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte("x"), 0o600)
	}

	f.dir.skew.Store(int64(2 * time.Hour))
	if _, err := f.Get(bg, "exp/0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after expiry, before a sweep: %v, want ErrNotFound", err)
	}
	if err := f.dir.sweep(); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n, _ := entryFiles(t, root); n != 2+len(foreign)+0 {
		names, _ := diskFiles(t, root)
		t.Fatalf("files after the sweep: %q; want the 2 live entries and the %d foreign files", names, len(foreign))
	}
	for _, p := range append(foreign, newTemp) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the sweep removed %s: %v", p, err)
		}
	}
	if _, err := os.Stat(oldTemp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a temporary file older than %v survived the sweep: %v", staleTemp, err)
	}
	st, _ := f.Stats(bg)
	if st.Entries != 2 {
		t.Errorf("Stats after the sweep: %+v, want 2 entries", st)
	}
	for _, k := range []string{"forever", "live"} {
		if _, err := f.Get(bg, k); err != nil {
			t.Errorf("Get(%q) after the sweep: %v", k, err)
		}
	}
}

func TestSweeperRuns(t *testing.T) {
	root := t.TempDir()
	f := provision(t, File{Path: root, SweepInterval: caddyDuration(20 * time.Millisecond)})
	for i := range 5 {
		if err := f.Put(bg, fmt.Sprintf("exp/%d", i), storagetest.Entry(fmt.Sprint(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	f.dir.skew.Store(int64(24 * time.Hour))
	<-f.dir.loop.Rounds()
	<-f.dir.loop.Rounds()
	if n, _ := entryFiles(t, root); n != 0 {
		t.Fatalf("entry files after the sweeper ran past their expiry: %d, want 0", n)
	}
}

// A Put cancelled before its rename leaves no file behind.
func TestCancelledPutLeavesNothing(t *testing.T) {
	root := t.TempDir()
	f := provision(t, File{Path: root})
	ctx, cancel := newContext()
	cancel()
	if err := f.Put(ctx, "k", storagetest.Entry("k", 10)); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if names, _ := diskFiles(t, root); len(names) != 0 {
		t.Fatalf("files after a cancelled Put: %q", names)
	}
}

func TestDeleteExpired(t *testing.T) {
	root := t.TempDir()
	f := provision(t, File{Path: root})
	for i := range 7 {
		e := storagetest.Entry(fmt.Sprint(i), 10)
		e.Expires = time.Now().Add(time.Hour)
		if err := f.Put(bg, fmt.Sprintf("exp/%d", i), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Put(bg, "live", storagetest.Entry("live", 10)); err != nil { // expires in 2h
		t.Fatal(err)
	}
	f.dir.skew.Store(int64(90 * time.Minute))
	n, err := f.DeleteExpired(bg)
	if err != nil || n != 7 {
		t.Fatalf("DeleteExpired: %d, %v; want 7", n, err)
	}
	if files, _ := entryFiles(t, root); files != 1 {
		t.Fatalf("entry files after DeleteExpired: %d, want 1", files)
	}
	if st, _ := f.Stats(bg); st.Entries != 1 {
		t.Fatalf("Stats after DeleteExpired: %+v, want 1 entry", st)
	}
}
