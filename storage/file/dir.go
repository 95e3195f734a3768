package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/sweeper"
)

// tempPrefix starts the names of files being written. Leftovers of a crash
// older than staleTemp are removed by the sweep.
const (
	tempPrefix = ".tmp-"
	staleTemp  = time.Hour
)

// Dir is the live state shared by every handle on one directory: the size
// counters, the bounds, and the janitor goroutine that sweeps expired files
// and evicts past max_size. It lives in the package UsagePool, keyed by the
// directory's absolute path.
//
// The counters are exact for what this process does between sweeps; each
// sweep recounts the files on disk, so writes by other processes sharing the
// directory are picked up at the next sweep, and eviction may overshoot
// max_size by what they wrote meanwhile.
type Dir struct {
	root   string
	logger *zap.Logger

	maxSize   atomic.Int64 // bytes; 0 means unlimited
	evictions atomic.Int64
	skew      atomic.Int64 // added to the wall clock; tests move time forward with it

	// accessEvery is how stale a file's modification time may get before a
	// hit refreshes it (the eviction order). Tests set it to 0 before use.
	accessEvery time.Duration

	cmu     sync.Mutex // guards the counters
	entries int64
	bytes   int64

	maintMu sync.Mutex // one sweep or eviction at a time

	// loop is the janitor: a first count of the files (Ready), a sweep
	// every sweep_interval, an eviction when max_size shrank (Kick); its
	// context, cancelled by Destruct, stops a walk in progress.
	loop *sweeper.Loop
}

// openDir creates root if needed and starts the janitor, whose first job is
// to count what is already stored. It does not wait for that count.
func openDir(root string, maxSize int64, sweep time.Duration, logger *zap.Logger) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("creating directory: %w", err)
	}
	probe, err := os.CreateTemp(root, tempPrefix+"probe-*")
	if err != nil {
		return nil, fmt.Errorf("directory not writable: %w", err)
	}
	probe.Close()
	os.Remove(probe.Name())
	d := &Dir{
		root:        root,
		logger:      logger,
		accessEvery: time.Minute,
		loop:        sweeper.New(sweep, 0),
	}
	d.maxSize.Store(maxSize)
	sweepJob := func(context.Context) error { return d.sweep() }
	d.loop.Start(sweeper.Jobs{
		First: sweepJob,
		Round: sweepJob,
		Kicked: func(context.Context) error {
			if d.over() {
				d.evict()
			}
			return sweeper.ErrSkipped // evict logs its own failure
		},
		Report: &sweeper.Health{
			Logger: logger, Failed: "file storage sweep failed", Recovered: "file storage sweep works again",
			Fields: []zap.Field{zap.String("path", root)},
		},
	})
	return d, nil
}

func (d *Dir) now() time.Time {
	return time.Now().Add(time.Duration(d.skew.Load()))
}

// setTunables applies the settings any handle may change, and reports what
// changed.
func (d *Dir) setTunables(maxSize int64, sweep time.Duration) (changed []zap.Field) {
	if old := d.maxSize.Swap(maxSize); old != maxSize {
		changed = append(changed, zap.Int64("old_max_size", old), zap.Int64("max_size", maxSize))
		d.loop.Kick()
	}
	if old := d.loop.SetInterval(sweep); old != sweep {
		changed = append(changed, zap.Duration("old_sweep_interval", old), zap.Duration("sweep_interval", sweep))
	}
	return changed
}

// Destruct stops the janitor. It implements caddy.Destructor.
func (d *Dir) Destruct() error {
	d.loop.Stop()
	return nil
}

func (d *Dir) path(key string) string {
	return filepath.Join(d.root, relPath(key))
}

func (d *Dir) count(entries, bytes int64) {
	d.cmu.Lock()
	d.entries += entries
	d.bytes += bytes
	d.cmu.Unlock()
}

// Get reads, checks and decodes the file of key.
func (d *Dir) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := d.path(key)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: opening entry: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file storage: reading entry: %w", err)
	}
	// Entry files are never written in place (only replaced by rename),
	// so the open file keeps the size it had at Stat.
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("file storage: reading entry: %w", err)
	}
	now := d.now()
	k, expires, enc, err := parseFile(b)
	if err != nil {
		return nil, err
	}
	if k != key {
		return nil, storage.ErrNotFound // another key with the same hash
	}
	if expires != 0 && expires <= now.UnixNano() {
		return nil, storage.ErrNotFound
	}
	e, err := storage.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("file storage: %w", err)
	}
	if e.Expired(now) {
		return nil, storage.ErrNotFound
	}
	if now.Sub(fi.ModTime()) >= d.accessEvery {
		// The modification time is the eviction order: refresh it, at
		// most once per accessEvery per entry.
		_ = os.Chtimes(p, time.Time{}, now)
	}
	return e, nil
}

// Put writes key's file through a temporary file renamed into place.
func (d *Dir) Put(ctx context.Context, key string, e *storage.Entry, c storage.Compression, fsync bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := d.now()
	if e.Expired(now) {
		return d.Delete(ctx, key)
	}
	if len(key) > maxKey {
		return fmt.Errorf("file storage: key of %d bytes: %w", len(key), storage.ErrTooLarge)
	}
	var expires int64
	if !e.Expires.IsZero() {
		expires = e.Expires.UnixNano()
	}
	data := encodeFile(key, expires, storage.Encode(e, c))
	if max := d.maxSize.Load(); max > 0 && int64(len(data)) > max {
		if err := d.Delete(ctx, key); err != nil {
			return err
		}
		return storage.ErrTooLarge
	}
	p := d.path(key)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("file storage: creating directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("file storage: creating file: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil && fsync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Set the eviction clock explicitly: file-system timestamps are
		// coarser than the clock Get uses to refresh it.
		err = os.Chtimes(tmp.Name(), time.Time{}, now)
	}
	if err == nil {
		err = ctx.Err() // last chance to abandon the write
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("file storage: writing file: %w", err)
	}
	var oldSize int64 = -1
	if fi, err := os.Lstat(p); err == nil {
		oldSize = fi.Size()
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("file storage: renaming file into place: %w", err)
	}
	if fsync {
		if df, err := os.Open(dir); err == nil {
			_ = df.Sync()
			df.Close()
		}
	}
	if oldSize >= 0 {
		d.count(0, int64(len(data))-oldSize)
	} else {
		d.count(1, int64(len(data)))
	}
	if d.over() {
		d.evict()
	}
	return nil
}

func (d *Dir) over() bool {
	max := d.maxSize.Load()
	if max <= 0 {
		return false
	}
	d.cmu.Lock()
	defer d.cmu.Unlock()
	return d.bytes > max
}

// Delete removes key's file.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := d.path(key)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("file storage: deleting entry: %w", err)
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("file storage: deleting entry: %w", err)
	}
	d.count(-1, -fi.Size())
	return nil
}

// fileInfo is what a walk learns about one entry file.
type fileInfo struct {
	path    string
	size    int64
	mtime   time.Time
	expires int64 // 0: never
	damaged bool  // the header is not an entry header
}

// walk visits the entry files (root/xx/yy/<64 hex>), removing temporary
// files left by a crash. Other files and directories are ignored.
func (d *Dir) walk(ctx context.Context, fn func(fileInfo) error) error {
	level1, err := os.ReadDir(d.root)
	if err != nil {
		return err
	}
	stale := time.Now().Add(-staleTemp)
	for _, l1 := range level1 {
		if !l1.IsDir() || !isHex(l1.Name(), 2) {
			continue
		}
		p1 := filepath.Join(d.root, l1.Name())
		level2, err := os.ReadDir(p1)
		if err != nil {
			continue // removed meanwhile, or unreadable: skip
		}
		for _, l2 := range level2 {
			if !l2.IsDir() || !isHex(l2.Name(), 2) {
				continue
			}
			p2 := filepath.Join(p1, l2.Name())
			files, err := os.ReadDir(p2)
			if err != nil {
				continue
			}
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					return err
				}
				n := f.Name()
				if strings.HasPrefix(n, tempPrefix) {
					if fi, err := f.Info(); err == nil && fi.ModTime().Before(stale) {
						os.Remove(filepath.Join(p2, n))
					}
					continue
				}
				if !f.Type().IsRegular() || !isHex(n, 64) || n[0:2] != l1.Name() || n[2:4] != l2.Name() {
					continue
				}
				p := filepath.Join(p2, n)
				fi, err := f.Info()
				if err != nil {
					continue // removed meanwhile
				}
				exp, damaged, err := readExpires(p)
				if err != nil {
					continue // removed meanwhile, or unreadable now: leave it
				}
				if err := fn(fileInfo{path: p, size: fi.Size(), mtime: fi.ModTime(), expires: exp, damaged: damaged}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readExpires reads the expiry from a file's header. damaged means the
// file could be read but does not start with an entry header.
func readExpires(p string) (expires int64, damaged bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var b [fixedLen]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, true, nil
		}
		return 0, false, err
	}
	exp, _, err := parseFixed(b[:])
	return exp, err != nil, nil
}

// expired reports whether a walk should remove the file.
func (fi fileInfo) expired(now int64) bool {
	return fi.damaged || (fi.expires != 0 && fi.expires <= now)
}

// removeIfUnchanged removes the file seen by a walk unless it has been
// replaced since (a fresh entry is not to be swept for its predecessor).
func removeIfUnchanged(fi fileInfo) bool {
	now, err := os.Lstat(fi.path)
	if err != nil || now.Size() != fi.size || !now.ModTime().Equal(fi.mtime) {
		return false
	}
	return os.Remove(fi.path) == nil
}

// maintain walks the files, removes expired and unreadable ones, recounts,
// and evicts the least recently used down to 90% of max_size when over it.
// It returns how many expired or unreadable files it removed.
func (d *Dir) maintain(ctx context.Context) (removed int64, err error) {
	d.cmu.Lock()
	startEntries, startBytes := d.entries, d.bytes
	d.cmu.Unlock()

	now := d.now().UnixNano()
	var live []fileInfo
	var total int64
	err = d.walk(ctx, func(fi fileInfo) error {
		if fi.expired(now) && removeIfUnchanged(fi) {
			removed++
			return nil
		}
		live = append(live, fi)
		total += fi.size
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("walking %s: %w", d.root, err)
	}
	if max := d.maxSize.Load(); max > 0 && total > max {
		target := max / 10 * 9
		slices.SortFunc(live, func(a, b fileInfo) int { return a.mtime.Compare(b.mtime) })
		kept := live[:0]
		for _, fi := range live {
			if total > target && removeIfUnchanged(fi) {
				total -= fi.size
				d.evictions.Add(1)
				continue
			}
			kept = append(kept, fi)
		}
		live = kept
	}
	// The walk's count, plus what this process changed while it ran
	// (changes the walk also saw are counted twice until the next sweep).
	d.cmu.Lock()
	d.entries = int64(len(live)) + d.entries - startEntries
	d.bytes = total + d.bytes - startBytes
	d.cmu.Unlock()
	return removed, nil
}

// evict runs maintain for a Put that took the stored bytes over max_size,
// unless a sweep or eviction is already running.
func (d *Dir) evict() {
	if !d.maintMu.TryLock() {
		return
	}
	defer d.maintMu.Unlock()
	if !d.over() {
		return
	}
	if _, err := d.maintain(d.loop.Context()); err != nil && d.loop.Context().Err() == nil {
		d.logger.Warn("file storage: evicting to max_size", zap.String("path", d.root), zap.Error(err))
	}
}

func (d *Dir) sweep() error {
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	_, err := d.maintain(d.loop.Context())
	return err
}

// DeleteExpired runs a sweep now and returns how many expired (or damaged)
// files it removed. It stops early when ctx is done.
func (d *Dir) DeleteExpired(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.loop.Context(), cancel) // and when the store is destroyed
	defer stop()
	n, err := d.maintain(ctx)
	if err != nil {
		return n, fmt.Errorf("file storage: %w", err)
	}
	return n, nil
}

// CountExpired returns how many expired (or damaged) files a sweep would
// remove now, removing nothing.
func (d *Dir) CountExpired(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := d.now().UnixNano()
	var n int64
	err := d.walk(ctx, func(fi fileInfo) error {
		if fi.expired(now) {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("file storage: walking %s: %w", d.root, err)
	}
	return n, nil
}

// List calls fn for every unexpired entry whose key starts with prefix.
// Unreadable files are skipped.
func (d *Dir) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := d.now()
	err := d.walk(ctx, func(fi fileInfo) error {
		if fi.expired(now.UnixNano()) {
			return nil
		}
		key, enc, err := readIfPrefix(fi.path, prefix)
		if err != nil || enc == nil {
			return nil // removed meanwhile, damaged, or another prefix
		}
		meta, err := storage.DecodeMeta(enc)
		if err != nil || meta.Expired(now) {
			return nil
		}
		return fn(key, meta)
	})
	if errors.Is(err, storage.ErrStop) {
		return nil
	}
	return err
}

// readIfPrefix reads the file at p if its key starts with prefix, returning
// the key and the encoded entry; enc is nil for another prefix. Only the
// header is read for a file of another prefix.
func readIfPrefix(p, prefix string) (key string, enc []byte, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	fixed := make([]byte, fixedLen)
	if _, err := io.ReadFull(f, fixed); err != nil {
		return "", nil, err
	}
	_, keyLen, err := parseFixed(fixed)
	if err != nil {
		return "", nil, err
	}
	rest := make([]byte, keyLen+crcLen)
	if _, err := io.ReadFull(f, rest); err != nil {
		return "", nil, err
	}
	if !strings.HasPrefix(string(rest[:keyLen]), prefix) {
		return "", nil, nil
	}
	body, err := io.ReadAll(f)
	if err != nil {
		return "", nil, err
	}
	key, _, enc, err = parseFile(append(append(fixed, rest...), body...))
	if err != nil {
		return "", nil, err
	}
	return key, enc, nil
}

// Stats reports the counted entries and bytes.
func (d *Dir) Stats(ctx context.Context) (storage.Stats, error) {
	if err := ctx.Err(); err != nil {
		return storage.Stats{}, err
	}
	d.cmu.Lock()
	st := storage.Stats{Entries: max(d.entries, 0), Bytes: max(d.bytes, 0)}
	d.cmu.Unlock()
	st.Evictions = d.evictions.Load()
	return st, nil
}
