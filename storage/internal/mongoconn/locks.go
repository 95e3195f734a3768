package mongoconn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Locks (storage.Locker) are documents of a collection of their own,
// <collection or bucket>_locks, so that List, Stats and the sweeps of the
// entries never see them:
//
//	{_id: <sha256 of the lock name, hex>, token: <the holder's>, expires: <date>}
//
// A lock is taken by inserting its document (the unique _id makes one
// insert win); an expired one is first deleted, on condition that it is
// still expired. A TTL index on expires reclaims them where the server has
// TTL indexes; the sweeper deletes expired ones everywhere.
type Locks struct {
	Coll *mongo.Collection
}

// LocksSuffix names the lock collection after the entries'.
const LocksSuffix = "_locks"

// LocksOf returns the lock collection of the entries named name in db.
func LocksOf(db *mongo.Database, name string) Locks {
	return Locks{Coll: db.Collection(name + LocksSuffix)}
}

// ErrLockWait is returned by Wait when the lock is still held at the
// deadline.
var ErrLockWait = errors.New("the lock is still held")

// lockID is the _id of the lock name's document.
func lockID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// Lock tries to take the lock name for ttl with a unique insert. ok is
// false when another holder has it. unlock releases it if this caller
// still holds it, and reports the outcome to observe (which may be nil).
func (l Locks) Lock(ctx context.Context, name string, ttl time.Duration, observe func(error)) (unlock func(), ok bool, err error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	id := lockID(name)
	for try := 0; ; try++ {
		now := time.Now()
		_, err = l.Coll.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id},
			{Key: "token", Value: token},
			{Key: "expires", Value: now.Add(max(ttl, time.Millisecond))},
		})
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, false, err
		}
		if try > 0 {
			return nil, false, nil
		}
		// held, unless it expired: remove it if it still is, and try once more
		res, err := l.Coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now}}}})
		if err != nil {
			return nil, false, err
		}
		if res.DeletedCount == 0 {
			return nil, false, nil
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// only this holder's: it may have expired and been taken since
		_, err := l.Coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "token", Value: token}})
		if observe != nil {
			observe(err)
		}
	}, true, nil
}

// Locked reports whether the lock name is held.
func (l Locks) Locked(ctx context.Context, name string) (bool, error) {
	filter := bson.D{{Key: "_id", Value: lockID(name)}, {Key: "expires", Value: bson.D{{Key: "$gt", Value: time.Now()}}}}
	err := l.Coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Wait takes the lock name for ttl, trying again after short random pauses
// while another holder has it, until deadline (then ErrLockWait).
func (l Locks) Wait(ctx context.Context, name string, ttl time.Duration, deadline time.Time, observe func(error)) (unlock func(), err error) {
	for try := 0; ; try++ {
		unlock, ok, err := l.Lock(ctx, name, ttl, observe)
		if err != nil {
			return nil, err
		}
		if ok {
			return unlock, nil
		}
		if time.Now().After(deadline) {
			return nil, ErrLockWait
		}
		if err := Pause(ctx, try); err != nil {
			return nil, err
		}
	}
}

// Pause waits a short random time, growing with try (up to 8 ms), so that
// contending writers spread out; it returns early with ctx's error.
func Pause(ctx context.Context, try int) error {
	t := time.NewTimer(time.Duration(mrand.Int64N(int64(time.Millisecond) * int64(min(try+1, 8)))))
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CreateIndex creates the TTL index of the lock collection. A server that
// refuses TTL indexes (FerretDB) is not an error: the sweeper deletes
// expired locks, and Lock replaces them.
func (l Locks) CreateIndex(ctx context.Context) error {
	_, err := l.Coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "expires", Value: 1}},
		Options: options.Index().SetExpireAfterSeconds(0),
	})
	if err != nil && !IsServerError(err) {
		return err
	}
	return nil
}

// Sweep deletes the expired locks.
func (l Locks) Sweep(ctx context.Context) error {
	_, err := l.Coll.DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lt", Value: time.Now()}}}})
	return err
}
