// Package storage defines where the cache handler keeps responses: the Store
// interface every backend implements, the Entry it stores, the sentinel
// errors, and the one versioned binary encoding (see codec.go) that every
// backend which stores bytes uses.
//
// Backends are Caddy guest modules in the namespace
// http.handlers.cache.storage, selected in JSON by the inline key "backend".
// Each one passes the shared suite in storage/storagetest.
package storage

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Sentinel errors. Check them with errors.Is.
var (
	// ErrNotFound means the key is absent or its entry has expired.
	ErrNotFound = errors.New("cache entry not found")
	// ErrCorrupt means the stored bytes could not be decoded: truncated,
	// checksum mismatch, foreign data or an unknown format version. The
	// handler treats it as a miss and deletes the key.
	ErrCorrupt = errors.New("corrupt cache entry")
	// ErrTooLarge means the entry exceeds what the backend can hold. The
	// handler treats it as "not stored", never as a request error.
	ErrTooLarge = errors.New("cache entry too large for this storage")
)

// MaxKeyLen is the longest key the handler ever passes to a Store. Requests
// whose key would be longer are not cached. Backends with a smaller native
// limit hash the key.
const MaxKeyLen = 2048

// Store keeps cache entries.
//
// Implementations must be safe for concurrent use, must return promptly (with
// ctx.Err()) when ctx is done, and must give read-your-writes consistency to a
// single process: after Put returns nil, a Get of the same key from the same
// process returns that entry (until it expires, is evicted or is replaced).
//
// Entries passed to Put and returned by Get are shared, read-only values:
// neither the Store nor its caller may modify one after handing it over. This
// lets an in-memory store return the stored pointer without copying the body.
type Store interface {
	// Get returns the entry stored under key, or ErrNotFound when it is
	// absent or its Expires has passed (a Store never returns an expired
	// entry), or an error wrapping ErrCorrupt when the stored data cannot be
	// decoded.
	Get(ctx context.Context, key string) (*Entry, error)
	// Put stores e under key until e.Expires, replacing any previous value.
	// The whole entry becomes visible at once: a concurrent Get sees either
	// the old entry or the new one, never a mix or a partial body. A Store
	// may drop the entry early to stay within its size bound.
	Put(ctx context.Context, key string, e *Entry) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}

// Lister is implemented by stores that can enumerate their entries, for
// inspection, purge by prefix/host/tag and expiry sweeps.
type Lister interface {
	// List calls fn for every unexpired entry whose key starts with prefix
	// ("" means all), in no particular order. The entry passed to fn carries
	// everything but the body: Body is nil and BodySize is set. If fn
	// returns ErrStop, List stops and returns nil; any other non-nil error
	// stops the walk and is returned. Entries added or removed during the
	// walk may or may not be seen. fn may call Delete on the same store.
	List(ctx context.Context, prefix string, fn func(key string, meta *Entry) error) error
}

// OrderedLister is a Lister that walks in ascending key order from a
// given key on, so that a page of a listing (the admin API's
// GET /cache/entries) costs the page, not a walk of the whole store.
type OrderedLister interface {
	// ListFrom is List in ascending key order (bytewise), starting at the
	// first key greater than after (from the first key with prefix when
	// after is ""). fn returns ErrStop to end the walk.
	ListFrom(ctx context.Context, prefix, after string, fn func(key string, meta *Entry) error) error
}

// ErrStop stops a List walk early without error.
var ErrStop = errors.New("stop listing")

// Stats describes how much a store holds.
type Stats struct {
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Evictions int64 `json:"evictions"`
}

// MaxSizer is implemented by stores bounded by a number of bytes (their
// max_size), reported next to Stats so that operators see how full a
// store is. 0 means unlimited.
type MaxSizer interface {
	MaxBytes() int64
}

// Statser is implemented by stores that can report their size cheaply.
type Statser interface {
	Stats(ctx context.Context) (Stats, error)
}

// Kind tells a response entry from a Vary index entry.
type Kind uint8

const (
	// KindResponse is a stored response.
	KindResponse Kind = 0
	// KindVary is the index entry stored under a URL's primary key when
	// the response varies: it lists the selecting header names and the keys
	// of the variants stored for that URL. Each variant is a KindResponse
	// entry under its own secondary key.
	KindVary Kind = 1
)

// Entry is one stored object. Treat it as immutable once stored.
type Entry struct {
	// Kind says whether this is a response or a Vary index.
	Kind Kind
	// URL is the effective request URL the response was stored for
	// (scheme://host/path?query), used for listing and purging.
	URL string
	// Status is the response status code.
	Status int
	// Header is the stored response header, hop-by-hop fields removed.
	Header http.Header
	// Body is the complete response body (nil in List results).
	Body []byte
	// BodySize is len(Body); List results set it without loading the body.
	BodySize int64

	// RequestTime and ResponseTime are when the request that produced this
	// response was sent and when its header arrived (RFC 9111 §4.2.3).
	RequestTime  time.Time
	ResponseTime time.Time
	// InitialAge is the corrected_initial_age of RFC 9111 §4.2.3, computed
	// when the response was stored; the current age is InitialAge plus the
	// time since ResponseTime.
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// Expires is when the store may forget the entry: the end of freshness
	// plus whatever time it stays useful stale (revalidation, stale-if-error,
	// stale-while-revalidate). Stores never return an entry past Expires.
	Expires time.Time

	// Vary lists the selecting request header names (canonical form, in
	// the order the response named them). On a KindResponse entry it is
	// the Vary of that response; on a KindVary entry, the names used to
	// compute variant keys.
	Vary []string
	// VaryRequest holds the normalised values of the Vary selecting
	// headers of the request this variant was stored for; a stored variant
	// is used only when the new request's normalised values are equal.
	VaryRequest map[string]string
	// Variants (KindVary only) lists the keys of the stored variants,
	// oldest first.
	Variants []string

	// Tags are surrogate keys recorded from the response.
	Tags []string
}

// Expired reports whether the entry must no longer be returned at now.
func (e *Entry) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// Size is an estimate of the memory the entry takes in the process, for
// byte-bounded stores: the body and strings, and what holding them costs
// (the Entry itself, the header map's slots and slice headers, the Vary
// selection map), measured on 64-bit platforms.
func (e *Entry) Size() int64 {
	n := int64(len(e.Body)) + int64(len(e.URL)) + entryBytes
	nv := 0
	for k, vs := range e.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
		nv += len(vs)
	}
	n += mapBytes(len(e.Header), 16+24) + int64(nv)*16
	for _, s := range e.Vary {
		n += int64(len(s)) + 16
	}
	for k, v := range e.VaryRequest {
		n += int64(len(k) + len(v))
	}
	n += mapBytes(len(e.VaryRequest), 16+16)
	for _, s := range e.Variants {
		n += int64(len(s)) + 16
	}
	for _, s := range e.Tags {
		n += int64(len(s)) + 16
	}
	return n
}

// entryBytes is the fixed cost counted by Size: the Entry struct (its size
// class).
const entryBytes = 256

// mapBytes estimates the memory of a Go map holding n entries of slot
// bytes each: its header, and the slots in groups of eight with a control
// byte each, one group for up to eight entries, else tables at most 7/8
// full that double as they grow.
func mapBytes(n int, slot int64) int64 {
	if n == 0 {
		return 0
	}
	const header = 48
	if n <= 8 {
		return header + 8*(slot+1)
	}
	slots := int64(16)
	for slots*7/8 < int64(n) {
		slots *= 2
	}
	return header + 64 + slots*(slot+1) // + the table and its directory
}

// Meta returns a copy of e without its body, with BodySize set: what List
// hands to its callback.
func (e *Entry) Meta() *Entry {
	m := *e
	if m.Body != nil {
		m.BodySize = int64(len(m.Body))
	}
	m.Body = nil
	return &m
}

// HealthLogger is implemented by stores that log their own availability:
// one Warn when their server stops answering, one Info when it is back. The
// handler then logs storage failures at Debug level only, so that an outage
// is announced once, by the part that knows the server.
type HealthLogger interface {
	LogsHealth() bool
}

// Identifier is implemented by stores that can say which data they reach,
// whatever the spelling of their config: e.g. "sqlite:" and the absolute
// path of the file, or the Redis servers, database and key prefix. Two
// modules with the same identity read and write the same entries. It must
// not contain secrets in clear (hash them). The handler derives its default
// name, its key scope and the hot tier it shares from it.
type Identifier interface {
	StorageIdentity() string
}

// Locator is implemented by stores that can say where their data is, in
// words for a log line: a file path, server addresses and a key prefix, a
// table. It never contains secrets.
type Locator interface {
	Location() string
}

// Broadcaster is implemented by stores shared by several processes that
// can carry messages between them (Redis pub/sub). The handler uses it to
// tell the other processes' hot tiers what was purged or invalidated.
type Broadcaster interface {
	// Broadcast sends msg to every process listening on this store's
	// namespace, this one included.
	Broadcast(ctx context.Context, msg []byte) error
	// Listen calls fn for every message broadcast on the namespace until
	// stop is called. healthy is called with false when messages may be
	// missed (the connection is down) and with true once they are received
	// again; Listen starts unhealthy until its subscription is confirmed.
	Listen(fn func(msg []byte), healthy func(ok bool)) (stop func())
}

// Locker is implemented by stores shared by several processes that can
// hold short-lived locks (Redis SET NX PX): the handler takes one per
// missing key so that one instance of a cluster fetches a cold URL while the
// others wait for the stored response.
type Locker interface {
	// Lock tries to take the lock name for ttl. ok is false when another
	// holder has it. unlock releases it if this caller still holds it.
	Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), ok bool, err error)
	// Locked reports whether the lock name is held.
	Locked(ctx context.Context, name string) (bool, error)
}

// Updater is implemented by stores shared by several processes that can
// replace an entry atomically (Redis WATCH/MULTI): the handler updates the
// Vary index through it, so that variants added by several instances at
// once are all kept.
type Updater interface {
	// Update calls fn with the entry stored under key (nil when there is
	// none, it expired or it cannot be decoded) and stores the entry fn
	// returns, unless another process changed the key meanwhile, in which
	// case fn is called again with the new entry. fn may be called several
	// times and must not have side effects.
	Update(ctx context.Context, key string, fn func(old *Entry) *Entry) error
}
