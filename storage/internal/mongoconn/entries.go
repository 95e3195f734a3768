package mongoconn

import (
	"context"
	"errors"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/caddycache/caddy-cache/storage"
)

// The queries below work on a collection of entry documents as both
// backends store them: _id is the cache key, and the documents have the
// fields tags, expires_at (absent: never expires), size, body_size and
// meta (storage.Encode without the body).

// Unexpired matches the documents that have not expired at now.
func Unexpired(now time.Time) bson.D {
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: now}}}},
		bson.D{{Key: "expires_at", Value: bson.D{{Key: "$exists", Value: false}}}},
	}}}
}

// KeysForTag returns the keys of the unexpired entries in coll tagged tag.
func KeysForTag(ctx context.Context, coll *mongo.Collection, tag string) ([]string, error) {
	filter := append(bson.D{{Key: "tags", Value: tag}}, Unexpired(time.Now())...)
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer CloseCursor(ctx, cur)
	var keys []string
	for cur.Next(ctx) {
		if k, ok := cur.Current.Lookup("_id").StringValueOK(); ok {
			keys = append(keys, k)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// CallbackError carries an error returned by the List callback, so that it
// is told apart from the server's.
type CallbackError struct{ Err error }

func (e CallbackError) Error() string { return e.Err.Error() }

// Unwrap returns the callback's error.
func (e CallbackError) Unwrap() error { return e.Err }

// List calls fn with the key and metadata of each unexpired entry in coll
// whose key starts with prefix, reading only the meta and body_size fields.
// Documents that are not entries or whose metadata does not decode are
// skipped (Get reports the corruption). storage.ErrStop from fn ends the
// listing without error; any other error from fn is returned as a
// CallbackError.
func List(ctx context.Context, coll *mongo.Collection, prefix string, fn func(string, *storage.Entry) error) error {
	now := time.Now()
	filter := Unexpired(now)
	if prefix != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(prefix)}}})
	}
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(bson.D{
		{Key: "meta", Value: 1}, {Key: "body_size", Value: 1},
	}))
	if err != nil {
		return err
	}
	defer CloseCursor(ctx, cur)
	for cur.Next(ctx) {
		key, ok := cur.Current.Lookup("_id").StringValueOK()
		if !ok {
			continue // not one of ours
		}
		_, meta, ok := cur.Current.Lookup("meta").BinaryOK()
		if !ok {
			continue
		}
		e, err := storage.DecodeMeta(meta)
		if err != nil || e.Expired(now) {
			continue // Get reports the corruption; the handler deletes it
		}
		if n, ok := cur.Current.Lookup("body_size").AsInt64OK(); ok {
			e.BodySize = n
		}
		if err := fn(key, e); err != nil {
			if errors.Is(err, storage.ErrStop) {
				return nil
			}
			return CallbackError{err}
		}
	}
	return cur.Err()
}

// Stats counts the unexpired entries in coll and sums their stored sizes.
func Stats(ctx context.Context, coll *mongo.Collection) (storage.Stats, error) {
	// Two simple queries rather than one $group with two accumulators:
	// FerretDB computes only the first accumulator of a $group.
	filter := Unexpired(time.Now())
	var s storage.Stats
	var err error
	if s.Entries, err = coll.CountDocuments(ctx, filter); err != nil {
		return storage.Stats{}, err
	}
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: filter}},
		// A constant group key: FerretDB sums to 0 with _id: null.
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "all"},
			{Key: "bytes", Value: bson.D{{Key: "$sum", Value: "$size"}}},
		}}},
	})
	if err != nil {
		return storage.Stats{}, err
	}
	defer CloseCursor(ctx, cur)
	if cur.Next(ctx) {
		s.Bytes, _ = cur.Current.Lookup("bytes").AsInt64OK()
	}
	if err := cur.Err(); err != nil {
		return storage.Stats{}, err
	}
	return s, nil
}
