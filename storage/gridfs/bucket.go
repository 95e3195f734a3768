package gridfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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

// pool holds one *bucket per (connection, database, bucket).
var pool = caddy.NewUsagePool()

const (
	// maxDocument is MongoDB's document size limit.
	maxDocument = 16 << 20
	// documentOverhead covers an entry document's field names, numbers
	// and ids, with room to spare.
	documentOverhead = 1024
	// maxFile bounds the file length a Get is willing to allocate.
	maxFile = 1 << 31
	// defaultOrphanAge is how old a file nothing points to must be before
	// the sweeper deletes it (younger ones may belong to a running Put).
	defaultOrphanAge = 5 * time.Minute
	// fullOrphanScan is how often the sweeper checks every file for
	// orphans; in between it checks only files that became old enough
	// since its last check.
	fullOrphanScan = time.Hour
	// indexRetry is how long after a failed index creation the next use
	// tries again.
	indexRetry = 30 * time.Second
	// readAttempts bounds how often Get reads an entry document again
	// after its file disappeared (replaced by a concurrent Put).
	readAttempts = 5
)

// handles are the driver objects of a bucket, created once the client is.
type handles struct {
	gfs     *mongo.GridFSBucket
	entries *mongo.Collection
	files   *mongo.Collection
	chunks  *mongo.Collection
	locks   mongoconn.Locks // <bucket>_locks
}

// bucket is the live state shared by every handle using one GridFS bucket.
type bucket struct {
	client    *mongoconn.Client
	clientKey string
	db, name  string
	logger    *zap.Logger
	health    *health.Tracker
	bg        *sweeper.Loop

	h atomic.Pointer[handles]

	// The driver's GridFSBucket records its first write (index creation)
	// without synchronisation: serialise uploads until one succeeded.
	firstMu    sync.Mutex
	firstWrite atomic.Bool

	// Sweeper state, touched only by the sweeper goroutine (and tests that
	// call sweepOnce while no sweeper runs concurrently).
	orphanAge    time.Duration
	orphanLow    time.Time // files uploaded before this were checked
	lastFullScan time.Time
}

func newBucket(uri string, connectTimeout time.Duration, db, name string, sweep time.Duration, logger *zap.Logger) (*bucket, error) {
	client, clientKey, err := mongoconn.Acquire(uri, connectTimeout)
	if err != nil {
		return nil, err
	}
	b := &bucket{
		client:    client,
		clientKey: clientKey,
		db:        db,
		name:      name,
		logger:    logger,
		health:    health.New(logger, fmt.Sprintf("gridfs %s.%s on %s", db, name, client.Display())),
		bg:        sweeper.New(sweep, indexRetry),
		orphanAge: defaultOrphanAge,
	}
	b.bg.Start(sweeper.Jobs{Round: b.sweep, RoundTimeout: true})
	return b, nil
}

// Destruct stops the sweeper and releases the client.
func (b *bucket) Destruct() error {
	b.bg.Stop()
	return mongoconn.Release(b.clientKey)
}

// handles returns the driver objects, creating the client if needed, and
// starts index creation when it has not succeeded yet.
func (b *bucket) handles(ctx context.Context) (*handles, error) {
	h := b.h.Load()
	if h == nil {
		mc, err := b.client.Get(ctx)
		if err != nil {
			return nil, err
		}
		db := mc.Database(b.db)
		h = &handles{
			gfs:     db.GridFSBucket(options.GridFSBucket().SetName(b.name)),
			entries: db.Collection(b.name + ".entries"),
			files:   db.Collection(b.name + ".files"),
			chunks:  db.Collection(b.name + ".chunks"),
			locks:   mongoconn.LocksOf(db, b.name),
		}
		if !b.h.CompareAndSwap(nil, h) {
			h = b.h.Load()
		}
	}
	b.bg.Setup(b.createIndexes, func(err error) {
		if err != nil {
			b.logger.Debug("creating gridfs indexes failed; will retry",
				zap.String("bucket", b.db+"."+b.name), zap.Error(err))
		}
	})
	return h, nil
}

func (b *bucket) createIndexes(ctx context.Context) error {
	h := b.h.Load()
	_, err := h.entries.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "url", Value: 1}}},
		{Keys: bson.D{{Key: "tags", Value: 1}}},
		{Keys: bson.D{{Key: "expires_at", Value: 1}}},
		{Keys: bson.D{{Key: "file_id", Value: 1}}},
	})
	if err != nil {
		return fmt.Errorf("creating entry indexes: %w", err)
	}
	if err := h.locks.CreateIndex(ctx); err != nil {
		return fmt.Errorf("creating the locks TTL index: %w", err)
	}
	return nil
}

// keysForTag returns the keys of the unexpired entries tagged tag.
func (b *bucket) keysForTag(ctx context.Context, tag string) ([]string, error) {
	h, err := b.handles(ctx)
	if err != nil {
		return nil, fmt.Errorf("gridfs keys for tag: %w", err)
	}
	keys, err := mongoconn.KeysForTag(ctx, h.entries, tag)
	if err != nil {
		return nil, fmt.Errorf("gridfs keys for tag: %w", err)
	}
	return keys, nil
}

// errVanished means the file went away while it was read.
var errVanished = errors.New("file vanished")

func (b *bucket) get(ctx context.Context, key string) (*storage.Entry, error) {
	h, err := b.handles(ctx)
	if err != nil {
		return nil, fmt.Errorf("gridfs get: %w", err)
	}
	now := time.Now()
	var last bson.ObjectID
	for attempt := 1; ; attempt++ {
		filter := append(bson.D{{Key: "_id", Value: key}}, mongoconn.Unexpired(now)...)
		raw, err := h.entries.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "file_id", Value: 1}})).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, storage.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("gridfs get: %w", err)
		}
		fid, ok := raw.Lookup("file_id").ObjectIDOK()
		if !ok {
			return nil, fmt.Errorf("gridfs get: %w: entry without a file_id", storage.ErrCorrupt)
		}
		if fid == last {
			return nil, fmt.Errorf("gridfs get: %w: the entry's file is missing or incomplete", storage.ErrCorrupt)
		}
		data, err := b.download(ctx, h, fid)
		if errors.Is(err, errVanished) {
			if attempt < readAttempts {
				// Most likely replaced while we read it; the same file
				// again means it is really broken.
				last = fid
				continue
			}
			return nil, fmt.Errorf("gridfs get: %w: %v", storage.ErrCorrupt, err)
		}
		if err != nil {
			return nil, fmt.Errorf("gridfs get: %w", err)
		}
		e, err := storage.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("gridfs get: %w", err)
		}
		if e.Expired(now) {
			return nil, storage.ErrNotFound
		}
		return e, nil
	}
}

// download reads the whole file fid.
func (b *bucket) download(ctx context.Context, h *handles, fid bson.ObjectID) ([]byte, error) {
	ds, err := h.gfs.OpenDownloadStream(ctx, fid)
	if errors.Is(err, mongo.ErrFileNotFound) || errors.Is(err, mongo.ErrMissingGridFSChunkSize) {
		return nil, fmt.Errorf("%w: %v", errVanished, err)
	}
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	n := ds.GetFile().Length
	if n < 0 || n > maxFile {
		return nil, fmt.Errorf("%w: file length %d", storage.ErrCorrupt, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(ds, buf); err != nil {
		if errors.Is(err, mongo.ErrMissingChunk) || errors.Is(err, mongo.ErrWrongSize) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %v", errVanished, err)
		}
		return nil, err
	}
	return buf, nil
}

// document is an entry document (see the package comment).
type document struct {
	ID        string        `bson:"_id"`
	URL       string        `bson:"url"`
	Tags      []string      `bson:"tags,omitempty"`
	ExpiresAt *time.Time    `bson:"expires_at,omitempty"`
	FileID    bson.ObjectID `bson:"file_id"`
	Size      int64         `bson:"size"`
	BodySize  int64         `bson:"body_size"`
	Meta      []byte        `bson:"meta"`
}

func (b *bucket) put(ctx context.Context, key string, e *storage.Entry, comp storage.Compression) error {
	if e.Expired(time.Now()) {
		return b.delete(ctx, key)
	}
	meta := storage.Encode(e.Meta(), storage.CompressionOff)
	n := len(meta) + len(key) + len(e.URL) + documentOverhead
	for _, t := range e.Tags {
		n += len(t) + 16
	}
	if n > maxDocument {
		if err := b.delete(ctx, key); err != nil {
			return err
		}
		return storage.ErrTooLarge
	}
	h, err := b.handles(ctx)
	if err != nil {
		return fmt.Errorf("gridfs put: %w", err)
	}
	data := storage.Encode(e, comp)
	fid, err := b.upload(ctx, h, key, data)
	if err != nil {
		return fmt.Errorf("gridfs put: uploading: %w", err)
	}
	doc := &document{
		ID:       key,
		URL:      e.URL,
		Tags:     e.Tags,
		FileID:   fid,
		Size:     int64(len(data)),
		BodySize: int64(len(e.Body)),
		Meta:     meta,
	}
	if !e.Expires.IsZero() {
		t := mongoconn.ExpiresAt(e.Expires)
		doc.ExpiresAt = &t
	}
	// No projection: FerretDB does not implement it for findAndModify
	// (the old document is small anyway: no body).
	opts := options.FindOneAndReplace().SetUpsert(true).SetReturnDocument(options.Before)
	var old bson.Raw
	for attempt := 0; ; attempt++ {
		// Two concurrent upserts of a new key can both try to insert;
		// the loser, retried, replaces the winner's document.
		old, err = h.entries.FindOneAndReplace(ctx, bson.D{{Key: "_id", Value: key}}, doc, opts).Raw()
		if err == nil || !mongo.IsDuplicateKeyError(err) || attempt == 4 {
			break
		}
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil // a new key: nothing replaced
	}
	if err != nil {
		b.removeFile(h, fid)
		return fmt.Errorf("gridfs put: %w", err)
	}
	if oldID, ok := old.Lookup("file_id").ObjectIDOK(); ok && oldID != fid {
		if err := h.gfs.Delete(ctx, oldID); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
			b.logger.Debug("deleting the file of a replaced gridfs entry failed; the sweeper will",
				zap.String("bucket", b.db+"."+b.name), zap.Error(err))
		}
	}
	return nil
}

// upload stores data as a new file named key and returns its id. A failed
// upload leaves nothing behind (best effort; the sweeper catches the rest).
func (b *bucket) upload(ctx context.Context, h *handles, key string, data []byte) (bson.ObjectID, error) {
	fid := bson.NewObjectID()
	var us *mongo.GridFSUploadStream
	var err error
	if b.firstWrite.Load() {
		us, err = h.gfs.OpenUploadStreamWithID(ctx, fid, key)
	} else {
		b.firstMu.Lock()
		us, err = h.gfs.OpenUploadStreamWithID(ctx, fid, key)
		if err == nil {
			b.firstWrite.Store(true)
		}
		b.firstMu.Unlock()
	}
	if err != nil {
		return fid, err
	}
	if _, err := io.Copy(us, bytes.NewReader(data)); err != nil {
		_ = us.Abort()
		b.removeFile(h, fid)
		return fid, err
	}
	if err := us.Close(); err != nil {
		b.removeFile(h, fid)
		return fid, err
	}
	return fid, nil
}

// removeFile deletes, in the background, a file this Put created and will
// not use (the Put's ctx may be done, and the request must not wait).
func (b *bucket) removeFile(h *handles, fid bson.ObjectID) {
	b.bg.Go(time.Minute, func(ctx context.Context) {
		if err := h.gfs.Delete(ctx, fid); err != nil && !errors.Is(err, mongo.ErrFileNotFound) && ctx.Err() == nil {
			b.logger.Debug("removing the file of a failed gridfs put failed; the sweeper will",
				zap.String("bucket", b.db+"."+b.name), zap.Error(err))
		}
	})
}

func (b *bucket) delete(ctx context.Context, key string) error {
	h, err := b.handles(ctx)
	if err != nil {
		return fmt.Errorf("gridfs delete: %w", err)
	}
	old, err := h.entries.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: key}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gridfs delete: %w", err)
	}
	if fid, ok := old.Lookup("file_id").ObjectIDOK(); ok {
		if err := h.gfs.Delete(ctx, fid); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
			return fmt.Errorf("gridfs delete: deleting the file: %w", err)
		}
	}
	return nil
}

func (b *bucket) list(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	h, err := b.handles(ctx)
	if err != nil {
		return fmt.Errorf("gridfs list: %w", err)
	}
	err = mongoconn.List(ctx, h.entries, prefix, fn)
	if err != nil && !errors.As(err, new(mongoconn.CallbackError)) {
		return fmt.Errorf("gridfs list: %w", err)
	}
	return err
}

func (b *bucket) stats(ctx context.Context) (storage.Stats, error) {
	h, err := b.handles(ctx)
	if err != nil {
		return storage.Stats{}, fmt.Errorf("gridfs stats: %w", err)
	}
	s, err := mongoconn.Stats(ctx, h.entries)
	if err != nil {
		return storage.Stats{}, fmt.Errorf("gridfs stats: %w", err)
	}
	return s, nil
}

// sweep is one run of the sweeper.
func (b *bucket) sweep(ctx context.Context) error {
	if err := b.sweepLocks(ctx); err != nil && ctx.Err() == nil {
		b.logger.Debug("sweeping expired gridfs locks failed",
			zap.String("collection", b.db+"."+b.name+mongoconn.LocksSuffix), zap.Error(err))
	}
	expired, orphans, err := b.sweepOnce(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		b.logger.Debug("sweeping the gridfs bucket failed",
			zap.String("bucket", b.db+"."+b.name), zap.Error(err))
	case expired > 0 || orphans > 0:
		b.logger.Debug("swept the gridfs bucket", zap.String("bucket", b.db+"."+b.name),
			zap.Int("expired", expired), zap.Int("orphaned_files", orphans))
	}
	return nil // failures are logged at debug: requests report outages (health)
}

// sweepOnce deletes expired entries with their files, then orphaned files.
func (b *bucket) sweepOnce(ctx context.Context) (expired, orphans int, err error) {
	h, err := b.handles(ctx)
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	expired, err = b.deleteExpired(ctx, h, now)
	if err != nil {
		return expired, 0, err
	}
	orphans, err = b.sweepOrphans(ctx, h, now)
	return expired, orphans, err
}

// deleteExpired deletes the entries expired at now, with their files.
func (b *bucket) deleteExpired(ctx context.Context, h *handles, now time.Time) (expired int, err error) {
	cur, err := h.entries.Find(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}},
		options.Find().SetProjection(bson.D{{Key: "file_id", Value: 1}}))
	if err != nil {
		return 0, err
	}
	type victim struct {
		key string
		fid bson.ObjectID
	}
	var victims []victim
	for cur.Next(ctx) {
		key, ok1 := cur.Current.Lookup("_id").StringValueOK()
		fid, ok2 := cur.Current.Lookup("file_id").ObjectIDOK()
		if ok1 && ok2 {
			victims = append(victims, victim{key, fid})
		}
	}
	err = cur.Err()
	mongoconn.CloseCursor(ctx, cur)
	if err != nil {
		return 0, err
	}
	for _, v := range victims {
		// Only if it still points at the same file: a concurrent Put may
		// have replaced it with a live entry.
		res, err := h.entries.DeleteOne(ctx, bson.D{{Key: "_id", Value: v.key}, {Key: "file_id", Value: v.fid}})
		if err != nil {
			return expired, err
		}
		if res.DeletedCount == 1 {
			expired++
			if err := h.gfs.Delete(ctx, v.fid); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
				return expired, err
			}
		}
	}
	return expired, nil
}

// sweepOrphans deletes files older than orphanAge that no entry points to.
// It checks the files that became old enough since the last check, and all
// of them every fullOrphanScan.
func (b *bucket) sweepOrphans(ctx context.Context, h *handles, now time.Time) (int, error) {
	if now.Sub(b.lastFullScan) >= fullOrphanScan {
		b.orphanLow = time.Time{}
		b.lastFullScan = now
	}
	high := now.Add(-b.orphanAge)
	filter := bson.D{{Key: "uploadDate", Value: bson.D{{Key: "$lt", Value: high}}}}
	if !b.orphanLow.IsZero() {
		filter = bson.D{{Key: "uploadDate", Value: bson.D{{Key: "$lt", Value: high}, {Key: "$gte", Value: b.orphanLow}}}}
	}
	cur, err := h.files.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, err
	}
	defer mongoconn.CloseCursor(ctx, cur)
	deleted := 0
	var batch []bson.ObjectID
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		refs, err := h.entries.Find(ctx, bson.D{{Key: "file_id", Value: bson.D{{Key: "$in", Value: batch}}}},
			options.Find().SetProjection(bson.D{{Key: "file_id", Value: 1}}))
		if err != nil {
			return err
		}
		used := map[bson.ObjectID]bool{}
		for refs.Next(ctx) {
			if fid, ok := refs.Current.Lookup("file_id").ObjectIDOK(); ok {
				used[fid] = true
			}
		}
		err = refs.Err()
		mongoconn.CloseCursor(ctx, refs)
		if err != nil {
			return err
		}
		for _, fid := range batch {
			if used[fid] {
				continue
			}
			if err := h.gfs.Delete(ctx, fid); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
				return err
			}
			deleted++
		}
		batch = batch[:0]
		return nil
	}
	for cur.Next(ctx) {
		if fid, ok := cur.Current.Lookup("_id").ObjectIDOK(); ok {
			batch = append(batch, fid)
		}
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return deleted, err
	}
	if err := flush(); err != nil {
		return deleted, err
	}
	b.orphanLow = high
	return deleted, nil
}
