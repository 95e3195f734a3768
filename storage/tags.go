package storage

import "context"

// TagIndex is implemented by stores that index entries by surrogate key
// (Entry.Tags), so that a purge by tag does not have to walk every entry. A
// store without it is purged by tag through Lister.
type TagIndex interface {
	// KeysForTag returns the keys of the unexpired entries stored with tag
	// among their Tags, in no particular order. It may return keys whose
	// entries have since been removed; the caller tolerates that.
	KeysForTag(ctx context.Context, tag string) ([]string, error)
}

// Expirer is implemented by stores that keep expired entries until a sweep
// removes them (a store with native expiry needs no Expirer: it never holds
// an expired entry for long). The admin API's "remove expired" calls it.
type Expirer interface {
	// DeleteExpired removes every entry whose Expires has passed and
	// returns how many it removed.
	DeleteExpired(ctx context.Context) (int64, error)
}

// ExpiredCounter is implemented by Expirers that can count, without
// removing anything, what DeleteExpired would remove now. The admin API's
// dry run of "remove expired" needs it: a Lister never shows an expired
// entry, so walking the entries cannot find what a sweep removes.
type ExpiredCounter interface {
	// CountExpired returns how many entries DeleteExpired would remove
	// now.
	CountExpired(ctx context.Context) (int64, error)
}

// ExactTagIndex is implemented by TagIndexes whose index is exact: the tags
// of an entry are written and removed in the same transaction as the entry,
// so every key KeysForTag returns was, when it was read, stored with that
// tag. A purge by tag then skips reading each entry to check its tags.
type ExactTagIndex interface {
	TagIndex
	// TagIndexExact marks the index as exact; it does nothing.
	TagIndexExact()
}

// BatchDeleter is implemented by stores that remove many keys at once more
// cheaply than one Delete per key (the SQLite store: a few hundred keys per
// write transaction instead of one each). Purges of many entries use it; a
// store without it gets one Delete per key.
type BatchDeleter interface {
	// DeleteMany removes keys as Delete would; keys that are not stored
	// are no error. On an error some of keys may be removed already.
	DeleteMany(ctx context.Context, keys []string) error
}
