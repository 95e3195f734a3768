package cache

import "github.com/caddycache/caddy-cache/storage"

// maxBytesOf returns the size bound of a provisioned storage module, for
// caddy_http_cache_max_bytes: what storage.MaxSizer says, else 0 (unlimited
// or unknown: Redis, MongoDB and DynamoDB leave eviction to the server).
func maxBytesOf(mod any) int64 {
	if m, ok := mod.(storage.MaxSizer); ok {
		return m.MaxBytes()
	}
	return 0
}
