package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
)

// Several Caddy instances on one store each keep a hot tier in front of it.
// What one instance purges or invalidates must leave the others' hot tiers
// too: each deletion the handler makes for a purge, an unsafe method or a
// sweep is announced to the other instances, which drop the matching hot
// copies.
//
//   - On a store that can broadcast (storage.Broadcaster: Redis pub/sub) the
//     announcement arrives within milliseconds. While the subscription is
//     down the hot tier is emptied and bypassed: every read goes to the
//     store until the subscription is back.
//   - On any other store that can list (SQLite, file, MongoDB, GridFS,
//     DynamoDB) announcements are records in the store itself, under the
//     reserved prefix syncPrefix, kept syncRecordTTL, that every instance
//     reads every invalidation_interval (default 1s): a hot copy is at most
//     that much older than a purge. When a read of the records fails the
//     hot tier is emptied and bypassed until one succeeds.
//
// The state is shared by every handler on the store within the process (as
// the hot tier is) and survives reloads.

// DefaultInvalidationInterval is how often instances read the invalidation
// records of a store that cannot broadcast.
const DefaultInvalidationInterval = time.Second

// syncPrefix starts the keys of invalidation records: a NUL never starts a
// cache key.
const syncPrefix = "\x00sync\x00"

// syncRecordTTL is how long an invalidation record is kept: far longer than
// the interval, so that a slow poll still sees it.
const syncRecordTTL = time.Minute

// invalidation is one announcement.
type invalidation struct {
	From string   `json:"from"`
	Keys []string `json:"keys,omitempty"`
	// Prefix drops every hot entry whose key starts with it (a handler's
	// scope for purge all, scope+URL prefix for a prefix or host purge);
	// with Tag, only those recorded with that tag.
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// maxKeysPerMessage bounds one announcement; more keys go in several.
const maxKeysPerMessage = 500

var syncers = caddy.NewUsagePool()

// syncer carries invalidations between the instances sharing one store.
type syncer struct {
	id       string // this process's instance
	hot      *memory.Memory
	cold     storage.Store
	bcast    storage.Broadcaster
	lister   storage.Lister
	interval atomic.Int64 // ns, for polling
	logger   *zap.Logger

	// down: invalidations may be missed; the hot tier is bypassed.
	down  atomic.Bool
	wasUp atomic.Bool // the subscription or a poll worked once
	// dropHot removes a key from the hot tier through every tiered store
	// that shares it (their stripe generations keep a racing read from
	// copying the old entry back).
	mu       sync.Mutex
	droppers map[*Handler]func(string)
	seen     map[string]time.Time // poll: records already applied or skipped
	seq      atomic.Uint64
	stop     func()
	applied  atomic.Int64 // invalidations applied (tests)
}

// instanceID names this process in announcements, so that it ignores its
// own.
var instanceID = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

func (s *syncer) Destruct() error {
	if s.stop != nil {
		s.stop()
	}
	return nil
}

// provisionSync joins the syncer of the handler's store, creating it for
// the first handler. Called when the handler has a hot tier in front of a
// store other than memory.
func (h *Handler) provisionSync(cold storage.Store) error {
	interval := time.Duration(h.InvalidationInterval)
	if interval <= 0 {
		interval = DefaultInvalidationInterval
	}
	v, _, err := syncers.LoadOrNew(h.storageID, func() (caddy.Destructor, error) {
		s := &syncer{
			id: instanceID, hot: h.hot, cold: cold, logger: h.logger.Named("sync"),
			droppers: map[*Handler]func(string){}, seen: map[string]time.Time{},
		}
		s.interval.Store(int64(interval))
		if b, ok := cold.(storage.Broadcaster); ok {
			s.bcast = b
			s.down.Store(true) // until the subscription is confirmed
			s.stop = b.Listen(s.receive, s.setHealthy)
		} else if l, ok := cold.(storage.Lister); ok {
			s.lister = l
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			s.skipExisting(ctx)
			go s.poll(ctx, done)
			s.stop = func() { cancel(); <-done }
		}
		return s, nil
	})
	if err != nil {
		return fmt.Errorf("invalidation sync: %w", err)
	}
	s := v.(*syncer)
	if s.lister != nil && int64(interval) < s.interval.Load() {
		s.interval.Store(int64(interval)) // the shortest asked for wins
	}
	if t, ok := h.store.(interface {
		SetBypass(func() bool)
		DropHot(string)
	}); ok {
		t.SetBypass(s.down.Load)
		s.mu.Lock()
		s.droppers[h] = t.DropHot
		s.mu.Unlock()
	}
	h.sync = s
	return nil
}

// cleanupSync leaves the syncer.
func (h *Handler) cleanupSync() {
	if h.sync == nil {
		return
	}
	h.sync.mu.Lock()
	delete(h.sync.droppers, h)
	h.sync.mu.Unlock()
	_, _ = syncers.Delete(h.storageID)
	h.sync = nil
}

// announce tells the other instances what this one removed: the keys, and
// the rule (prefix, tag) when the removal was by rule.
func (h *Handler) announce(inv invalidation) {
	s := h.sync
	if s == nil || (len(inv.Keys) == 0 && inv.Prefix == "") {
		return
	}
	inv.From = s.id
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.StorageTimeout))
	defer cancel()
	keys := inv.Keys
	for first := true; first || len(keys) > 0; first = false {
		msg := inv
		msg.Keys = keys[:min(len(keys), maxKeysPerMessage)]
		keys = keys[len(msg.Keys):]
		b, err := json.Marshal(msg)
		if err != nil {
			return
		}
		if err := s.publish(ctx, b); err != nil {
			h.logger.Warn("announcing an invalidation to the other instances failed: their hot tiers may serve the removed entries until the next successful read of the store",
				zap.String("backend", h.backendName), zap.Error(err))
			return
		}
		msg.Prefix, msg.Tag = "", ""
		inv.Prefix, inv.Tag = "", ""
	}
}

func (s *syncer) publish(ctx context.Context, msg []byte) error {
	if s.bcast != nil {
		return s.bcast.Broadcast(ctx, msg)
	}
	if s.lister == nil {
		return nil
	}
	now := time.Now()
	key := fmt.Sprintf("%s%020d-%s-%d", syncPrefix, now.UnixNano(), s.id, s.seq.Add(1))
	e := &storage.Entry{
		Kind: storage.KindResponse, URL: string(msg), Status: 200, Header: map[string][]string{},
		Body: []byte{}, ResponseTime: now, RequestTime: now, Expires: now.Add(syncRecordTTL),
	}
	s.mu.Lock()
	s.seen[key] = now
	s.mu.Unlock()
	return s.cold.Put(ctx, key, e)
}

// receive applies an announcement from another instance.
func (s *syncer) receive(msg []byte) {
	var inv invalidation
	if err := json.Unmarshal(msg, &inv); err != nil || inv.From == s.id {
		return
	}
	s.apply(inv)
}

func (s *syncer) apply(inv invalidation) {
	keys := inv.Keys
	if inv.Prefix != "" {
		_ = s.hot.List(context.Background(), inv.Prefix, func(k string, e *storage.Entry) error {
			if inv.Tag == "" || slices.Contains(e.Tags, inv.Tag) || e.Kind == storage.KindVary {
				keys = append(keys, k)
			}
			return nil
		})
	}
	s.mu.Lock()
	drops := make([]func(string), 0, len(s.droppers))
	for _, d := range s.droppers {
		drops = append(drops, d)
	}
	s.mu.Unlock()
	for _, k := range keys {
		if len(drops) == 0 {
			_ = s.hot.Delete(context.Background(), k)
		}
		for _, d := range drops {
			d(k)
		}
	}
	s.applied.Add(1)
}

// setHealthy follows the broadcast subscription: while it is down, the
// hot tier is emptied and bypassed.
func (s *syncer) setHealthy(ok bool) {
	if !ok {
		if !s.down.Swap(true) {
			s.logger.Warn("invalidations from other instances cannot be received: the hot tier is bypassed until they can")
		}
		s.clearHot()
		return
	}
	if s.down.Swap(false) {
		s.clearHot() // anything put meanwhile by a racing read
		if s.wasUp.Load() {
			s.logger.Info("invalidations from other instances are received again: the hot tier is used again")
		}
	}
	s.wasUp.Store(true)
}

func (s *syncer) clearHot() {
	var keys []string
	_ = s.hot.List(context.Background(), "", func(k string, _ *storage.Entry) error {
		keys = append(keys, k)
		return nil
	})
	for _, k := range keys {
		_ = s.hot.Delete(context.Background(), k)
	}
}

// skipExisting marks the records already in the store as seen: they were
// made before this process's hot tier held anything.
func (s *syncer) skipExisting(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	now := time.Now()
	_ = s.lister.List(ctx, syncPrefix, func(k string, _ *storage.Entry) error {
		s.seen[k] = now
		return nil
	})
}

// poll reads the invalidation records every interval and applies the
// unseen ones of other instances.
func (s *syncer) poll(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		t := time.NewTimer(time.Duration(s.interval.Load()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.pollOnce(ctx)
	}
}

func (s *syncer) pollOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, max(time.Duration(s.interval.Load()), time.Second))
	defer cancel()
	now := time.Now()
	var fresh []invalidation
	err := s.lister.List(cctx, syncPrefix, func(k string, e *storage.Entry) error {
		s.mu.Lock()
		_, ok := s.seen[k]
		if !ok {
			s.seen[k] = now
		}
		s.mu.Unlock()
		if ok || !strings.HasPrefix(k, syncPrefix) {
			return nil
		}
		var inv invalidation
		if json.Unmarshal([]byte(e.URL), &inv) == nil && inv.From != s.id {
			fresh = append(fresh, inv)
		}
		return nil
	})
	if ctx.Err() != nil {
		return
	}
	s.setHealthy(err == nil)
	for _, inv := range fresh {
		s.apply(inv)
	}
	s.mu.Lock()
	for k, at := range s.seen {
		if now.Sub(at) > 2*syncRecordTTL {
			delete(s.seen, k)
		}
	}
	s.mu.Unlock()
}

// hotBypassed reports whether the hot tier must not be read: invalidations
// from other instances may be missed.
func (h *Handler) hotBypassed() bool { return h.sync != nil && h.sync.down.Load() }

// storeStats is the store's Stats without the invalidation records it
// holds for other instances (a prefix listing: a few records a minute).
func (h *Handler) storeStats(ctx context.Context) (storage.Stats, error) {
	st, err := h.ops.statser.Stats(ctx)
	if err != nil || h.sync == nil || h.sync.lister == nil {
		return st, err
	}
	_ = h.sync.lister.List(ctx, syncPrefix, func(_ string, e *storage.Entry) error {
		st.Entries--
		st.Bytes -= int64(len(e.URL)) + 64
		return nil
	})
	st.Entries, st.Bytes = max(st.Entries, 0), max(st.Bytes, 0)
	return st, nil
}
