// Package gridfs is the MongoDB GridFS storage backend, for bodies of any
// size: each entry is a metadata document plus a GridFS file holding the
// whole encoded entry.
//
// With the default bucket "cache", the collections are:
//
//	cache.entries  one document per entry:
//	               { _id: <key>, url, tags, expires_at, file_id, size, body_size, meta }
//	cache.files    GridFS file documents (filename = the key)
//	cache.chunks   GridFS chunks
//
// A Put uploads the file completely first, then upserts the entry document
// pointing at it, then deletes the file of the document it replaced, so a
// reader never sees a partial body: it finds either the old document and
// file or the new ones. A reader that opened a file just deleted by an
// overwrite reads the document again. Delete removes the document, then its
// file.
//
// Expiry: reads never return expired entries. The sweeper (every
// sweep_interval) deletes expired documents with their files, and files no
// document points to (left by an interrupted Put) once they are five
// minutes old. No TTL index is used, since the server would delete the
// document and leave its file behind.
//
// There is no size limit besides the handler's max_object_size, except
// that an entry whose headers alone exceed MongoDB's 16 MiB document limit
// is refused with storage.ErrTooLarge.
package gridfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

func init() {
	caddy.RegisterModule(GridFS{})
}

// Defaults.
const (
	DefaultDatabase      = mongoconn.DefaultDatabase
	DefaultBucket        = "cache"
	DefaultSweepInterval = mongoconn.DefaultSweepInterval
)

// GridFS stores cache entries in a MongoDB GridFS bucket. The client is
// shared with every other mongodb or gridfs store (and config reload) using
// the same uri and connect_timeout; the sweeper is shared by those that
// also use the same database and bucket. Its sweeper also deletes files no
// entry points to.
type GridFS struct {
	// The connection: uri, database, connect_timeout, sweep_interval and
	// compression.
	mongoconn.Config

	// Bucket is the GridFS bucket name: the collections used are
	// <bucket>.entries, <bucket>.files and <bucket>.chunks. Default: cache.
	Bucket string `json:"bucket,omitempty"`

	comp    storage.Compression
	shared  *bucket
	poolKey string
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (GridFS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.gridfs",
		New: func() caddy.Module { return new(GridFS) },
	}
}

// Provision checks the configuration and obtains the shared client and
// bucket state. It does not contact the server.
func (g *GridFS) Provision(ctx caddy.Context) error {
	if g.logger == nil { // tests may set one
		g.logger = ctx.Logger()
	}
	if g.Bucket == "" {
		g.Bucket = DefaultBucket
	}
	set, err := mongoconn.Prepare(&g.Config, "gridfs", g.Validate)
	if err != nil {
		return err
	}
	g.comp = set.Compression
	key := mongoconn.Key(set.URI, set.ConnectTimeout) + "|gridfs|" + g.Database + "|" + g.Bucket
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newBucket(set.URI, set.ConnectTimeout, g.Database, g.Bucket, set.SweepInterval, g.logger)
	})
	if err != nil {
		return fmt.Errorf("gridfs storage %s: %w", mongoconn.Display(set.URI), err)
	}
	g.poolKey, g.shared = key, v.(*bucket)
	g.shared.health.SetLogger(g.logger)
	if loaded {
		mongoconn.ChangeSweepInterval(g.shared.bg, set.SweepInterval, g.logger, "gridfs", "bucket", g.Database+"."+g.Bucket)
	}
	return nil
}

// Validate checks the configuration.
func (g *GridFS) Validate() error {
	return mongoconn.Check(&g.Config, "gridfs", "bucket", g.Bucket)
}

// Cleanup releases this handle's reference to the shared bucket state.
func (g *GridFS) Cleanup() error {
	return mongoconn.Drop(pool, &g.poolKey)
}

// LogsHealth implements storage.HealthLogger: this store logs one Warn when
// its server stops answering and one Info when it is back.
func (g *GridFS) LogsHealth() bool { return true }

// Get implements storage.Store.
func (g *GridFS) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := g.shared.get(ctx, key)
	_ = g.shared.health.Observe(err)
	return e, err
}

// Put implements storage.Store: upload the file, then point the entry
// document at it, then delete the file it replaced.
func (g *GridFS) Put(ctx context.Context, key string, e *storage.Entry) error {
	return g.shared.health.Observe(g.shared.put(ctx, key, e, g.comp))
}

// Delete implements storage.Store: the entry document, then its file.
func (g *GridFS) Delete(ctx context.Context, key string) error {
	return g.shared.health.Observe(g.shared.delete(ctx, key))
}

// List implements storage.Lister. It reads only the entry documents'
// meta field, never the files.
func (g *GridFS) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	err := g.shared.list(ctx, prefix, fn)
	if cb, ok := errors.AsType[mongoconn.CallbackError](err); ok {
		return cb.Err
	}
	return g.shared.health.Observe(err)
}

// Stats implements storage.Statser: a count and a sum of stored sizes over
// the unexpired entry documents. Evictions are always 0.
func (g *GridFS) Stats(ctx context.Context) (storage.Stats, error) {
	s, err := g.shared.stats(ctx)
	_ = g.shared.health.Observe(err)
	return s, err
}

// KeysForTag implements storage.TagIndex with a query on the tags index.
func (g *GridFS) KeysForTag(ctx context.Context, tag string) ([]string, error) {
	keys, err := g.shared.keysForTag(ctx, tag)
	_ = g.shared.health.Observe(err)
	return keys, err
}

// DeleteExpired implements storage.Expirer: it deletes the expired entries
// and their files now, as the sweeper does every sweep_interval.
func (g *GridFS) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := g.deleteExpired(ctx)
	_ = g.shared.health.Observe(err)
	return int64(n), err
}

func (g *GridFS) deleteExpired(ctx context.Context) (int, error) {
	h, err := g.shared.handles(ctx)
	if err != nil {
		return 0, fmt.Errorf("gridfs delete expired: %w", err)
	}
	n, err := g.shared.deleteExpired(ctx, h, time.Now())
	if err != nil {
		return n, fmt.Errorf("gridfs delete expired: %w", err)
	}
	return n, nil
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage gridfs [<uri>] {
//		uri             <uri>
//		database        <name>
//		bucket          <name>
//		connect_timeout <duration>
//		sweep_interval  <duration>
//		compression     zstd|off
//	}
//
// The uri may be given on the first line or in the block, not both.
func (g *GridFS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return mongoconn.ParseCaddyfile(d, &g.Config, "gridfs", []string{"bucket"}, func(opt string) (bool, error) {
		if opt != "bucket" {
			return false, nil
		}
		var err error
		if g.Bucket, err = caddyopt.String(d); err != nil {
			return true, err
		}
		if err := mongoconn.CheckCollectionName(g.Bucket); err != nil {
			return true, d.Errf("bucket %q: %v", g.Bucket, err)
		}
		return true, nil
	})
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*GridFS)(nil)
	_ caddy.Validator       = (*GridFS)(nil)
	_ caddy.CleanerUpper    = (*GridFS)(nil)
	_ caddyfile.Unmarshaler = (*GridFS)(nil)
	_ storage.Store         = (*GridFS)(nil)
	_ storage.Lister        = (*GridFS)(nil)
	_ storage.Statser       = (*GridFS)(nil)
	_ storage.TagIndex      = (*GridFS)(nil)
	_ storage.Expirer       = (*GridFS)(nil)
	_ caddy.Destructor      = (*bucket)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (g *GridFS) StorageIdentity() string { return g.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (g *GridFS) Location() string { return mongoconn.Location(g.poolKey) }

var (
	_ storage.Identifier = (*GridFS)(nil)
	_ storage.Locator    = (*GridFS)(nil)
)
