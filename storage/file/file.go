// Package file is a storage backend that keeps one file per cache entry in a
// directory on the local disk.
//
// Each entry is written to a temporary file in its final directory and
// renamed into place, so a reader sees the old entry or the new one, never a
// partial file, even with several processes sharing the directory. File
// names are the hex SHA-256 of the key, sharded into two levels of
// subdirectories (ab/cd/abcd…); each file starts with a small header holding
// the key and the expiry, followed by the shared storage encoding.
package file

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(File{})
}

// Defaults.
const (
	// DefaultMaxSize is the default bound on the bytes of entry files.
	DefaultMaxSize = 1 << 30
	// DefaultSweepInterval is how often the directory is swept by default.
	// A sweep reads the header of every file, so it is less frequent than
	// the SQLite store's.
	DefaultSweepInterval = 5 * time.Minute
)

// File stores cache entries as files under a directory.
//
// Expired entries are never returned and their files are removed by a
// periodic sweep, which also removes damaged files and temporary files left
// by a crash. Past max_size, the least recently used files (by modification
// time, refreshed at most once a minute on a hit) are removed down to 90% of
// it.
//
// Handlers and config reloads naming the same directory share one janitor;
// max_size and sweep_interval are applied to it by every config that loads
// it (the latest wins). Several processes may share the directory: writes
// are atomic renames; each process counts the bytes it writes and recounts
// the directory at each sweep, so with several writers the size bound is
// approximate between sweeps.
type File struct {
	// Path of the directory holding the entries. It is created if missing.
	// Default: cache/files in Caddy's data directory.
	Path string `json:"path,omitempty"`
	// MaxSize bounds the bytes of entry files (not counting directories
	// and file-system block overhead). 0 means unlimited. Default: 1 GiB.
	MaxSize *int64 `json:"max_size,omitempty"`
	// SweepInterval is how often expired, damaged and abandoned files are
	// removed and the stored bytes recounted. Default: 5m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// Compression of stored bodies: "zstd" (bodies of 1 KiB or more that
	// are not already content-encoded and that shrink) or "off".
	// Default: zstd.
	Compression string `json:"compression,omitempty"`
	// Fsync flushes each entry file (and its directory) to stable storage
	// before it becomes visible. Without it, a power cut can lose recent
	// entries but never exposes a partial one. Default: false.
	Fsync bool `json:"fsync,omitempty"`

	dir         *Dir
	poolKey     string
	compression storage.Compression
	logger      *zap.Logger
}

// pool holds the live directories, keyed by "file:" + absolute path.
var pool = caddy.NewUsagePool()

// CaddyModule returns the Caddy module information.
func (File) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.file",
		New: func() caddy.Module { return new(File) },
	}
}

// Provision validates the configuration and opens (or joins) the directory.
func (f *File) Provision(ctx caddy.Context) error {
	f.logger = ctx.Logger()
	if err := f.Validate(); err != nil {
		return err
	}
	f.compression, _ = storage.ParseCompression(f.Compression) // checked by Validate
	path := f.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "cache", "files")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("file storage: path %q: %v", path, err)
	}
	abs = filepath.Clean(abs)
	maxSize, sweep := f.maxSize(), f.sweepInterval()
	key := "file:" + abs
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return openDir(abs, maxSize, sweep, f.logger)
	})
	if err != nil {
		return fmt.Errorf("file storage %s: %w", abs, err)
	}
	f.poolKey = key
	f.dir = v.(*Dir)
	if loaded {
		if changed := f.dir.setTunables(maxSize, sweep); len(changed) > 0 {
			f.logger.Info("file storage: settings of the shared directory changed",
				append([]zap.Field{zap.String("path", abs)}, changed...)...)
		}
	}
	return nil
}

func (f *File) maxSize() int64 {
	if f.MaxSize == nil {
		return DefaultMaxSize
	}
	return *f.MaxSize
}

func (f *File) sweepInterval() time.Duration {
	if f.SweepInterval > 0 {
		return time.Duration(f.SweepInterval)
	}
	return DefaultSweepInterval
}

// Validate checks the configuration.
func (f *File) Validate() error {
	if _, err := storage.ParseCompression(f.Compression); err != nil {
		return fmt.Errorf("file storage: compression: %v", err)
	}
	if f.MaxSize != nil && *f.MaxSize < 0 {
		return fmt.Errorf("file storage: max_size %d: must not be negative (0 means unlimited)", *f.MaxSize)
	}
	if f.SweepInterval < 0 {
		return fmt.Errorf("file storage: sweep_interval %v: must not be negative", time.Duration(f.SweepInterval))
	}
	return nil
}

// Cleanup releases this handle's use of the shared directory; the last one
// stops its janitor.
func (f *File) Cleanup() error {
	if f.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(f.poolKey)
	f.poolKey = ""
	return err
}

// Get implements storage.Store.
func (f *File) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return f.dir.Get(ctx, key)
}

// Put implements storage.Store. Entries larger than max_size are not stored
// (storage.ErrTooLarge).
func (f *File) Put(ctx context.Context, key string, e *storage.Entry) error {
	return f.dir.Put(ctx, key, e, f.compression, f.Fsync)
}

// Delete implements storage.Store.
func (f *File) Delete(ctx context.Context, key string) error {
	return f.dir.Delete(ctx, key)
}

// List implements storage.Lister. It reads every file's header, and the
// whole file of those matching prefix.
func (f *File) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return f.dir.List(ctx, prefix, fn)
}

// Stats implements storage.Statser. The counts are this process's view: see
// the type's comment.
func (f *File) Stats(ctx context.Context) (storage.Stats, error) {
	return f.dir.Stats(ctx)
}

// DeleteExpired implements storage.Expirer: a sweep, now.
func (f *File) DeleteExpired(ctx context.Context) (int64, error) {
	return f.dir.DeleteExpired(ctx)
}

// CountExpired implements storage.ExpiredCounter: what DeleteExpired
// would remove now.
func (f *File) CountExpired(ctx context.Context) (int64, error) {
	return f.dir.CountExpired(ctx)
}

// Interface guards.
var (
	_ caddy.Provisioner      = (*File)(nil)
	_ caddy.Validator        = (*File)(nil)
	_ caddy.CleanerUpper     = (*File)(nil)
	_ caddyfile.Unmarshaler  = (*File)(nil)
	_ storage.Store          = (*File)(nil)
	_ storage.Lister         = (*File)(nil)
	_ storage.Statser        = (*File)(nil)
	_ storage.Expirer        = (*File)(nil)
	_ storage.ExpiredCounter = (*File)(nil)
	_ caddy.Destructor       = (*Dir)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (f *File) StorageIdentity() string { return f.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (f *File) Location() string { return strings.TrimPrefix(f.poolKey, "file:") }

var (
	_ storage.Identifier = (*File)(nil)
	_ storage.Locator    = (*File)(nil)
)

// MaxBytes implements storage.MaxSizer: the bound of the live directory, or
// the configured one (with its default) before provisioning.
func (f *File) MaxBytes() int64 {
	switch {
	case f.dir != nil:
		return f.dir.maxSize.Load()
	case f.MaxSize != nil:
		return *f.MaxSize
	}
	return DefaultMaxSize
}
