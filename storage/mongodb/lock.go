package mongodb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

// Locks (storage.Locker) are documents of a collection of their own,
// <collection>_locks, so that List, Stats and the sweeps of the entries
// never see them:
//
//	{_id: <sha256 of the lock name, hex>, token: <the holder's>, expires: <date>}
//
// A lock is taken by inserting its document (the unique _id makes one
// insert win); an expired one is first deleted, on condition that it is
// still expired. A TTL index on expires reclaims them where the server has
// TTL indexes; the sweeper deletes expired ones everywhere.

// locksSuffix names the lock collection after the entries'.
const locksSuffix = "_locks"

// locks returns the lock collection.
func (c *collection) locks(ctx context.Context) (*mongo.Collection, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return nil, err
	}
	return coll.Database().Collection(c.name + locksSuffix), nil
}

// lockID is the _id of the lock name's document.
func lockID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// Lock implements storage.Locker with a unique insert.
func (m *MongoDB) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	unlock, ok, err := m.shared.lock(ctx, name, ttl)
	m.shared.health.Observe(err)
	return unlock, ok, err
}

func (c *collection) lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	locks, err := c.locks(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("mongodb lock: %w", err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	id := lockID(name)
	for try := 0; ; try++ {
		now := time.Now()
		_, err = locks.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id},
			{Key: "token", Value: token},
			{Key: "expires", Value: now.Add(max(ttl, time.Millisecond))},
		})
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, false, fmt.Errorf("mongodb lock: %w", err)
		}
		if try > 0 {
			return nil, false, nil
		}
		// held, unless it expired: remove it if it still is, and try once more
		res, err := locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now}}}})
		if err != nil {
			return nil, false, fmt.Errorf("mongodb lock: %w", err)
		}
		if res.DeletedCount == 0 {
			return nil, false, nil
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// only this holder's: it may have expired and been taken since
		_, err := locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "token", Value: token}})
		c.health.Observe(err)
	}, true, nil
}

// Locked implements storage.Locker.
func (m *MongoDB) Locked(ctx context.Context, name string) (bool, error) {
	held, err := m.shared.locked(ctx, name)
	m.shared.health.Observe(err)
	return held, err
}

func (c *collection) locked(ctx context.Context, name string) (bool, error) {
	locks, err := c.locks(ctx)
	if err != nil {
		return false, fmt.Errorf("mongodb locked: %w", err)
	}
	filter := bson.D{{Key: "_id", Value: lockID(name)}, {Key: "expires", Value: bson.D{{Key: "$gt", Value: time.Now()}}}}
	err = locks.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mongodb locked: %w", err)
	}
	return true, nil
}

// createLockIndex creates the TTL index of the lock collection. A server
// that refuses TTL indexes (FerretDB) is not an error: the sweeper deletes
// expired locks, and Lock replaces them.
func (c *collection) createLockIndex(ctx context.Context, coll *mongo.Collection) error {
	_, err := coll.Database().Collection(c.name+locksSuffix).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "expires", Value: 1}},
		Options: options.Index().SetExpireAfterSeconds(0),
	})
	if err != nil && !mongoconn.IsServerError(err) {
		return fmt.Errorf("creating the locks TTL index: %w", err)
	}
	return nil
}

// sweepLocks deletes the expired locks.
func (c *collection) sweepLocks(ctx context.Context) error {
	locks, err := c.locks(ctx)
	if err != nil {
		return err
	}
	_, err = locks.DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lt", Value: time.Now()}}}})
	return err
}

var _ storage.Locker = (*MongoDB)(nil)
