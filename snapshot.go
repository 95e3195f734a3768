package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
)

// Snapshots move a handler's entries out of one cache and into another, in
// the stream format of storage.SnapshotWriter (docs/snapshot-format.md):
//
//	GET  /cache/snapshot?handler=&prefix=&host=&tag=
//	     streams the handler's live entries (with a filter, those that
//	     match it, plus the Vary indexes of the variants that match);
//	     a failure after the stream started leaves it without its trailer
//	     (readers report it truncated) and sets the HTTP trailer
//	     Cache-Snapshot-Error.
//	POST /cache/snapshot?handler=
//	     imports a stream into the handler's store and answers with
//	     importReport: 200 when the whole stream was read, 400 when it is
//	     damaged (the records before the damage are imported), 500 when
//	     the store failed.
//
// handler may be left out when one cache handler is live. Keys travel
// without the handler's scope (the c2:<hash>: prefix of its name) and are
// scoped again on import, so a snapshot taken from one handler imports into
// a handler of another name, on another backend. A Vary index lists its
// variants' keys the same way.

// snapshotErrorTrailer is the HTTP trailer that carries why an export
// stopped before its end.
const snapshotErrorTrailer = "Cache-Snapshot-Error"

// importWorkers is how many entries an import stores at once: a remote
// store's round trips overlap, while memory stays bounded (one entry per
// worker and one being read).
const importWorkers = 4

func snapshotError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// snapshot answers /cache/snapshot.
func (a *AdminAPI) snapshot(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return a.exportSnapshot(w, r)
	case http.MethodPost:
		return a.importSnapshot(w, r)
	}
	w.Header().Set("Allow", "GET, POST")
	return snapshotError(http.StatusMethodNotAllowed, "%s /cache/snapshot: method not allowed, use GET (export) or POST (import)", r.Method)
}

// snapshotHandler returns the handler a snapshot request addresses: the
// one named, or the only live one.
func snapshotHandler(name string) (*Handler, error) {
	live := liveHandlers()
	var names []string
	for _, h := range live {
		if h.ops.name == name {
			return h, nil
		}
		names = append(names, h.ops.name)
	}
	switch {
	case len(live) == 0:
		return nil, snapshotError(http.StatusNotFound, "no cache handler is live")
	case name != "":
		return nil, snapshotError(http.StatusNotFound, "handler %q: no such cache handler (live: %s)", name, strings.Join(names, ", "))
	case len(live) > 1:
		return nil, snapshotError(http.StatusBadRequest, "several cache handlers are live (%s): add handler=<name>", strings.Join(names, ", "))
	}
	return live[0], nil
}

// snapshotQuery checks that q has only the parameters allowed: a typo must
// not export everything or import into the wrong handler.
func snapshotQuery(q map[string][]string, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return snapshotError(http.StatusBadRequest, "unknown parameter %q (want %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// snapshotFilter selects the entries an export writes.
type snapshotFilter struct {
	prefix string // unscoped key prefix, normalised
	host   string
	tag    string
}

// exportStats counts what an export wrote.
type exportStats struct {
	entries int64
	bytes   int64
}

// wroteWriter records whether anything was written through it.
type wroteWriter struct {
	w     io.Writer
	wrote bool
}

func (w *wroteWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.w.Write(p)
}

// exportSnapshot answers GET /cache/snapshot.
func (a *AdminAPI) exportSnapshot(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := snapshotQuery(q, "handler", "prefix", "host", "tag"); err != nil {
		return err
	}
	h, err := snapshotHandler(q.Get("handler"))
	if err != nil {
		return err
	}
	if h.ops.lister == nil {
		return snapshotError(http.StatusBadRequest, "handler %s: backend %s cannot list its entries, so it cannot be exported", h.ops.name, h.backendName)
	}
	f := snapshotFilter{prefix: q.Get("prefix"), host: strings.ToLower(q.Get("host")), tag: q.Get("tag")}
	if f.prefix != "" {
		f.prefix = normalizePrefix(f.prefix)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Disposition", `attachment; filename="`+snapshotFileName(h.ops.name)+`.snap"`)
	hdr.Set("Trailer", snapshotErrorTrailer)
	out := &wroteWriter{w: w}
	start := time.Now()
	st, err := h.exportSnapshot(r.Context(), out, f)
	if err != nil {
		if !out.wrote {
			hdr.Del("Content-Disposition")
			hdr.Del("Trailer")
			return snapshotError(http.StatusInternalServerError, "handler %s: exporting: %v", h.ops.name, err)
		}
		hdr.Set(snapshotErrorTrailer, err.Error())
		h.logger.Error("cache snapshot export stopped before its end", zap.String("handler", h.ops.name),
			zap.Int64("entries", st.entries), zap.Int64("bytes", st.bytes), zap.Error(err))
		return nil
	}
	h.logger.Info("cache snapshot exported", zap.String("handler", h.ops.name), zap.Int64("entries", st.entries),
		zap.Int64("bytes", st.bytes), zap.Duration("duration", time.Since(start)))
	return nil
}

// snapshotFileName turns a handler name into a file name.
func snapshotFileName(name string) string {
	return strings.NewReplacer("/", "-", ":", "-").Replace(name)
}

// snapshotStore is the store a snapshot reads and writes: the cold tier
// when there is a hot tier, so that an export does not fill the hot tier
// with everything it reads, nor an import with everything it writes.
func (h *Handler) snapshotStore() storage.Store {
	if c, ok := h.ops.raw.(interface{ Cold() storage.Store }); ok {
		return c.Cold()
	}
	return h.ops.raw
}

// snapshotTimeout bounds one storage call of an export or import: an
// entry may be large, and nobody waits on it but the operator.
func (h *Handler) snapshotTimeout() time.Duration {
	return max(4*time.Duration(h.StorageTimeout), 10*time.Second)
}

// exportSnapshot writes the handler's live entries that f selects to w, as
// a complete snapshot stream. On error the stream is left without its
// trailer. It holds one entry at a time.
func (h *Handler) exportSnapshot(ctx context.Context, w io.Writer, f snapshotFilter) (exportStats, error) {
	sw, err := storage.NewSnapshotWriter(w, storage.SnapshotHeader{Created: time.Now(), Handler: h.ops.name, Backend: h.backendName})
	if err != nil {
		return exportStats{}, err
	}
	st := h.snapshotStore()
	now := h.now()
	err = h.ops.lister.List(ctx, h.scope+f.prefix, func(k string, meta *storage.Entry) error {
		if f.host != "" && hostOfKey(k) != f.host {
			return nil
		}
		if f.tag != "" && meta.Kind == storage.KindResponse && !slices.Contains(meta.Tags, f.tag) {
			return nil
		}
		e, err := h.snapshotGet(ctx, st, k)
		if err != nil {
			return err
		}
		if e == nil || e.Expired(now) {
			return nil // removed or expired since it was listed
		}
		if e.Kind == storage.KindVary {
			if e, err = h.exportIndex(ctx, st, e, f.tag); err != nil || e == nil {
				return err
			}
		}
		if err := sw.Write(unscoped(k), e, storage.CompressionZstd); err != nil {
			return fmt.Errorf("writing the snapshot: %w", err)
		}
		return nil
	})
	stats := exportStats{entries: sw.Records(), bytes: sw.Bytes()}
	if err != nil {
		if ww, ok := w.(*wroteWriter); !ok || ww.wrote {
			// the stream has started: send the good records buffered,
			// without a trailer. Else nothing is sent and the caller
			// can still answer with an error.
			_ = sw.Flush()
		}
		return stats, err
	}
	err = sw.Close()
	stats.bytes = sw.Bytes()
	if err != nil {
		return stats, fmt.Errorf("writing the snapshot: %w", err)
	}
	return stats, nil
}

// snapshotGet reads one entry for an export: nil when it is gone or
// cannot be decoded (a corrupt entry is a miss, never exported).
func (h *Handler) snapshotGet(ctx context.Context, st storage.Store, key string) (*storage.Entry, error) {
	cctx, cancel := context.WithTimeout(ctx, h.snapshotTimeout())
	defer cancel()
	e, err := st.Get(cctx, key)
	switch {
	case err == nil:
		return e, nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case errors.Is(err, storage.ErrCorrupt):
		h.logCorrupt(err)
		return nil, nil
	}
	return nil, fmt.Errorf("reading %q: %w", displayKey(unscoped(key)), err)
}

// exportIndex returns the Vary index e as a snapshot carries it: a copy
// with its variants' keys unscoped; with a tag, only the variants recorded
// with that tag (nil when there are none).
func (h *Handler) exportIndex(ctx context.Context, st storage.Store, e *storage.Entry, tag string) (*storage.Entry, error) {
	idx := *e
	idx.Variants = nil
	for _, v := range e.Variants {
		if tag != "" {
			ve, err := h.snapshotGet(ctx, st, v)
			if err != nil {
				return nil, err
			}
			if ve == nil || !slices.Contains(ve.Tags, tag) {
				continue
			}
		}
		idx.Variants = append(idx.Variants, unscoped(v))
	}
	if tag != "" && len(idx.Variants) == 0 {
		return nil, nil
	}
	return &idx, nil
}

// importReport is the answer of POST /cache/snapshot.
type importReport struct {
	Handler string `json:"handler"`
	Backend string `json:"backend"`
	// Source is the header of the snapshot: the handler and backend it
	// was exported from, and when.
	Source struct {
		Handler string    `json:"handler"`
		Backend string    `json:"backend"`
		Created time.Time `json:"created,omitzero"`
	} `json:"source"`
	// Records counts the verified entries read from the stream, Bytes the
	// stream bytes verified (where damage, if any, begins).
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Imported entries were stored. SkippedExpired had expired since the
	// export; SkippedNewer were not stored because the store held the
	// same or a newer response for the key (or an entry of the other
	// kind: a Vary index where the snapshot has a plain response, or the
	// reverse); SkippedTooLarge exceed max_entry_size or what the store
	// holds, or their key is too long for this handler.
	Imported        int64 `json:"imported"`
	SkippedExpired  int64 `json:"skipped_expired"`
	SkippedNewer    int64 `json:"skipped_newer"`
	SkippedTooLarge int64 `json:"skipped_too_large"`
	// RejectedCorrupt is 1 when the stream is damaged (truncated, altered):
	// the import stops at the first damaged record, which is never stored.
	RejectedCorrupt int64 `json:"rejected_corrupt"`
	// Complete is true when the whole stream, trailer included, was read
	// and verified.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	// Duration is how long the import took, in seconds.
	Duration float64 `json:"duration"`
}

// importSnapshot answers POST /cache/snapshot.
func (a *AdminAPI) importSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := snapshotQuery(r.URL.Query(), "handler"); err != nil {
		return err
	}
	h, err := snapshotHandler(r.URL.Query().Get("handler"))
	if err != nil {
		return err
	}
	// Caddy's admin server has a 10 s read timeout for the whole
	// request, body included: a snapshot takes longer to send.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	sr, err := storage.NewSnapshotReader(r.Body)
	if err != nil {
		return snapshotError(http.StatusBadRequest, "body: %v", err)
	}
	rep, status := h.importSnapshot(r.Context(), sr)
	lvl := h.logger.Info
	if status != http.StatusOK {
		lvl = h.logger.Warn
	}
	lvl("cache snapshot imported", zap.String("handler", h.ops.name), zap.String("from", rep.Source.Handler),
		zap.Int64("imported", rep.Imported), zap.Int64("skipped_expired", rep.SkippedExpired),
		zap.Int64("skipped_newer", rep.SkippedNewer), zap.Int64("skipped_too_large", rep.SkippedTooLarge),
		zap.Bool("complete", rep.Complete), zap.String("error", rep.Error))
	writeJSON(w, status, rep)
	return nil
}

// importOutcome is what became of one imported entry.
type importOutcome int

const (
	outImported importOutcome = iota
	outExpired
	outNewer
	outTooLarge
)

// importSnapshot stores the entries of sr into the handler's store, and
// returns the report and its HTTP status. It stops at the first damaged
// record (never stored) and at the first failing store call.
func (h *Handler) importSnapshot(ctx context.Context, sr *storage.SnapshotReader) (importReport, int) {
	start := time.Now()
	rep := importReport{Handler: h.ops.name, Backend: h.backendName}
	src := sr.Header()
	rep.Source.Handler, rep.Source.Backend, rep.Source.Created = src.Handler, src.Backend, src.Created

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		key string
		e   *storage.Entry
	}
	jobs := make(chan job)
	var counts [4]atomic.Int64
	// the keys imported, announced in batches so that other instances
	// sharing the store drop their hot copies of them (sync.go)
	var annMu sync.Mutex
	var announced []string
	flush := func(all bool) {
		annMu.Lock()
		var batch []string
		if all || len(announced) >= maxKeysPerMessage {
			batch, announced = announced, nil
		}
		annMu.Unlock()
		if len(batch) > 0 {
			h.announce(invalidation{Keys: batch})
		}
	}
	var storeErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range importWorkers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				out, err := h.importEntry(ctx, j.key, j.e)
				if err != nil {
					once.Do(func() { storeErr = err })
					cancel(err)
					continue
				}
				counts[out].Add(1)
				if out == outImported && h.sync != nil {
					annMu.Lock()
					announced = append(announced, h.scope+j.key)
					annMu.Unlock()
					flush(false)
				}
			}
		})
	}
	var readErr error
	for {
		key, e, err := sr.Next()
		if err == io.EOF {
			rep.Complete = true
			break
		}
		if err != nil {
			readErr = err
			break
		}
		select {
		case jobs <- job{key, e}:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	flush(true)

	rep.Records, rep.Bytes = sr.Records(), sr.Offset()
	rep.Imported, rep.SkippedExpired = counts[outImported].Load(), counts[outExpired].Load()
	rep.SkippedNewer, rep.SkippedTooLarge = counts[outNewer].Load(), counts[outTooLarge].Load()
	rep.Duration = time.Since(start).Seconds()
	status := http.StatusOK
	switch {
	case storeErr != nil:
		rep.Complete = false
		rep.Error = fmt.Sprintf("storing into %s stopped the import: %v", h.backendName, storeErr)
		status = http.StatusInternalServerError
	case readErr != nil && errors.Is(readErr, storage.ErrSnapshotDamaged):
		rep.RejectedCorrupt = 1
		rep.Error = readErr.Error() + "; the entries before it were imported"
		status = http.StatusBadRequest
	case readErr != nil:
		rep.Error = readErr.Error()
		status = http.StatusBadRequest
	case ctx.Err() != nil:
		rep.Complete = false
		rep.Error = fmt.Sprintf("import cancelled: %v", context.Cause(ctx))
		status = http.StatusBadRequest
	}
	return rep, status
}

// importEntry stores one entry of a snapshot under the handler's scope,
// unless it expired or the store holds the same or a newer one. Responses
// are compared by the time they were received (ResponseTime); a Vary index
// is merged into the one stored (same selecting fields), keeping the
// stored variants first, up to max_variants. The read-compare-write is
// atomic on stores with storage.Updater, and serialised within the
// process on the others.
func (h *Handler) importEntry(ctx context.Context, key string, e *storage.Entry) (importOutcome, error) {
	if e.Expired(h.now()) {
		return outExpired, nil
	}
	key = h.scope + key
	if len(key) > storage.MaxKeyLen || int64(len(e.Body)) > h.MaxEntrySize {
		return outTooLarge, nil
	}
	if e.Kind == storage.KindVary {
		for i, v := range e.Variants {
			e.Variants[i] = h.scope + v
		}
	}
	out := outImported
	next := func(old *storage.Entry) *storage.Entry {
		var n *storage.Entry
		n, out = h.importMerge(old, e)
		return n
	}
	cctx, cancel := context.WithTimeout(ctx, h.snapshotTimeout())
	defer cancel()
	st := h.snapshotStore()
	var err error
	if h.updater != nil {
		err = h.updater.Update(cctx, key, next)
	} else {
		err = h.importLocked(cctx, st, key, next)
	}
	if h.dropHot != nil {
		h.dropHot(key) // the hot copy, if any, is what the store held before
	}
	switch {
	case err == nil:
		h.writeOK()
		return out, nil
	case errors.Is(err, storage.ErrTooLarge):
		return outTooLarge, nil
	}
	h.writeFailed("put", err)
	return out, fmt.Errorf("%q: %w", displayKey(unscoped(key)), err)
}

// importLocked is the read-compare-write of importEntry for stores without
// storage.Updater, under the process's Vary index lock of the key.
func (h *Handler) importLocked(ctx context.Context, st storage.Store, key string, next func(*storage.Entry) *storage.Entry) error {
	unlock, ok := lockVaryIndex(ctx, key)
	if !ok {
		return ctx.Err()
	}
	defer unlock()
	old, err := st.Get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCorrupt):
		old = nil
	case err != nil:
		return err
	}
	n := next(old)
	if n == nil {
		return nil
	}
	return st.Put(ctx, key, n)
}

// importMerge decides what to store for a snapshot entry e given the
// stored one (nil when none): nil to store nothing.
func (h *Handler) importMerge(old, e *storage.Entry) (*storage.Entry, importOutcome) {
	if old != nil && old.Expired(h.now()) {
		old = nil
	}
	if old == nil {
		return e, outImported
	}
	if old.Kind != e.Kind {
		return nil, outNewer
	}
	if e.Kind == storage.KindResponse {
		if old.ResponseTime.Before(e.ResponseTime) {
			return e, outImported
		}
		return nil, outNewer
	}
	if !slices.Equal(old.Vary, e.Vary) {
		return nil, outNewer
	}
	idx := *old
	idx.Variants = slices.Clone(old.Variants)
	for _, v := range e.Variants {
		if len(idx.Variants) >= h.MaxVariants {
			break
		}
		if !slices.Contains(idx.Variants, v) {
			idx.Variants = append(idx.Variants, v)
		}
	}
	if e.Expires.After(idx.Expires) {
		idx.Expires = e.Expires
	}
	if len(idx.Variants) == len(old.Variants) && idx.Expires.Equal(old.Expires) {
		return nil, outNewer
	}
	return &idx, outImported
}
