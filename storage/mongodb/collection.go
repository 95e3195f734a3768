package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/health"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/internal/sweeper"
)

// pool holds one *collection per (connection, database, collection).
var pool = caddy.NewUsagePool()

// MaxDocumentSize is MongoDB's document size limit.
const MaxDocumentSize = 16 << 20

// documentOverhead is what a document takes besides its variable-length
// fields: field names, type bytes, lengths, numbers and the expiry date,
// with room to spare.
const documentOverhead = 1024

// indexRetry is how long after a failed index creation the next use tries
// again.
const indexRetry = 30 * time.Second

// collection is the live state shared by every handle using one collection:
// the client reference, index state, the sweeper and the health tracker.
type collection struct {
	client    *mongoconn.Client
	clientKey string
	db, name  string
	logger    *zap.Logger
	health    *health.Tracker

	coll atomic.Pointer[mongo.Collection]
	ttl  atomic.Int32  // 0 unknown, 1 TTL index in place, -1 not supported
	bg   *sweeper.Loop // sweeper and index creation
}

func newCollection(uri string, connectTimeout time.Duration, db, name string, sweep time.Duration, logger *zap.Logger) (*collection, error) {
	client, clientKey, err := mongoconn.Acquire(uri, connectTimeout)
	if err != nil {
		return nil, err
	}
	c := &collection{
		client:    client,
		clientKey: clientKey,
		db:        db,
		name:      name,
		logger:    logger,
		health:    health.New(logger, fmt.Sprintf("mongodb %s.%s on %s", db, name, client.Display())),
	}
	c.bg = sweeper.New(sweep, indexRetry)
	c.bg.Start(sweeper.Jobs{Round: c.sweep, RoundTimeout: true})
	return c, nil
}

// Destruct stops the sweeper and any index creation and releases the client.
func (c *collection) Destruct() error {
	c.bg.Stop()
	return mongoconn.Release(c.clientKey)
}

// collection returns the driver collection, creating the client if needed,
// and starts index creation when it has not succeeded yet.
func (c *collection) collection(ctx context.Context) (*mongo.Collection, error) {
	coll := c.coll.Load()
	if coll == nil {
		mc, err := c.client.Get(ctx)
		if err != nil {
			return nil, err
		}
		coll = mc.Database(c.db).Collection(c.name)
		c.coll.Store(coll)
	}
	c.bg.Setup(c.createIndexes, func(err error) {
		if err != nil {
			c.logger.Debug("creating mongodb indexes failed; will retry",
				zap.String("collection", c.db+"."+c.name), zap.Error(err))
		}
	})
	return coll, nil
}

func (c *collection) createIndexes(ctx context.Context) error {
	coll := c.coll.Load()
	_, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "url", Value: 1}}},
		{Keys: bson.D{{Key: "tags", Value: 1}}},
	})
	if err != nil {
		return fmt.Errorf("creating url and tags indexes: %w", err)
	}
	if err := c.createLockIndex(ctx); err != nil {
		return err
	}
	if c.ttl.Load() != 0 {
		return nil
	}
	_, err = coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "expires_at", Value: 1}},
		Options: options.Index().SetExpireAfterSeconds(0),
	})
	if err == nil {
		c.ttl.Store(1)
		return nil
	}
	if !mongoconn.IsServerError(err) {
		return fmt.Errorf("creating the TTL index: %w", err)
	}
	// The server refused the TTL index (FerretDB: NotImplemented; or an
	// index with other options exists). Reads filter on expires_at and the
	// sweeper deletes expired documents, so carry on with a plain index.
	c.ttl.Store(-1)
	c.logger.Info("the server did not create a TTL index; expired documents are deleted by the sweeper instead",
		zap.String("collection", c.db+"."+c.name), zap.Duration("sweep_interval", c.bg.Interval()),
		zap.String("reason", err.Error()))
	_, err = coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "expires_at", Value: 1}}})
	if err != nil && !mongoconn.IsServerError(err) {
		return fmt.Errorf("creating the expires_at index: %w", err)
	}
	return nil
}

// sweep is one run of the sweeper.
func (c *collection) sweep(ctx context.Context) error {
	if err := c.sweepLocks(ctx); err != nil && ctx.Err() == nil {
		c.logger.Debug("sweeping expired mongodb locks failed",
			zap.String("collection", c.db+"."+c.name+locksSuffix), zap.Error(err))
	}
	n, err := c.sweepOnce(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		c.logger.Debug("sweeping expired mongodb documents failed",
			zap.String("collection", c.db+"."+c.name), zap.Error(err))
	case n > 0:
		c.logger.Debug("swept expired mongodb documents",
			zap.String("collection", c.db+"."+c.name), zap.Int64("deleted", n))
	}
	return nil // failures are logged at debug: requests report outages (health)
}

// sweepOnce deletes the documents that have expired.
func (c *collection) sweepOnce(ctx context.Context) (int64, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return 0, err
	}
	res, err := coll.DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: time.Now()}}}})
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}

// keysForTag returns the keys of the unexpired documents tagged tag.
func (c *collection) keysForTag(ctx context.Context, tag string) ([]string, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongodb keys for tag: %w", err)
	}
	keys, err := mongoconn.KeysForTag(ctx, coll, tag)
	if err != nil {
		return nil, fmt.Errorf("mongodb keys for tag: %w", err)
	}
	return keys, nil
}

func (c *collection) get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := c.doGet(ctx, key)
	_ = c.health.Observe(err)
	return e, err
}

func (c *collection) doGet(ctx context.Context, key string) (*storage.Entry, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongodb get: %w", err)
	}
	now := time.Now()
	filter := append(bson.D{{Key: "_id", Value: key}}, mongoconn.Unexpired(now)...)
	raw, err := coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "data", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("mongodb get: %w", err)
	}
	_, data, ok := raw.Lookup("data").BinaryOK()
	if !ok {
		return nil, fmt.Errorf("mongodb get: %w: data field missing or not binary", storage.ErrCorrupt)
	}
	e, err := storage.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("mongodb get: %w", err)
	}
	if e.Expired(now) {
		return nil, storage.ErrNotFound
	}
	return e, nil
}

// document is the stored form of an entry (see the package comment).
type document struct {
	ID        string     `bson:"_id"`
	URL       string     `bson:"url"`
	Tags      []string   `bson:"tags,omitempty"`
	ExpiresAt *time.Time `bson:"expires_at,omitempty"`
	Size      int64      `bson:"size"`
	BodySize  int64      `bson:"body_size"`
	Meta      []byte     `bson:"meta"`
	Data      []byte     `bson:"data"`
	// Ver is a fresh random number on every write: Update replaces the
	// document only while it still has the version it read.
	Ver int64 `bson:"ver"`
}

// newDocument encodes e, or returns storage.ErrTooLarge when the document
// would exceed MaxDocumentSize.
func newDocument(key string, e *storage.Entry, comp storage.Compression) (*document, error) {
	data := storage.Encode(e, comp)
	meta := storage.Encode(e.Meta(), storage.CompressionOff)
	if documentSize(key, e, len(data), len(meta)) > MaxDocumentSize {
		return nil, storage.ErrTooLarge
	}
	d := &document{
		ID:       key,
		URL:      e.URL,
		Tags:     e.Tags,
		Size:     int64(len(data)),
		BodySize: int64(len(e.Body)),
		Meta:     meta,
		Data:     data,
		Ver:      rand.Int64(),
	}
	if !e.Expires.IsZero() {
		t := mongoconn.ExpiresAt(e.Expires)
		d.ExpiresAt = &t
	}
	return d, nil
}

// documentSize is an upper bound of the BSON size of the document for e,
// given the lengths of its encoded data and meta fields.
func documentSize(key string, e *storage.Entry, dataLen, metaLen int) int {
	n := dataLen + metaLen + len(key) + len(e.URL) + documentOverhead
	for _, t := range e.Tags {
		n += len(t) + 16
	}
	return n
}

func (c *collection) put(ctx context.Context, key string, e *storage.Entry, comp storage.Compression) error {
	return c.health.Observe(c.doPut(ctx, key, e, comp))
}

func (c *collection) doPut(ctx context.Context, key string, e *storage.Entry, comp storage.Compression) error {
	return c.doWrite(ctx, key, e, comp, nil)
}

// errConflict means a conditional write found the document changed since
// it was read.
var errConflict = errors.New("changed concurrently")

// doWrite is doPut; with want set, the document is written only if it is
// still in that state (absent: inserted, never replacing one; present:
// replaced only while it has the version read), and errConflict is
// returned otherwise.
func (c *collection) doWrite(ctx context.Context, key string, e *storage.Entry, comp storage.Compression, want *version) error {
	if e.Expired(time.Now()) {
		return c.doDelete(ctx, key)
	}
	doc, err := newDocument(key, e, comp)
	if err != nil {
		// Do not leave an older version behind the one that was not stored.
		if derr := c.doDelete(ctx, key); derr != nil {
			return derr
		}
		return err
	}
	coll, err := c.collection(ctx)
	if err != nil {
		return fmt.Errorf("mongodb put: %w", err)
	}
	if want != nil {
		return conditionalWrite(ctx, coll, key, doc, *want)
	}
	// Two concurrent upserts of a new key can both try to insert; the loser
	// gets a duplicate key error and, retried, replaces the winner's document.
	for attempt := 0; ; attempt++ {
		_, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}}, doc, options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) || attempt == 4 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("mongodb put: %w", err)
	}
	return nil
}

func (c *collection) delete(ctx context.Context, key string) error {
	return c.health.Observe(c.doDelete(ctx, key))
}

func (c *collection) doDelete(ctx context.Context, key string) error {
	coll, err := c.collection(ctx)
	if err != nil {
		return fmt.Errorf("mongodb delete: %w", err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
		return fmt.Errorf("mongodb delete: %w", err)
	}
	return nil
}

func (c *collection) list(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	err := c.doList(ctx, prefix, fn)
	if cb, ok := errors.AsType[mongoconn.CallbackError](err); ok {
		return cb.Err
	}
	return c.health.Observe(err)
}

func (c *collection) doList(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	coll, err := c.collection(ctx)
	if err != nil {
		return fmt.Errorf("mongodb list: %w", err)
	}
	err = mongoconn.List(ctx, coll, prefix, fn)
	if err != nil && !errors.As(err, new(mongoconn.CallbackError)) {
		return fmt.Errorf("mongodb list: %w", err)
	}
	return err
}

func (c *collection) stats(ctx context.Context) (storage.Stats, error) {
	s, err := c.doStats(ctx)
	_ = c.health.Observe(err)
	return s, err
}

func (c *collection) doStats(ctx context.Context) (storage.Stats, error) {
	coll, err := c.collection(ctx)
	if err != nil {
		return storage.Stats{}, fmt.Errorf("mongodb stats: %w", err)
	}
	s, err := mongoconn.Stats(ctx, coll)
	if err != nil {
		return storage.Stats{}, fmt.Errorf("mongodb stats: %w", err)
	}
	return s, nil
}
