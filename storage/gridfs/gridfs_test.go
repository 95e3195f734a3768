package gridfs

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
	"github.com/caddycache/caddy-cache/storage/mongodb"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// TestFerretDB runs the tests that can share one FerretDB (each uses its
// own bucket).
func TestFerretDB(t *testing.T) {
	srv := testservers.FerretDB(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *testservers.Server)
	}{
		{"conformance", testConformance},
		{"bodies over 16 MiB", testHugeBody},
		{"overwrite and delete remove files", testFilesFollowEntries},
		{"readers never see partial entries", testReadersNeverSeePartialEntries},
		{"sweeper removes expired entries and orphaned files", testSweeper},
		{"tag index and expirer", testTagIndexAndExpirer},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
	}
}

func testConformance(t *testing.T, srv *testservers.Server) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI}, Bucket: uniqueName(t)})
	}, storagetest.Options{Corrupt: corrupt})
}

func bigEntry(id string, n int, seed byte) *storage.Entry {
	e := storagetest.Entry(id, 0)
	e.Body = storagetest.RandomBody(n, seed)
	e.BodySize = int64(n)
	return e
}

// GridFS has no document size limit for bodies.
func testHugeBody(t *testing.T, srv *testservers.Server) {
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, Compression: "off"}, Bucket: uniqueName(t)})
	e := bigEntry("huge", 17<<20, 5)
	if err := g.Put(bg, "huge", e); err != nil {
		t.Fatalf("Put of a 17 MiB body: %v", err)
	}
	got, err := g.Get(bg, "huge")
	if err != nil {
		t.Fatalf("Get of a 17 MiB body: %v", err)
	}
	if !bytes.Equal(got.Body, e.Body) {
		t.Fatal("Get of a 17 MiB body: body differs")
	}
	// Headers that alone exceed a document are refused.
	h := storagetest.Entry("huge-header", 10)
	h.Header.Set("X-Huge", strings.Repeat("h", 17<<20))
	if err := g.Put(bg, "huge", h); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put with a 17 MiB header: %v, want ErrTooLarge", err)
	}
	if _, err := g.Get(bg, "huge"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after a refused Put: %v, want ErrNotFound", err)
	}
	if n, f, c := counts(t, g); n+f+c != 0 {
		t.Fatalf("after a refused Put: %d entries, %d files, %d chunks left", n, f, c)
	}
}

func testFilesFollowEntries(t *testing.T, srv *testservers.Server) {
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, Compression: "off"}, Bucket: uniqueName(t)})
	h := handlesOf(t, g)
	a := bigEntry("a", 600<<10, 1) // 3 chunks of 255 KiB
	if err := g.Put(bg, "k", a); err != nil {
		t.Fatal(err)
	}
	oldFile := fileOf(t, g, "k")
	if n, f, c := counts(t, g); n != 1 || f != 1 || c != 3 {
		t.Fatalf("after one Put: %d entries, %d files, %d chunks; want 1, 1, 3", n, f, c)
	}
	b := bigEntry("b", 300<<10, 2) // 2 chunks
	if err := g.Put(bg, "k", b); err != nil {
		t.Fatal(err)
	}
	if fileOf(t, g, "k") == oldFile {
		t.Fatal("overwrite kept the old file id")
	}
	if n, f, c := counts(t, g); n != 1 || f != 1 || c != 2 {
		t.Fatalf("after an overwrite: %d entries, %d files, %d chunks; want 1, 1, 2 (old file removed)", n, f, c)
	}
	if _, err := h.gfs.OpenDownloadStream(bg, oldFile); !errors.Is(err, mongo.ErrFileNotFound) {
		t.Fatalf("opening the replaced file: %v, want ErrFileNotFound", err)
	}
	got, err := g.Get(bg, "k")
	if err != nil || !bytes.Equal(got.Body, b.Body) {
		t.Fatalf("Get after overwrite: %v", err)
	}
	if err := g.Delete(bg, "k"); err != nil {
		t.Fatal(err)
	}
	if n, f, c := counts(t, g); n+f+c != 0 {
		t.Fatalf("after Delete: %d entries, %d files, %d chunks; want none", n, f, c)
	}
	// An entry whose file is gone (not replaced) is corrupt, not half-served.
	if err := g.Put(bg, "k", a); err != nil {
		t.Fatal(err)
	}
	if err := h.gfs.Delete(bg, fileOf(t, g, "k")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Get(bg, "k"); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Get of an entry whose file is gone: %v, want ErrCorrupt", err)
	}
}

func testReadersNeverSeePartialEntries(t *testing.T, srv *testservers.Server) {
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, Compression: "off"}, Bucket: uniqueName(t)})
	versions := []*storage.Entry{bigEntry("a", 300<<10, 1), bigEntry("b", 400<<10, 2)} // 2 chunks each
	if err := g.Put(bg, "racy", versions[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := g.Get(bg, "racy")
				if err != nil {
					t.Errorf("reader %d: Get during overwrites: %v", r, err)
					return
				}
				if !bytes.Equal(got.Body, versions[0].Body) && !bytes.Equal(got.Body, versions[1].Body) {
					t.Errorf("reader %d: a body (%d bytes) that was never stored", r, len(got.Body))
					return
				}
			}
		}()
	}
	for i := 1; i <= 6; i++ {
		if err := g.Put(bg, "racy", versions[i%2]); err != nil {
			t.Errorf("overwrite %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	if n, f, _ := counts(t, g); n != 1 || f != 1 {
		t.Fatalf("after the overwrites: %d entries and %d files, want 1 and 1", n, f)
	}
}

func testSweeper(t *testing.T, srv *testservers.Server) {
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, SweepInterval: caddy.Duration(time.Hour)}, Bucket: uniqueName(t)})
	h := handlesOf(t, g)
	soon := bigEntry("soon", 300<<10, 1)
	soon.Expires = time.Now().Add(3 * time.Second)
	if err := g.Put(bg, "soon", soon); err != nil {
		t.Fatal(err)
	}
	if err := g.Put(bg, "later", storagetest.Entry("later", 10)); err != nil {
		t.Fatal(err)
	}
	// An orphan: a file no entry points to, as an interrupted Put leaves.
	orphan, err := h.gfs.UploadFromStream(bg, "orphan", bytes.NewReader([]byte("left behind")))
	if err != nil {
		t.Fatal(err)
	}
	if n, f, _ := counts(t, g); n != 2 || f != 3 {
		t.Fatalf("before sweeping: %d entries and %d files, want 2 and 3", n, f)
	}
	// Young orphans are left alone (they may belong to a running Put).
	if expired, orphans, err := g.shared.sweepOnce(bg); err != nil || expired != 0 || orphans != 0 {
		t.Fatalf("sweep before expiry with a young orphan: deleted %d entries and %d orphans (%v), want none", expired, orphans, err)
	}
	time.Sleep(time.Until(soon.Expires) + 50*time.Millisecond)
	g.shared.orphanAge = 0
	expired, orphans, err := g.shared.sweepOnce(bg)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if expired != 1 || orphans != 1 {
		t.Fatalf("sweep: %d expired entries and %d orphans deleted, want 1 and 1", expired, orphans)
	}
	if n, f, _ := counts(t, g); n != 1 || f != 1 {
		t.Fatalf("after sweeping: %d entries and %d files, want 1 and 1", n, f)
	}
	if _, err := h.gfs.OpenDownloadStream(bg, orphan); !errors.Is(err, mongo.ErrFileNotFound) {
		t.Fatalf("orphan after the sweep: %v, want ErrFileNotFound", err)
	}
	if _, err := g.Get(bg, "later"); err != nil {
		t.Fatalf("Get of the live entry after the sweep: %v", err)
	}
}

// KeysForTag uses the tags field; DeleteExpired removes expired entries
// with their files.
func testTagIndexAndExpirer(t *testing.T, srv *testservers.Server) {
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI, SweepInterval: caddy.Duration(time.Hour)}, Bucket: uniqueName(t)})
	// c expires a few seconds after it is stored: long enough for the
	// checks before its expiry on a loaded machine
	soon := time.Now().Add(4 * time.Second)
	for key, tags := range map[string][]string{"a": {"x", "y"}, "b": {"y"}, "c": {"x"}} {
		e := storagetest.Entry(key, 10)
		e.Tags = tags
		if key == "c" {
			e.Expires = soon
		}
		if err := g.Put(bg, key, e); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(tag string) string {
		ks, err := g.KeysForTag(bg, tag)
		if err != nil {
			t.Fatalf("KeysForTag(%q): %v", tag, err)
		}
		slices.Sort(ks)
		return strings.Join(ks, ",")
	}
	if got := keys("x"); got != "a,c" {
		t.Fatalf("KeysForTag(x) = %q, want a,c", got)
	}
	if got := keys("y"); got != "a,b" {
		t.Fatalf("KeysForTag(y) = %q, want a,b", got)
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	if got := keys("x"); got != "a" {
		t.Fatalf("KeysForTag(x) after c expired = %q, want a", got)
	}
	if n, err := g.DeleteExpired(bg); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v; want 1", n, err)
	}
	if n, f, _ := counts(t, g); n != 2 || f != 2 {
		t.Fatalf("after DeleteExpired: %d entries and %d files, want 2 and 2", n, f)
	}
}

// A stopped server makes calls fail; after a restart they work again.
// One warning and one info line.
func TestOutageAndRecovery(t *testing.T) {
	srv := testservers.FerretDB(t)
	logger, logs := storetest.ObservedLogger(zapcore.InfoLevel)
	g := provision(t, &GridFS{Config: mongoconn.Config{URI: srv.URI}, Bucket: uniqueName(t), logger: logger})
	e := storagetest.Entry("kept", 3000)
	if err := g.Put(bg, "kept", e); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	ops := storetest.Ops(g, "kept", "other", e)
	storetest.ExpectFailures(t, ops, 2)
	srv.Start(t)
	if err := storetest.Retry(30*time.Second, 2*time.Second, ops["Get"]); err != nil {
		t.Fatalf("Get 30s after the server came back: %v", err)
	}
	storetest.ExpectSuccess(t, ops)
	storetest.ExpectOutageLogged(t, logs)
}

// Handles with the same identity on two Caddy contexts share the bucket
// state; a mongodb store on the same server shares the client.
func TestReloadSharesClient(t *testing.T) {
	uri := closedURI(t)
	a := provisionOnly(t, &GridFS{Config: mongoconn.Config{URI: uri, SweepInterval: caddy.Duration(time.Minute)}})
	b := provisionOnly(t, &GridFS{Config: mongoconn.Config{URI: uri, SweepInterval: caddy.Duration(2 * time.Minute)}})
	if a.shared != b.shared {
		t.Fatal("two handles with the same config got different bucket states")
	}
	if got := a.shared.bg.Interval(); got != 2*time.Minute {
		t.Fatalf("shared sweep interval %v, want the newest config's 2m", got)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	m := &mongodb.MongoDB{Config: mongoconn.Config{URI: uri}}
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	client, clientKey := a.shared.client, a.shared.clientKey
	if refs := mongoconn.References(clientKey); refs != 2 {
		t.Fatalf("client references with a gridfs and a mongodb store: %d, want 2", refs)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if client.Closed() {
		t.Fatal("client closed while the mongodb store uses it")
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if !client.Closed() || mongoconn.References(clientKey) != 0 {
		t.Fatal("client not closed after its last user")
	}
}

func TestProvisionUnreachable(t *testing.T) {
	g := provisionOnly(t, &GridFS{Config: mongoconn.Config{URI: closedURI(t)}})
	defer g.Cleanup()
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	if _, err := g.Get(ctx, "k"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get without a server: %v, want a failure", err)
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  GridFS
		want string
	}{
		{GridFS{}, "uri is required"},
		{GridFS{Config: mongoconn.Config{URI: "redis://h"}}, `must start with "mongodb://"`},
		{GridFS{Config: mongoconn.Config{URI: "mongodb://u:hunter2-secret@h/?authMechanism=BOGUS"}}, "is invalid"},
		{GridFS{Config: mongoconn.Config{URI: "mongodb://h/"}, Bucket: "a$b"}, `bucket "a$b"`},
		{GridFS{Config: mongoconn.Config{URI: "mongodb://h/", Database: "a/b"}}, `database "a/b"`},
		{GridFS{Config: mongoconn.Config{URI: "mongodb://h/", Compression: "x"}}, "compression"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		cfg := tc.cfg
		cfg.logger = zap.NewNop()
		err := cfg.Provision(ctx)
		cancel()
		if err == nil {
			cfg.Cleanup()
			t.Errorf("Provision(%+v): nil error, want one mentioning %q", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Provision(%+v): %v, want it to mention %q (and no password)", tc.cfg, err, tc.want)
		}
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range append(mongoconn.Options, "bucket") {
		var g GridFS
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("gridfs {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    GridFS
		wantErr string
	}{
		{in: `gridfs mongodb://h/`, want: GridFS{Config: mongoconn.Config{URI: "mongodb://h/"}}},
		{
			in: "gridfs {\n uri {env.MONGO_URI}\n database d\n bucket bodies\n connect_timeout 3s\n sweep_interval 10m\n compression zstd\n}",
			want: GridFS{Config: mongoconn.Config{
				URI: "{env.MONGO_URI}", Database: "d", ConnectTimeout: caddy.Duration(3 * time.Second),
				SweepInterval: caddy.Duration(10 * time.Minute), Compression: "zstd",
			}, Bucket: "bodies"},
		},
		{in: `gridfs`, wantErr: "uri is required"},
		{in: `gridfs mongodb://h/ x`, wantErr: `unexpected argument "x"`},
		{in: "gridfs mongodb://h/ {\n bucket a\n bucket b\n}", wantErr: "bucket specified more than once"},
		{in: "gridfs mongodb://h/ {\n bucket\n}", wantErr: "bucket takes exactly one argument"},
		{in: "gridfs mongodb://h/ {\n bucket system.x\n}", wantErr: `bucket "system.x"`},
		{in: "gridfs mongodb://h/ {\n sweep_interval -1s\n}", wantErr: "sweep_interval"},
		{in: "gridfs mongodb://h/ {\n collection c\n}", wantErr: `unrecognized gridfs storage option "collection"`},
		{in: "gridfs mongodb://h/ {\n buckte c\n}", wantErr: `unrecognized gridfs storage option "buckte" (did you mean "bucket"?)`},
	} {
		var got GridFS
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
