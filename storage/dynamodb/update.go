package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// maxUpdateTries bounds the optimistic retries of Update under contention.
const maxUpdateTries = 64

// Update implements storage.Updater with optimistic concurrency: it reads
// the manifest and its version with a strongly consistent read, and writes
// what fn returns through the Put path (parts first, then the manifest),
// with the manifest's PutItem conditional on the version read. When another
// client wrote or deleted the entry meanwhile, the condition fails, the new
// parts are removed, and fn runs again on a fresh read, after a short
// random pause.
func (d *DynamoDB) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	for try := range maxUpdateTries {
		old, v, err := d.read(ctx, key, true)
		switch {
		case err == nil:
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCorrupt):
			old = nil
		default:
			return d.observe(err)
		}
		e := fn(old)
		if e == nil {
			return d.observe(nil)
		}
		err = d.write(ctx, key, e, &v)
		if !errors.Is(err, errConflict) {
			return d.observe(err)
		}
		_ = d.observe(nil)
		if err := sleep(ctx, time.Duration(rand.Int64N(int64(time.Millisecond)*int64(min(try+1, 8))))); err != nil {
			return err
		}
	}
	return fmt.Errorf("dynamodb storage: updating %q: still contended after %d tries", key, maxUpdateTries)
}

var _ storage.Updater = (*DynamoDB)(nil)
