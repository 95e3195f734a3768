package cache

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(new(sweepStore))
	caddy.RegisterModule(new(countingSweepStore))
}

// sweepStore is a test-only backend that keeps expired entries until a
// sweep removes them, as the SQLite, file, MongoDB, GridFS and DynamoDB
// stores do: Get and List never show an expired entry (by the store's
// clock, which a test sets to its fake clock) and DeleteExpired removes
// them; it cannot count them without removing them (countingSweepStore
// can). Stores with the same name share their entries.
type sweepStore struct {
	Name string `json:"name,omitempty"`

	data *sweepData
}

type sweepData struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string][]byte
}

var sweepStores sync.Map // name -> *sweepData

func (*sweepStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.sweepnocount", New: func() caddy.Module { return new(sweepStore) }}
}

func (s *sweepStore) Provision(caddy.Context) error {
	v, _ := sweepStores.LoadOrStore(s.Name, &sweepData{now: time.Now, entries: map[string][]byte{}})
	s.data = v.(*sweepData)
	return nil
}

// setClock makes the store tell expiry by now.
func (s *sweepStore) setClock(now func() time.Time) {
	s.data.mu.Lock()
	s.data.now = now
	s.data.mu.Unlock()
}

// held counts every entry the store holds, expired or not.
func (s *sweepStore) held() int {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	return len(s.data.entries)
}

func (s *sweepStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	s.data.mu.Lock()
	b, ok := s.data.entries[key]
	now := s.data.now()
	s.data.mu.Unlock()
	if !ok {
		return nil, storage.ErrNotFound
	}
	e, err := storage.Decode(b)
	if err != nil {
		return nil, err
	}
	if e.Expired(now) {
		return nil, storage.ErrNotFound
	}
	return e, nil
}

func (s *sweepStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	b := storage.Encode(e, storage.CompressionOff)
	s.data.mu.Lock()
	s.data.entries[key] = b
	s.data.mu.Unlock()
	return nil
}

func (s *sweepStore) Delete(ctx context.Context, key string) error {
	s.data.mu.Lock()
	delete(s.data.entries, key)
	s.data.mu.Unlock()
	return nil
}

func (s *sweepStore) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	s.data.mu.Lock()
	now := s.data.now()
	var keys []string
	var metas []*storage.Entry
	for k, b := range s.data.entries {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		m, err := storage.DecodeMeta(b)
		if err != nil || m.Expired(now) {
			continue
		}
		keys, metas = append(keys, k), append(metas, m)
	}
	s.data.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, metas[i]); err != nil {
			if err == storage.ErrStop {
				return nil
			}
			return err
		}
	}
	return nil
}

// expired returns the keys of the expired entries; call with mu held.
func (d *sweepData) expired() []string {
	now := d.now()
	var out []string
	for k, b := range d.entries {
		if m, err := storage.DecodeMeta(b); err == nil && m.Expired(now) {
			out = append(out, k)
		}
	}
	return out
}

func (s *sweepStore) DeleteExpired(ctx context.Context) (int64, error) {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	keys := s.data.expired()
	for _, k := range keys {
		delete(s.data.entries, k)
	}
	return int64(len(keys)), nil
}

// countingSweepStore is a sweepStore that can also count what a sweep
// would remove (the optional expiredCounter).
type countingSweepStore struct{ sweepStore }

func (*countingSweepStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.sweeptest", New: func() caddy.Module { return new(countingSweepStore) }}
}

func (c *countingSweepStore) CountExpired(ctx context.Context) (int64, error) {
	c.data.mu.Lock()
	defer c.data.mu.Unlock()
	return int64(len(c.data.expired())), nil
}

// Interface guards.
var (
	_ storage.Store   = (*sweepStore)(nil)
	_ storage.Lister  = (*sweepStore)(nil)
	_ storage.Expirer = (*sweepStore)(nil)
	_ expiredCounter  = (*countingSweepStore)(nil)
)
