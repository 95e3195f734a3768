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
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

func init() {
	caddy.RegisterModule(GridFS{})
}

// Defaults.
const (
	DefaultDatabase      = "caddy_cache"
	DefaultBucket        = "cache"
	DefaultSweepInterval = time.Minute
)

// GridFS stores cache entries in a MongoDB GridFS bucket. The client is
// shared with every other mongodb or gridfs store (and config reload) using
// the same uri and connect_timeout; the sweeper is shared by those that
// also use the same database and bucket.
type GridFS struct {
	// URI is the MongoDB connection string (mongodb:// or mongodb+srv://).
	// Placeholders such as {env.MONGO_URI} are replaced when the config is
	// loaded. It may hold a password: it is never logged, and log lines show
	// only its hosts. Required.
	URI string `json:"uri,omitempty"`
	// Database is the database holding the bucket. Default: caddy_cache.
	Database string `json:"database,omitempty"`
	// Bucket is the GridFS bucket name: the collections used are
	// <bucket>.entries, <bucket>.files and <bucket>.chunks. Default: cache.
	Bucket string `json:"bucket,omitempty"`
	// ConnectTimeout bounds opening one connection to the server.
	// Default: 10s.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`
	// SweepInterval is how often expired entries and orphaned files are
	// deleted. Shared by every handler using the same bucket: the newest
	// config's value wins. Default: 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// Compression selects whether bodies are stored zstd-compressed
	// ("zstd") or as they are ("off"). Default: zstd.
	Compression string `json:"compression,omitempty"`

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
	if g.Database == "" {
		g.Database = DefaultDatabase
	}
	if g.Bucket == "" {
		g.Bucket = DefaultBucket
	}
	if err := g.Validate(); err != nil {
		return err
	}
	uri, err := mongoconn.ResolveURI(g.URI)
	if err != nil {
		return fmt.Errorf("gridfs storage: %w", err)
	}
	g.comp, _ = storage.ParseCompression(g.Compression)
	connectTimeout := time.Duration(g.ConnectTimeout)
	if connectTimeout == 0 {
		connectTimeout = mongoconn.DefaultConnectTimeout
	}
	sweep := time.Duration(g.SweepInterval)
	if sweep == 0 {
		sweep = DefaultSweepInterval
	}
	key := mongoconn.Key(uri, connectTimeout) + "|gridfs|" + g.Database + "|" + g.Bucket
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newBucket(uri, connectTimeout, g.Database, g.Bucket, sweep, g.logger)
	})
	if err != nil {
		return fmt.Errorf("gridfs storage %s: %w", mongoconn.Display(uri), err)
	}
	g.poolKey, g.shared = key, v.(*bucket)
	g.shared.health.SetLogger(g.logger)
	if loaded {
		if old := g.shared.bg.SetInterval(sweep); old != sweep {
			g.logger.Info("changing the sweep interval of a shared gridfs bucket",
				zap.String("bucket", g.Database+"."+g.Bucket),
				zap.Duration("old_sweep_interval", old), zap.Duration("sweep_interval", sweep))
		}
	}
	return nil
}

// Validate checks the configuration.
func (g *GridFS) Validate() error {
	if strings.TrimSpace(g.URI) == "" {
		return errors.New("gridfs storage: uri is required")
	}
	if err := mongoconn.CheckDatabaseName(g.Database); err != nil {
		return fmt.Errorf("gridfs storage: database %q: %w", g.Database, err)
	}
	if err := mongoconn.CheckCollectionName(g.Bucket); err != nil {
		return fmt.Errorf("gridfs storage: bucket %q: %w", g.Bucket, err)
	}
	if g.ConnectTimeout < 0 {
		return fmt.Errorf("gridfs storage: connect_timeout must not be negative, got %s", time.Duration(g.ConnectTimeout))
	}
	if g.SweepInterval < 0 {
		return fmt.Errorf("gridfs storage: sweep_interval must not be negative, got %s", time.Duration(g.SweepInterval))
	}
	if _, err := storage.ParseCompression(g.Compression); err != nil {
		return fmt.Errorf("gridfs storage: compression: %w", err)
	}
	return nil
}

// Cleanup releases this handle's reference to the shared bucket state.
func (g *GridFS) Cleanup() error {
	if g.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(g.poolKey)
	g.poolKey = ""
	return err
}

// Get implements storage.Store.
func (g *GridFS) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := g.shared.get(ctx, key)
	g.shared.health.Observe(err)
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
	var cb cbError
	if errors.As(err, &cb) {
		return cb.err
	}
	return g.shared.health.Observe(err)
}

// Stats implements storage.Statser: a count and a sum of stored sizes over
// the unexpired entry documents. Evictions are always 0.
func (g *GridFS) Stats(ctx context.Context) (storage.Stats, error) {
	s, err := g.shared.stats(ctx)
	g.shared.health.Observe(err)
	return s, err
}

// KeysForTag implements storage.TagIndex with a query on the tags index.
func (g *GridFS) KeysForTag(ctx context.Context, tag string) ([]string, error) {
	keys, err := g.shared.keysForTag(ctx, tag)
	g.shared.health.Observe(err)
	return keys, err
}

// DeleteExpired implements storage.Expirer: it deletes the expired entries
// and their files now, as the sweeper does every sweep_interval.
func (g *GridFS) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := g.deleteExpired(ctx)
	g.shared.health.Observe(err)
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
	d.Next() // backend name
	if d.NextArg() {
		g.URI = d.Val()
		if d.NextArg() {
			return d.Errf("gridfs storage: unexpected argument %q after the uri", d.Val())
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "uri":
			err = caddyopt.String(d, &g.URI)
		case "database":
			if err = caddyopt.String(d, &g.Database); err == nil {
				if e := mongoconn.CheckDatabaseName(g.Database); e != nil {
					err = d.Errf("database %q: %v", g.Database, e)
				}
			}
		case "bucket":
			if err = caddyopt.String(d, &g.Bucket); err == nil {
				if e := mongoconn.CheckCollectionName(g.Bucket); e != nil {
					err = d.Errf("bucket %q: %v", g.Bucket, e)
				}
			}
		case "connect_timeout":
			err = caddyopt.Duration(d, &g.ConnectTimeout)
		case "sweep_interval":
			err = caddyopt.Duration(d, &g.SweepInterval)
		case "compression":
			if err = caddyopt.String(d, &g.Compression); err == nil {
				if _, e := storage.ParseCompression(g.Compression); e != nil {
					err = d.Errf("compression: %v", e)
				}
			}
		default:
			err = d.Errf("unrecognized gridfs storage option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if g.URI == "" {
		return d.Err("gridfs storage: uri is required (on the storage line or as the uri option)")
	}
	return nil
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
