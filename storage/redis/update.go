package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddycache/caddy-cache/storage"
)

// maxUpdateTries bounds the optimistic retries of Update under contention.
const maxUpdateTries = 64

// Update implements storage.Updater with WATCH, GET and a MULTI/EXEC SET:
// the write fails and fn runs again when another client changed the key
// between the read and the write.
func (r *Redis) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	rkey := r.prefix + key
	for try := range maxUpdateTries {
		err := r.shared.rdb.Watch(ctx, func(tx *goredis.Tx) error {
			var old *storage.Entry
			b, err := tx.Get(ctx, rkey).Bytes()
			switch {
			case err == nil:
				if e, derr := storage.Decode(b); derr == nil && !e.Expired(time.Now()) {
					old = e
				}
			case !errors.Is(err, goredis.Nil):
				return err
			}
			e := fn(old)
			if e == nil {
				return nil
			}
			enc := storage.Encode(e, r.compression)
			if int64(len(enc)) > r.MaxEntrySize {
				return fmt.Errorf("redis storage: %w: encoded entry is %d bytes", storage.ErrTooLarge, len(enc))
			}
			var ttl time.Duration
			if !e.Expires.IsZero() {
				ttl = max(time.Until(e.Expires)+time.Duration(r.StaleGrace), time.Millisecond)
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, rkey, enc, ttl)
				return nil
			})
			return err
		}, rkey)
		if errors.Is(err, goredis.TxFailedErr) {
			// changed meanwhile: read it again, after a short random
			// pause so that contending writers spread out
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(time.Millisecond) * int64(min(try+1, 8))))):
			}
			continue
		}
		r.observe(err)
		if err != nil {
			return callErr(ctx, "WATCH/MULTI", err)
		}
		return nil
	}
	return fmt.Errorf("redis storage: updating %q: still contended after %d tries", key, maxUpdateTries)
}

var _ storage.Updater = (*Redis)(nil)
