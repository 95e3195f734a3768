package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddycache/caddy-cache/storage"
)

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 500

// fetchBatchBytes bounds the values fetched by one pipeline in List, so a
// listing holds at most about this much (or one larger entry) in memory.
const fetchBatchBytes = 8 << 20

// Get implements storage.Store with one GET.
// LogsHealth implements storage.HealthLogger: this store logs one Warn when
// its server stops answering and one Info when it is back.
func (r *Redis) LogsHealth() bool { return true }

func (r *Redis) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := r.shared.rdb.Get(ctx, r.prefix+key).Bytes()
	r.observe(err)
	if errors.Is(err, goredis.Nil) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, callErr(ctx, "GET", err)
	}
	e, err := storage.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("redis storage: %w", err)
	}
	if e.Expired(time.Now()) {
		return nil, storage.ErrNotFound
	}
	return e, nil
}

// Put implements storage.Store with one SET … PX: the entry replaces the
// previous value atomically. An entry already expired deletes the key; one
// whose encoding exceeds max_entry_size deletes the key and returns an error
// wrapping storage.ErrTooLarge.
func (r *Redis) Put(ctx context.Context, key string, e *storage.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	if e.Expired(now) {
		return r.Delete(ctx, key)
	}
	b := storage.Encode(e, r.compression)
	if int64(len(b)) > r.MaxEntrySize {
		// The old value must not outlive the response that replaced it.
		if err := r.Delete(ctx, key); err != nil {
			return err
		}
		return fmt.Errorf("redis storage: %w: encoded entry is %d bytes, max_entry_size is %d",
			storage.ErrTooLarge, len(b), r.MaxEntrySize)
	}
	var ttl time.Duration // 0: no expiry
	if !e.Expires.IsZero() {
		ttl = max(e.Expires.Sub(now)+time.Duration(r.StaleGrace), time.Millisecond)
	}
	err := r.shared.rdb.Set(ctx, r.prefix+key, b, ttl).Err()
	r.observe(err)
	if err != nil {
		return callErr(ctx, "SET", err)
	}
	return nil
}

// Delete implements storage.Store with UNLINK (the memory of a large value
// is freed in the background by Redis).
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := r.shared.rdb.Unlink(ctx, r.prefix+key).Err()
	r.observe(err)
	if err != nil {
		return callErr(ctx, "UNLINK", err)
	}
	return nil
}

// List implements storage.Lister by SCANning the namespace (on every master
// in Cluster) with a MATCH on the key prefix, then reading each value to
// decode its metadata. It costs one pass over the namespace's keys plus
// reading every matching value (values are fetched in pipelines of about
// 8 MiB), so it is meant for inspection and purges, not for the request
// path. Corrupt entries are skipped.
func (r *Redis) List(ctx context.Context, prefix string, fn func(key string, meta *storage.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := r.scan(ctx, globEscape(r.prefix+prefix)+"*", func(keys []string) error {
		lens, err := r.strlens(ctx, keys)
		if err != nil {
			return err
		}
		return r.fetch(ctx, keys, lens, func(rkey string, val []byte) error {
			meta, err := storage.DecodeMeta(val)
			if err != nil || meta.Expired(time.Now()) {
				return nil // corrupt (the handler deletes it on Get) or expired
			}
			return fn(strings.TrimPrefix(rkey, r.prefix), meta)
		})
	})
	if errors.Is(err, storage.ErrStop) {
		return nil
	}
	return err
}

// Stats implements storage.Statser. Entries counts the keys of the
// namespace and Bytes sums their encoded (compressed) sizes, from one SCAN
// of the namespace (on every master in Cluster) and a STRLEN per key: its
// cost grows with the number of entries, so call it for inspection, not per
// request. Entries kept past their Expires by stale_grace are counted.
// Evictions is Redis's evicted_keys (summed over the masters): server-wide,
// since Redis does not count evictions per key prefix.
func (r *Redis) Stats(ctx context.Context) (storage.Stats, error) {
	var st storage.Stats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	err := r.scan(ctx, globEscape(r.prefix)+"*", func(keys []string) error {
		lens, err := r.strlens(ctx, keys)
		if err != nil {
			return err
		}
		for _, n := range lens {
			if n > 0 { // 0: deleted since the SCAN
				st.Entries++
				st.Bytes += n
			}
		}
		return nil
	})
	if err != nil {
		return storage.Stats{}, err
	}
	err = r.forEachNode(ctx, func(node goredis.Cmdable) error {
		info, err := node.Info(ctx, "stats").Result()
		r.observe(err)
		if err != nil {
			return callErr(ctx, "INFO", err)
		}
		st.Evictions += infoField(info, "evicted_keys")
		return nil
	})
	if err != nil {
		return storage.Stats{}, err
	}
	return st, nil
}

// Clear deletes every entry of this store's namespace (SCAN, then UNLINK in
// batches, on every master in Cluster). Other namespaces on the same Redis
// are left alone.
func (r *Redis) Clear(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.scan(ctx, globEscape(r.prefix)+"*", func(keys []string) error {
		_, err := r.shared.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			return nil
		})
		r.observe(err)
		if err != nil {
			return callErr(ctx, "UNLINK", err)
		}
		return nil
	})
}

// Client returns the shared go-redis client behind this store, for tests
// and tools. Do not close it.
func (r *Redis) Client() goredis.UniversalClient { return r.shared.rdb }

// KeyPrefix returns the key prefix of this store's entries, "<namespace>:e:".
func (r *Redis) KeyPrefix() string { return r.prefix }

func (r *Redis) observe(err error) { r.shared.observe(r.logger, err) }

// callErr wraps the error of a Redis call. When the caller's ctx ended, the
// result also wraps ctx.Err(), so errors.Is(err, context.DeadlineExceeded)
// holds whatever go-redis reported.
func callErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redis storage %s: %w (%w)", op, cerr, err)
	}
	return fmt.Errorf("redis storage %s: %w", op, err)
}

// forEachNode calls fn for every master in Cluster, or once for the client
// otherwise. Calls are sequential.
func (r *Redis) forEachNode(ctx context.Context, fn func(node goredis.Cmdable) error) error {
	cc, ok := r.shared.rdb.(*goredis.ClusterClient)
	if !ok {
		return fn(r.shared.rdb)
	}
	var (
		mu      sync.Mutex
		masters []*goredis.Client
	)
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
		mu.Lock()
		masters = append(masters, c)
		mu.Unlock()
		return nil
	})
	r.observe(err)
	if err != nil {
		return callErr(ctx, "CLUSTER SLOTS", err)
	}
	for _, m := range masters {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// scan calls fn with batches of the keys matching match, on every master in
// Cluster, each key once (SCAN itself may return a key twice).
func (r *Redis) scan(ctx context.Context, match string, fn func(keys []string) error) error {
	seen := map[string]struct{}{}
	return r.forEachNode(ctx, func(node goredis.Cmdable) error {
		var cursor uint64
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
			r.observe(err)
			if err != nil {
				return callErr(ctx, "SCAN", err)
			}
			fresh := keys[:0]
			for _, k := range keys {
				if _, dup := seen[k]; !dup {
					seen[k] = struct{}{}
					fresh = append(fresh, k)
				}
			}
			if len(fresh) > 0 {
				if err := fn(fresh); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
}

// strlens returns the value length of each key (0 when it no longer exists).
func (r *Redis) strlens(ctx context.Context, keys []string) ([]int64, error) {
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := r.shared.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.StrLen(ctx, k)
		}
		return nil
	})
	r.observe(err)
	if err != nil {
		return nil, callErr(ctx, "STRLEN", err)
	}
	lens := make([]int64, len(keys))
	for i, c := range cmds {
		lens[i] = c.Val()
	}
	return lens, nil
}

// fetch reads the values of keys in pipelines of about fetchBatchBytes and
// calls visit for each one still present, in order.
func (r *Redis) fetch(ctx context.Context, keys []string, lens []int64, visit func(rkey string, val []byte) error) error {
	for start := 0; start < len(keys); {
		end, size := start, int64(0)
		for end < len(keys) && (end == start || size+lens[end] <= fetchBatchBytes) {
			size += lens[end]
			end++
		}
		batch := keys[start:end]
		start = end
		cmds := make([]*goredis.StringCmd, len(batch))
		_, err := r.shared.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if errors.Is(err, goredis.Nil) {
			err = nil // some key was deleted since the SCAN
		}
		r.observe(err)
		if err != nil {
			return callErr(ctx, "GET", err)
		}
		for i, c := range cmds {
			val, err := c.Bytes()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			if err != nil {
				return callErr(ctx, "GET", err)
			}
			if err := visit(batch[i], val); err != nil {
				return err
			}
		}
	}
	return nil
}

// globEscape escapes the glob metacharacters of SCAN MATCH so s matches
// literally.
func globEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// infoField returns an integer field of an INFO reply (0 when absent).
func infoField(info, name string) int64 {
	for line := range strings.SplitSeq(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// Interface guards.
var (
	_ storage.Store   = (*Redis)(nil)
	_ storage.Lister  = (*Redis)(nil)
	_ storage.Statser = (*Redis)(nil)
)
