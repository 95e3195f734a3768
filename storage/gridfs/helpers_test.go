package gridfs

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
)

func TestMain(m *testing.M) {
	storetest.QuickRecovery()
	code := m.Run()
	testservers.KillAll()
	os.Exit(code)
}

var bg = context.Background()

// provisionOnly provisions cfg on a fresh Caddy context; the caller cleans up.
func provisionOnly(t testing.TB, cfg *GridFS) *GridFS {
	t.Helper()
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	storetest.Provision(t, cfg)
	return cfg
}

// provision is provisionOnly plus a cleanup that drops the bucket's
// collections and releases the handle.
func provision(t testing.TB, cfg *GridFS) *GridFS {
	t.Helper()
	g := provisionOnly(t, cfg)
	t.Cleanup(func() {
		if h := g.shared.h.Load(); h != nil {
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			_ = h.entries.Drop(ctx)
			_ = h.gfs.Drop(ctx)
			_ = h.locks.Coll.Drop(ctx)
			cancel()
		}
		if err := g.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return g
}

// uniqueName returns a bucket name no other test uses.
func uniqueName(t testing.TB) string {
	return storetest.UniqueName(t, "t_")
}

func handlesOf(t testing.TB, g *GridFS) *handles {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	h, err := g.shared.handles(ctx)
	if err != nil {
		t.Fatalf("opening the bucket: %v", err)
	}
	return h
}

// fileOf returns the file id the entry document of key points at.
func fileOf(t testing.TB, g *GridFS, key string) bson.ObjectID {
	t.Helper()
	raw, err := handlesOf(t, g).entries.FindOne(bg, bson.D{{Key: "_id", Value: key}}).Raw()
	if err != nil {
		t.Fatalf("entry document of %q: %v", key, err)
	}
	fid, ok := raw.Lookup("file_id").ObjectIDOK()
	if !ok {
		t.Fatalf("entry document of %q has no file_id", key)
	}
	return fid
}

// corrupt replaces the content of key's file with raw: its chunks are
// removed, raw becomes its only chunk and the length is updated.
func corrupt(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	g := s.(*GridFS)
	h := handlesOf(t, g)
	fid := fileOf(t, g, key)
	if _, err := h.chunks.DeleteMany(bg, bson.D{{Key: "files_id", Value: fid}}); err != nil {
		t.Fatal(err)
	}
	if len(raw) > 0 {
		if _, err := h.chunks.InsertOne(bg, bson.D{{Key: "files_id", Value: fid}, {Key: "n", Value: int32(0)}, {Key: "data", Value: raw}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.files.UpdateOne(bg, bson.D{{Key: "_id", Value: fid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "length", Value: int64(len(raw))}}}}); err != nil {
		t.Fatal(err)
	}
}

// counts returns the number of entry documents, files and chunks.
func counts(t testing.TB, g *GridFS) (entries, files, chunks int64) {
	t.Helper()
	h := handlesOf(t, g)
	var err error
	if entries, err = h.entries.CountDocuments(bg, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if files, err = h.files.CountDocuments(bg, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if chunks, err = h.chunks.CountDocuments(bg, bson.D{}); err != nil {
		t.Fatal(err)
	}
	return entries, files, chunks
}

// closedURI returns a MongoDB URI on a loopback port nothing listens on.
func closedURI(t testing.TB) string {
	return "mongodb://127.0.0.1:" + strconv.Itoa(testservers.FreePorts(t, 1)[0]) + "/"
}
