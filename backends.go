package cache

// Every shipped storage backend, so that one `--with` gives users all of them.
import (
	_ "github.com/caddycache/caddy-cache/storage/dynamodb"
	_ "github.com/caddycache/caddy-cache/storage/file"
	_ "github.com/caddycache/caddy-cache/storage/gridfs"
	_ "github.com/caddycache/caddy-cache/storage/memory"
	_ "github.com/caddycache/caddy-cache/storage/mongodb"
	_ "github.com/caddycache/caddy-cache/storage/redis"
	_ "github.com/caddycache/caddy-cache/storage/sqlite"
)
