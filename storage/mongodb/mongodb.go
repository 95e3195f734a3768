// Package mongodb is the MongoDB storage backend: one document per cache
// entry in a collection of a MongoDB (or MongoDB wire-compatible) database.
//
// Each document looks like this:
//
//	{
//	  _id:        <cache key>,
//	  url:        <request URL>,
//	  tags:       [<surrogate keys>],     // omitted when there are none
//	  expires_at: <date>,                 // omitted for entries that never expire
//	  size:       <bytes of data>,
//	  body_size:  <bytes of the body, uncompressed>,
//	  meta:       <binary: the entry without its body, for listing>,
//	  data:       <binary: the whole entry in the storage encoding>
//	}
//
// Expiry: a TTL index on expires_at (expireAfterSeconds 0) lets the server
// delete expired documents where the server supports TTL indexes; servers
// that do not (FerretDB, for one) are detected and the store carries on
// without one. Either way reads never return expired entries, and a sweeper
// deletes expired documents every sweep_interval.
//
// Size: MongoDB documents are limited to 16 MiB. Entries whose document
// would exceed that are not stored (Put returns storage.ErrTooLarge and
// removes any older entry under the key); the gridfs backend stores bodies
// of any size.
//
// Indexes (on url, tags and expires_at) are created in the background on
// first use and retried on later use if that failed, so provisioning never
// waits for the server.
package mongodb

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

func init() {
	caddy.RegisterModule(MongoDB{})
}

// Defaults.
const (
	DefaultDatabase      = mongoconn.DefaultDatabase
	DefaultCollection    = "responses"
	DefaultSweepInterval = mongoconn.DefaultSweepInterval
)

// MongoDB stores cache entries as documents in a MongoDB collection. The
// client and its connection pool are shared by every handler (and every
// config reload) that uses the same uri and connect_timeout; the sweeper is
// shared by those that also use the same database and collection. Its
// sweeper also deletes expired documents on servers without TTL indexes.
type MongoDB struct {
	// The connection: uri, database, connect_timeout, sweep_interval and
	// compression.
	mongoconn.Config

	// Collection is the collection holding the entries. Default: responses.
	Collection string `json:"collection,omitempty"`

	comp    storage.Compression
	shared  *collection
	poolKey string
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (MongoDB) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.mongodb",
		New: func() caddy.Module { return new(MongoDB) },
	}
}

// Provision checks the configuration and obtains the shared client and
// collection. It does not contact the server.
func (m *MongoDB) Provision(ctx caddy.Context) error {
	if m.logger == nil { // tests may set one
		m.logger = ctx.Logger()
	}
	if m.Collection == "" {
		m.Collection = DefaultCollection
	}
	set, err := mongoconn.Prepare(&m.Config, "mongodb", m.Validate)
	if err != nil {
		return err
	}
	m.comp = set.Compression
	key := mongoconn.Key(set.URI, set.ConnectTimeout) + "|" + m.Database + "|" + m.Collection
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newCollection(set.URI, set.ConnectTimeout, m.Database, m.Collection, set.SweepInterval, m.logger)
	})
	if err != nil {
		return fmt.Errorf("mongodb storage %s: %w", mongoconn.Display(set.URI), err)
	}
	m.poolKey, m.shared = key, v.(*collection)
	m.shared.health.SetLogger(m.logger)
	if loaded {
		mongoconn.ChangeSweepInterval(m.shared.bg, set.SweepInterval, m.logger, "mongodb", "collection", m.Database+"."+m.Collection)
	}
	return nil
}

// Validate checks the configuration.
func (m *MongoDB) Validate() error {
	return mongoconn.Check(&m.Config, "mongodb", "collection", m.Collection)
}

// Cleanup releases this handle's reference to the shared collection.
func (m *MongoDB) Cleanup() error {
	return mongoconn.Drop(pool, &m.poolKey)
}

// LogsHealth implements storage.HealthLogger: this store logs one Warn when
// its server stops answering and one Info when it is back.
func (m *MongoDB) LogsHealth() bool { return true }

// Get implements storage.Store.
func (m *MongoDB) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return m.shared.get(ctx, key)
}

// Put implements storage.Store. Entries whose document would exceed
// MongoDB's 16 MiB limit are not stored: Put returns storage.ErrTooLarge
// and removes any older entry under key.
func (m *MongoDB) Put(ctx context.Context, key string, e *storage.Entry) error {
	return m.shared.put(ctx, key, e, m.comp)
}

// Delete implements storage.Store.
func (m *MongoDB) Delete(ctx context.Context, key string) error {
	return m.shared.delete(ctx, key)
}

// List implements storage.Lister. It reads only the small meta field of
// each matching document, never the bodies.
func (m *MongoDB) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return m.shared.list(ctx, prefix, fn)
}

// Stats implements storage.Statser: a count and a sum of stored sizes over
// the unexpired documents (two queries over the whole collection). Evictions
// are always 0 (MongoDB does not evict; expired documents are not counted).
func (m *MongoDB) Stats(ctx context.Context) (storage.Stats, error) {
	return m.shared.stats(ctx)
}

// KeysForTag implements storage.TagIndex with a query on the tags index.
func (m *MongoDB) KeysForTag(ctx context.Context, tag string) ([]string, error) {
	keys, err := m.shared.keysForTag(ctx, tag)
	_ = m.shared.health.Observe(err)
	return keys, err
}

// DeleteExpired implements storage.Expirer: what the sweeper does every
// sweep_interval, now.
func (m *MongoDB) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := m.shared.sweepOnce(ctx)
	_ = m.shared.health.Observe(err)
	if err != nil {
		return n, fmt.Errorf("mongodb delete expired: %w", err)
	}
	return n, nil
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage mongodb [<uri>] {
//		uri             <uri>
//		database        <name>
//		collection      <name>
//		connect_timeout <duration>
//		sweep_interval  <duration>
//		compression     zstd|off
//	}
//
// The uri may be given on the first line or in the block, not both.
func (m *MongoDB) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return mongoconn.ParseCaddyfile(d, &m.Config, "mongodb", []string{"collection"}, func(opt string) (bool, error) {
		if opt != "collection" {
			return false, nil
		}
		var err error
		if m.Collection, err = caddyopt.String(d); err != nil {
			return true, err
		}
		if err := mongoconn.CheckCollectionName(m.Collection); err != nil {
			return true, d.Errf("collection %q: %v", m.Collection, err)
		}
		return true, nil
	})
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*MongoDB)(nil)
	_ caddy.Validator       = (*MongoDB)(nil)
	_ caddy.CleanerUpper    = (*MongoDB)(nil)
	_ caddyfile.Unmarshaler = (*MongoDB)(nil)
	_ storage.Store         = (*MongoDB)(nil)
	_ storage.Lister        = (*MongoDB)(nil)
	_ storage.Statser       = (*MongoDB)(nil)
	_ storage.TagIndex      = (*MongoDB)(nil)
	_ storage.Expirer       = (*MongoDB)(nil)
	_ caddy.Destructor      = (*collection)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (m *MongoDB) StorageIdentity() string { return m.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (m *MongoDB) Location() string { return mongoconn.Location(m.poolKey) }

var (
	_ storage.Identifier = (*MongoDB)(nil)
	_ storage.Locator    = (*MongoDB)(nil)
)
