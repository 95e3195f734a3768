package mongodb

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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
func provisionOnly(t testing.TB, cfg *MongoDB) *MongoDB {
	t.Helper()
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	storetest.Provision(t, cfg)
	return cfg
}

// provision is provisionOnly plus a cleanup that drops the collection and
// releases the handle.
func provision(t testing.TB, cfg *MongoDB) *MongoDB {
	t.Helper()
	m := provisionOnly(t, cfg)
	t.Cleanup(func() {
		if coll := m.shared.coll.Load(); coll != nil {
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			_ = coll.Drop(ctx)
			cancel()
		}
		if err := m.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return m
}

// uniqueName returns a collection name no other test uses.
func uniqueName(t testing.TB) string {
	return storetest.UniqueName(t, "t_")
}

// rawCollection returns the driver collection behind m, opening it if needed.
func rawCollection(t testing.TB, m *MongoDB) *mongo.Collection {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	coll, err := m.shared.collection(ctx)
	if err != nil {
		t.Fatalf("opening the collection: %v", err)
	}
	return coll
}

// corrupt overwrites the data field of key's document with raw.
func corrupt(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	coll := rawCollection(t, s.(*MongoDB))
	res, err := coll.UpdateOne(bg, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "data", Value: raw}}}})
	if err != nil {
		t.Fatalf("corrupting %q: %v", key, err)
	}
	if res.MatchedCount != 1 {
		t.Fatalf("corrupting %q: matched %d documents, want 1", key, res.MatchedCount)
	}
}

// countDocs counts every document in the collection, expired or not.
func countDocs(t testing.TB, m *MongoDB) int64 {
	t.Helper()
	n, err := rawCollection(t, m).CountDocuments(bg, bson.D{})
	if err != nil {
		t.Fatalf("CountDocuments: %v", err)
	}
	return n
}

// closedURI returns a MongoDB URI on a loopback port nothing listens on.
func closedURI(t testing.TB) string {
	return "mongodb://127.0.0.1:" + strconv.Itoa(testservers.FreePorts(t, 1)[0]) + "/"
}
