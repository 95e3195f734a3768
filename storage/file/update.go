package file

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// staleLock is how old a key's lock file must be to be taken over: its
// holder crashed (an update takes milliseconds).
const staleLock = 10 * time.Second

// Update implements storage.Updater for processes sharing the directory:
// a lock file next to the entry (<entry>.lock, created exclusively, which
// walks ignore) serialises the read-modify-write of one key across them.
// A lock file older than staleLock is taken over.
func (f *File) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	lock := f.dir.path(key) + ".lock"
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return err
	}
	for {
		h, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			h.Close()
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > staleLock {
			_ = os.Remove(lock)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(500+rand.IntN(1500)) * time.Microsecond):
		}
	}
	defer os.Remove(lock)
	old, err := f.dir.Get(ctx, key)
	if err != nil {
		old = nil // absent, expired or damaged
	}
	e := fn(old)
	if e == nil {
		return nil
	}
	return f.Put(ctx, key, e)
}

var _ storage.Updater = (*File)(nil)
