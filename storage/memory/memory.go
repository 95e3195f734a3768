// Package memory is the in-process storage backend, and the hot tier that
// the handler puts in front of the other backends.
package memory

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(Memory{})
}

// DefaultMaxSize is the default byte bound of a memory store.
const DefaultMaxSize = 256 << 20

// Memory keeps entries in the Caddy process, bounded by bytes, with W-TinyLFU
// eviction. Its contents survive config reloads: stores with the same name
// share one cache for as long as any loaded config uses it. Entries are
// shared, not copied: a hit hands out the stored body without a copy.
type Memory struct {
	// Name identifies the cache. Handlers (and reloads) using the same name
	// share one cache. Default: "default".
	Name string `json:"name,omitempty"`
	// MaxSize is the byte bound of the cache: what its entries hold in the
	// process is counted (bodies, keys, headers and the memory it takes
	// to hold them, an estimate measured per entry), so the process holds
	// about this much for the cache, plus the collector's headroom (see
	// the README on GOMEMLIMIT). When a later config changes it, the
	// live cache is resized in place. Default: 256 MiB.
	MaxSize int64 `json:"max_size,omitempty"`

	cache   *Cache
	poolKey string
	logger  *zap.Logger
}

var pool = caddy.NewUsagePool()

// CaddyModule returns the Caddy module information.
func (Memory) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.memory",
		New: func() caddy.Module { return new(Memory) },
	}
}

// Provision obtains (or creates) the shared cache named m.Name.
func (m *Memory) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if m.Name == "" {
		m.Name = "default"
	}
	if m.MaxSize == 0 {
		m.MaxSize = DefaultMaxSize
	}
	if err := m.Validate(); err != nil {
		return err
	}
	key := "memory:" + m.Name
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return New(m.MaxSize), nil
	})
	if err != nil {
		return fmt.Errorf("memory storage %q: %w", m.Name, err)
	}
	m.poolKey = key
	m.cache = v.(*Cache)
	if loaded && m.cache.MaxSize() != m.MaxSize {
		m.logger.Info("resizing shared memory cache",
			zap.String("name", m.Name), zap.Int64("old_max_size", m.cache.MaxSize()), zap.Int64("max_size", m.MaxSize))
		m.cache.SetMaxSize(m.MaxSize)
	}
	return nil
}

// Validate checks the configuration.
func (m *Memory) Validate() error {
	if m.MaxSize < 0 {
		return fmt.Errorf("memory storage: max_size must not be negative, got %d", m.MaxSize)
	}
	return nil
}

// Cleanup releases this handle's reference to the shared cache.
func (m *Memory) Cleanup() error {
	if m.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(m.poolKey)
	m.poolKey = ""
	return err
}

// Get implements storage.Store.
func (m *Memory) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return m.cache.Get(ctx, key)
}

// Put implements storage.Store.
func (m *Memory) Put(ctx context.Context, key string, e *storage.Entry) error {
	return m.cache.Put(ctx, key, e)
}

// Delete implements storage.Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	return m.cache.Delete(ctx, key)
}

// List implements storage.Lister.
func (m *Memory) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return m.cache.List(ctx, prefix, fn)
}

// Stats implements storage.Statser.
func (m *Memory) Stats(ctx context.Context) (storage.Stats, error) {
	return m.cache.Stats(ctx)
}

// Shared returns the live cache behind this handle.
func (m *Memory) Shared() *Cache { return m.cache }

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage memory [<max_size>] {
//		name     <name>
//		max_size <size>
//	}
func (m *Memory) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	once := make(caddyopt.Once)
	if args := d.RemainingArgs(); len(args) > 0 {
		n, err := caddyopt.SizeArgs(d, "max_size", args, caddyopt.NoZero)
		if err != nil {
			return err
		}
		m.MaxSize = n
		once["max_size"] = struct{}{}
	}
	for d.NextBlock(0) {
		if err := once.Check(d, ""); err != nil {
			return err
		}
		var err error
		switch opt := d.Val(); opt {
		case "name":
			m.Name, err = caddyopt.String(d)
		case "max_size":
			m.MaxSize, err = caddyopt.Size(d, caddyopt.NoZero)
		default:
			err = caddyopt.Unknown(d, "memory storage", opt, options)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// options are the block's option names, for typo hints.
var options = []string{"name", "max_size"}

// Cache is the live, shared memory cache. It implements storage.Store,
// storage.Lister and storage.Statser and is safe for concurrent use.
type Cache struct {
	c         *otter.Cache[string, *storage.Entry]
	maxSize   atomic.Int64
	evictions atomic.Int64
	now       func() time.Time
}

// New returns a cache bounded by maxBytes. Call Destruct to stop its
// maintenance goroutines when done with it.
func New(maxBytes int64) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxSize
	}
	mc := &Cache{now: time.Now}
	mc.maxSize.Store(maxBytes)
	mc.c = otter.Must(&otter.Options[string, *storage.Entry]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(key string, e *storage.Entry) uint32 {
			n := weight(key, e)
			if n > math.MaxUint32 {
				return math.MaxUint32
			}
			return uint32(n)
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(en otter.Entry[string, *storage.Entry]) time.Duration {
			if en.Value.Expires.IsZero() {
				return 100 * 365 * 24 * time.Hour
			}
			return time.Until(en.Value.Expires)
		}),
		OnDeletion: func(ev otter.DeletionEvent[string, *storage.Entry]) {
			if ev.Cause == otter.CauseOverflow {
				mc.evictions.Add(1)
			}
		},
	})
	return mc
}

// nodeBytes is what the cache spends on each entry beyond the entry and its
// key: the eviction library's node and its hash table slot (measured).
const nodeBytes = 112

// weight is what an entry under key counts against max_size: an estimate
// of all the memory it holds in the process (storage.Entry.Size), its key
// and the cache's own node.
func weight(key string, e *storage.Entry) int64 {
	return e.Size() + int64(len(key)) + nodeBytes
}

// MaxSize returns the current byte bound.
func (c *Cache) MaxSize() int64 { return c.maxSize.Load() }

// SetMaxSize changes the byte bound in place, evicting as needed.
func (c *Cache) SetMaxSize(n int64) {
	if n <= 0 {
		return
	}
	c.maxSize.Store(n)
	c.c.SetMaximum(uint64(n))
}

// Destruct stops the cache's goroutines and drops its contents.
func (c *Cache) Destruct() error {
	c.c.InvalidateAll()
	c.c.StopAllGoroutines()
	return nil
}

// Get implements storage.Store. The returned entry is shared: do not modify it.
func (c *Cache) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, ok := c.c.GetIfPresent(key)
	if !ok {
		return nil, storage.ErrNotFound
	}
	if e.Expired(c.now()) {
		c.c.Invalidate(key)
		return nil, storage.ErrNotFound
	}
	return e, nil
}

// Put implements storage.Store. The entry is kept by reference.
func (c *Cache) Put(ctx context.Context, key string, e *storage.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Expired(c.now()) {
		c.c.Invalidate(key)
		return nil
	}
	if weight(key, e) > c.maxSize.Load() {
		c.c.Invalidate(key)
		return storage.ErrTooLarge
	}
	c.c.Set(key, e)
	return nil
}

// Delete implements storage.Store.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.c.Invalidate(key)
	return nil
}

// List implements storage.Lister.
func (c *Cache) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	now := c.now()
	for k, e := range c.c.All() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasPrefix(k, prefix) || e.Expired(now) {
			continue
		}
		if err := fn(k, e.Meta()); err != nil {
			if err == storage.ErrStop {
				return nil
			}
			return err
		}
	}
	return nil
}

// Stats implements storage.Statser.
func (c *Cache) Stats(ctx context.Context) (storage.Stats, error) {
	if err := ctx.Err(); err != nil {
		return storage.Stats{}, err
	}
	c.c.CleanUp() // apply pending weight updates
	return storage.Stats{
		Entries:   int64(c.c.EstimatedSize()),
		Bytes:     int64(c.c.WeightedSize()),
		Evictions: c.evictions.Load(),
	}, nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*Memory)(nil)
	_ caddy.Validator       = (*Memory)(nil)
	_ caddy.CleanerUpper    = (*Memory)(nil)
	_ caddyfile.Unmarshaler = (*Memory)(nil)
	_ storage.Store         = (*Memory)(nil)
	_ storage.Lister        = (*Memory)(nil)
	_ storage.Statser       = (*Memory)(nil)
	_ storage.Store         = (*Cache)(nil)
	_ caddy.Destructor      = (*Cache)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (m *Memory) StorageIdentity() string { return m.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (m *Memory) Location() string { return "memory " + m.Name }

var (
	_ storage.Identifier = (*Memory)(nil)
	_ storage.Locator    = (*Memory)(nil)
)

// MaxBytes implements storage.MaxSizer: the bound of the shared cache, or
// the configured one before provisioning.
func (m *Memory) MaxBytes() int64 {
	if m.cache != nil {
		return m.cache.MaxSize()
	}
	return m.MaxSize
}
