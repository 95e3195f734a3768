package cache

import (
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/file"
	"github.com/caddycache/caddy-cache/storage/memory"
	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// maxBytesOf returns the size bound of a provisioned storage module, for
// caddy_http_cache_max_bytes: what storage.MaxSizer says, else the max_size
// of the shipped bounded backends (read from their config, with their
// defaults), else 0 (unlimited or unknown: Redis, MongoDB and DynamoDB
// leave eviction to the server).
func maxBytesOf(mod any) int64 {
	switch m := mod.(type) {
	case storage.MaxSizer:
		return m.MaxBytes()
	case *memory.Memory:
		return m.MaxSize
	case *sqlite.SQLite:
		if m.MaxSize == nil {
			return sqlite.DefaultMaxSize
		}
		return *m.MaxSize
	case *file.File:
		if m.MaxSize == nil {
			return file.DefaultMaxSize
		}
		return *m.MaxSize
	}
	return 0
}
