// Package sqlite is the default storage backend of the cache handler: one
// SQLite database file on the local disk (pure Go driver, no cgo), so cached
// responses survive restarts without a server to run.
//
// Concurrency: each database file is opened once per process, whatever the
// number of handlers and config reloads using it, with one writer connection
// (BEGIN IMMEDIATE transactions) and a pool of reader connections, WAL
// journaling and a busy timeout. Several processes may share the file;
// SQLite's locking keeps it consistent, and waits for locks are bounded by
// busy_timeout.
package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(SQLite{})
}

// Defaults.
const (
	// DefaultMaxSize is the default bound on the bytes of stored entries.
	DefaultMaxSize = 1 << 30
	// DefaultBusyTimeout is how long a connection waits for a lock by default.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultSweepInterval is how often expired entries are removed by default.
	DefaultSweepInterval = time.Minute
)

// SQLite stores cache entries in a SQLite database file. Entries are kept
// in the shared storage encoding; expired entries are never returned and are
// deleted by a periodic sweep; past max_size, the least recently used
// entries are evicted.
//
// Handlers and config reloads naming the same file share one open database.
// max_size and sweep_interval are applied to it by every config that loads
// it (the latest wins); busy_timeout, wal and synchronous are fixed when the
// file is first opened by this process and a config asking for other values
// gets a warning until every config using the file has been unloaded (for
// example after a restart).
//
// The store never keeps Caddy from starting: a database that cannot be
// opened (a read-only or missing directory, no space left, a file written
// by a newer version) gets one warning naming the path and the cause; until
// it opens, every call fails, so the handler sends requests to the origin
// (Cache-Status detail="storage-error"), and opening is retried every 30
// seconds, with one info line when it succeeds. Invalid options, and a
// path that is a directory, still fail Provision.
//
// At every sweep the store also checks that the file at the path is still
// the one it opened: when it was removed or replaced by another file, it
// logs that once and opens the file at the path (a new, empty database when
// it was removed), so that entries are not written to a file that no longer
// has a name.
type SQLite struct {
	// Path of the database file. Its directory is created if missing.
	// Default: cache/cache.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
	// BusyTimeout is how long an operation waits for a lock held by another
	// connection or process before failing. Default: 5s.
	BusyTimeout caddy.Duration `json:"busy_timeout,omitempty"`
	// WAL turns write-ahead logging on, which lets readers proceed while a
	// write is in progress. Default: true.
	WAL *bool `json:"wal,omitempty"`
	// Synchronous is SQLite's durability setting: "off", "normal" or
	// "full". With WAL, "normal" can lose the last writes on a power cut
	// but never corrupts the file. Default: normal.
	Synchronous string `json:"synchronous,omitempty"`
	// MaxSize bounds the bytes of stored entries (keys plus encoded
	// entries; the file itself is larger by SQLite's page overhead). Past
	// it, the least recently used entries are evicted down to 90% of it.
	// Reads are tracked in memory and their times written in batches (at
	// each sweep, before each eviction, and every 1024 distinct keys read),
	// so that eviction follows every read without a write per hit. 0 means
	// unlimited. Default: 1 GiB.
	MaxSize *int64 `json:"max_size,omitempty"`
	// SweepInterval is how often expired entries are deleted, free pages
	// returned to the file system and the file checked to be the one open.
	// Default: 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// Compression of stored bodies: "zstd" (bodies of 1 KiB or more that
	// are not already content-encoded and that shrink) or "off".
	// Default: zstd.
	Compression string `json:"compression,omitempty"`
	// Shared says that several Caddy processes use the file (on one host):
	// they then coalesce their misses through a lock row per missing key,
	// so that a cold URL is fetched once across them, at the cost of two
	// small write transactions per miss. Purges reach the other processes'
	// hot tiers whether it is set or not. Default: false.
	Shared bool `json:"shared,omitempty"`

	db          *DB
	poolKey     string
	compression storage.Compression
	logger      *zap.Logger
}

// pool holds the open databases, keyed by "sqlite:" + absolute path.
var pool = caddy.NewUsagePool()

// CaddyModule returns the Caddy module information.
func (SQLite) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.sqlite",
		New: func() caddy.Module { return new(SQLite) },
	}
}

// Provision validates the configuration and opens (or joins) the database.
// A database that cannot be opened does not fail it (see SQLite).
func (s *SQLite) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if err := s.Validate(); err != nil {
		return err
	}
	c, _ := storage.ParseCompression(s.Compression) // checked by Validate
	s.compression = c
	path := s.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "cache", "cache.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite storage: path %q: %v", path, err)
	}
	abs = filepath.Clean(abs)
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return fmt.Errorf("sqlite storage: path %q is a directory; want the database file's path, e.g. %s", abs, filepath.Join(abs, "cache.db"))
	}
	opts := s.connOptions()
	maxSize, sweep := s.maxSize(), s.sweepInterval()
	key := "sqlite:" + abs
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newDB(abs, opts, maxSize, sweep, s.logger), nil
	})
	if err != nil {
		return fmt.Errorf("sqlite storage %s: %w", abs, err)
	}
	s.poolKey = key
	s.db = v.(*DB)
	if loaded {
		if changed := s.db.setTunables(maxSize, sweep); len(changed) > 0 {
			s.logger.Info("sqlite storage: settings of the shared database changed",
				append([]zap.Field{zap.String("path", abs)}, changed...)...)
		}
		if s.db.opts != opts {
			s.logger.Warn("sqlite storage: the database is already open with other connection settings; the new ones apply once no loaded config uses it",
				zap.String("path", abs), zap.Stringer("open_with", s.db.opts), zap.Stringer("requested", opts))
		}
	}
	return nil
}

func (s *SQLite) connOptions() connOptions {
	o := connOptions{busyTimeout: DefaultBusyTimeout, wal: true, synchronous: "NORMAL"}
	if s.BusyTimeout > 0 {
		o.busyTimeout = time.Duration(s.BusyTimeout)
	}
	if s.WAL != nil {
		o.wal = *s.WAL
	}
	if s.Synchronous != "" {
		o.synchronous = strings.ToUpper(s.Synchronous)
	}
	return o
}

func (s *SQLite) maxSize() int64 {
	if s.MaxSize == nil {
		return DefaultMaxSize
	}
	return *s.MaxSize
}

func (s *SQLite) sweepInterval() time.Duration {
	if s.SweepInterval > 0 {
		return time.Duration(s.SweepInterval)
	}
	return DefaultSweepInterval
}

// Validate checks the configuration.
func (s *SQLite) Validate() error {
	switch strings.ToLower(s.Synchronous) {
	case "", "off", "normal", "full":
	default:
		return fmt.Errorf("sqlite storage: synchronous %q: want off, normal or full", s.Synchronous)
	}
	if _, err := storage.ParseCompression(s.Compression); err != nil {
		return fmt.Errorf("sqlite storage: compression: %v", err)
	}
	if s.MaxSize != nil && *s.MaxSize < 0 {
		return fmt.Errorf("sqlite storage: max_size %d: must not be negative (0 means unlimited)", *s.MaxSize)
	}
	if s.BusyTimeout < 0 {
		return fmt.Errorf("sqlite storage: busy_timeout %v: must not be negative", time.Duration(s.BusyTimeout))
	}
	if s.SweepInterval < 0 {
		return fmt.Errorf("sqlite storage: sweep_interval %v: must not be negative", time.Duration(s.SweepInterval))
	}
	return nil
}

// Cleanup releases this handle's use of the shared database; the last one
// closes it.
func (s *SQLite) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(s.poolKey)
	s.poolKey = ""
	return err
}

// Get implements storage.Store.
func (s *SQLite) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return s.db.Get(ctx, key)
}

// Put implements storage.Store. Entries larger than max_size are not stored
// (storage.ErrTooLarge).
func (s *SQLite) Put(ctx context.Context, key string, e *storage.Entry) error {
	return s.db.Put(ctx, key, e, s.compression)
}

// Delete implements storage.Store.
func (s *SQLite) Delete(ctx context.Context, key string) error {
	return s.db.Delete(ctx, key)
}

// List implements storage.Lister.
func (s *SQLite) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return s.db.List(ctx, prefix, fn)
}

// ListFrom implements storage.OrderedLister.
func (s *SQLite) ListFrom(ctx context.Context, prefix, after string, fn func(string, *storage.Entry) error) error {
	return s.db.ListFrom(ctx, prefix, after, fn)
}

// Stats implements storage.Statser. Evictions counts those made by this
// process since the database was opened.
func (s *SQLite) Stats(ctx context.Context) (storage.Stats, error) {
	return s.db.Stats(ctx)
}

// KeysForTag implements storage.TagIndex with the tags table.
func (s *SQLite) KeysForTag(ctx context.Context, tag string) ([]string, error) {
	return s.db.KeysForTag(ctx, tag)
}

// TagIndexExact implements storage.ExactTagIndex: the tags table is
// written and cleared in the transactions that write and delete entries.
func (s *SQLite) TagIndexExact() {}

// DeleteMany implements storage.BatchDeleter, a few hundred keys per write
// transaction.
func (s *SQLite) DeleteMany(ctx context.Context, keys []string) error {
	return s.db.DeleteMany(ctx, keys)
}

// DeleteExpired implements storage.Expirer: what the periodic sweep does,
// now.
func (s *SQLite) DeleteExpired(ctx context.Context) (int64, error) {
	return s.db.DeleteExpired(ctx)
}

// CountExpired implements storage.ExpiredCounter: what DeleteExpired
// would remove now.
func (s *SQLite) CountExpired(ctx context.Context) (int64, error) {
	return s.db.CountExpired(ctx)
}

// Interface guards.
var (
	_ caddy.Provisioner      = (*SQLite)(nil)
	_ caddy.Validator        = (*SQLite)(nil)
	_ caddy.CleanerUpper     = (*SQLite)(nil)
	_ caddyfile.Unmarshaler  = (*SQLite)(nil)
	_ storage.Store          = (*SQLite)(nil)
	_ storage.Lister         = (*SQLite)(nil)
	_ storage.OrderedLister  = (*SQLite)(nil)
	_ storage.Statser        = (*SQLite)(nil)
	_ storage.TagIndex       = (*SQLite)(nil)
	_ storage.ExactTagIndex  = (*SQLite)(nil)
	_ storage.BatchDeleter   = (*SQLite)(nil)
	_ storage.Expirer        = (*SQLite)(nil)
	_ storage.ExpiredCounter = (*SQLite)(nil)
	_ caddy.Destructor       = (*DB)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (s *SQLite) StorageIdentity() string { return s.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (s *SQLite) Location() string { return strings.TrimPrefix(s.poolKey, "sqlite:") }

var (
	_ storage.Identifier = (*SQLite)(nil)
	_ storage.Locator    = (*SQLite)(nil)
)

// LocksAcrossProcesses tells the handler whether to take the store's locks
// for its misses: only when the file is shared (Shared).
func (s *SQLite) LocksAcrossProcesses() bool { return s.Shared }

// MaxBytes implements storage.MaxSizer: the bound of the live database, or
// the configured one (with its default) before provisioning.
func (s *SQLite) MaxBytes() int64 {
	switch {
	case s.db != nil:
		return s.db.maxSize.Load()
	case s.MaxSize != nil:
		return *s.MaxSize
	}
	return DefaultMaxSize
}
