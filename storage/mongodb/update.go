package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

const (
	// maxUpdateTries bounds the optimistic retries of Update when a
	// plain Put or Delete changes the document between read and write.
	maxUpdateTries = 64
	// updateLockTTL is how long an Update holds the key's update lock at
	// most (a holder that dies leaves it that long), and updateWait how
	// long an Update waits for the lock.
	updateLockTTL = 5 * time.Second
	updateWait    = 10 * time.Second
)

// version is the state of a document that a conditional write expects:
// absent, present without a ver field (written before there was one), or
// present with version ver.
type version struct {
	exists, hasVer bool
	ver            int64
}

// Update implements storage.Updater. Each write of a document gives it a
// fresh random version (the ver field); Update reads the document and its
// version and writes what fn returns with an insert (when there was no
// document; a duplicate key means another client wrote one) or a
// ReplaceOne filtered on _id and the version read (no match means another
// client wrote or deleted it), and on such a conflict runs fn again on a
// fresh read, after a short random pause.
//
// MongoDB evaluates that filter and replaces the document atomically;
// FerretDB does not (of 40 concurrent ReplaceOne with one {_id, ver}
// filter, several match). So the read-modify-write also runs under a
// per-key update lock, a unique insert into <collection>_locks like
// storage.Locker's (FerretDB's unique index is atomic), which serializes
// Updates; the version check still catches a plain Put or Delete in
// between.
func (m *MongoDB) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	return m.shared.update(ctx, key, fn, m.comp)
}

var _ storage.Updater = (*MongoDB)(nil)

func (c *collection) update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry, comp storage.Compression) error {
	deadline := time.Now().Add(updateWait)
	for conflicts := 0; ; {
		locks, err := c.locks(ctx)
		if err != nil {
			return c.health.Observe(fmt.Errorf("mongodb lock: %w", err))
		}
		unlock, err := locks.Wait(ctx, "update\x00"+key, updateLockTTL, deadline, c.observe)
		if errors.Is(err, mongoconn.ErrLockWait) {
			return fmt.Errorf("mongodb storage: updating %q: the update lock is still held after %s", key, updateWait)
		}
		if err != nil && err == ctx.Err() { // Wait's pause gave up, not the server
			return err
		}
		if err != nil {
			return c.health.Observe(fmt.Errorf("mongodb lock: %w", err))
		}
		err = c.updateOnce(ctx, key, fn, comp)
		unlock()
		if !errors.Is(err, errConflict) {
			return c.health.Observe(err)
		}
		_ = c.health.Observe(nil)
		if conflicts++; conflicts == maxUpdateTries {
			return fmt.Errorf("mongodb storage: updating %q: still contended after %d tries", key, maxUpdateTries)
		}
		// a short random pause, so that contending writers spread out
		if err := mongoconn.Pause(ctx, conflicts); err != nil {
			return err
		}
	}
}

// updateOnce is one read-modify-write; errConflict means the document
// changed between the read and the write.
func (c *collection) updateOnce(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry, comp storage.Compression) error {
	old, v, err := c.read(ctx, key)
	if err != nil {
		return err
	}
	e := fn(old)
	if e == nil {
		return nil
	}
	return c.doWrite(ctx, key, e, comp, &v)
}

// read returns the unexpired, decodable entry stored under key (nil
// otherwise) and the version of the document, whatever its state.
func (c *collection) read(ctx context.Context, key string) (*storage.Entry, version, error) {
	var v version
	coll, err := c.collection(ctx)
	if err != nil {
		return nil, v, fmt.Errorf("mongodb update: %w", err)
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: key}},
		options.FindOne().SetProjection(bson.D{{Key: "data", Value: 1}, {Key: "ver", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, v, nil
	}
	if err != nil {
		return nil, v, fmt.Errorf("mongodb update: %w", err)
	}
	v.exists = true
	v.ver, v.hasVer = raw.Lookup("ver").AsInt64OK()
	_, data, ok := raw.Lookup("data").BinaryOK()
	if !ok {
		return nil, v, nil
	}
	e, err := storage.Decode(data)
	if err != nil || e.Expired(time.Now()) {
		return nil, v, nil
	}
	return e, v, nil
}

// conditionalWrite stores doc under key only if the document is still in
// state want, and returns errConflict otherwise.
func conditionalWrite(ctx context.Context, coll *mongo.Collection, key string, doc *document, want version) error {
	if !want.exists {
		_, err := coll.InsertOne(ctx, doc)
		if mongo.IsDuplicateKeyError(err) {
			return errConflict
		}
		if err != nil {
			return fmt.Errorf("mongodb update: %w", err)
		}
		return nil
	}
	filter := bson.D{{Key: "_id", Value: key}, {Key: "ver", Value: want.ver}}
	if !want.hasVer {
		filter = bson.D{{Key: "_id", Value: key}, {Key: "ver", Value: bson.D{{Key: "$exists", Value: false}}}}
	}
	res, err := coll.ReplaceOne(ctx, filter, doc)
	if err != nil {
		return fmt.Errorf("mongodb update: %w", err)
	}
	if res.MatchedCount == 0 {
		return errConflict
	}
	return nil
}
