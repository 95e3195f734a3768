package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddycache/caddy-cache/storage"
)

// unlockScript deletes the lock only when it still holds this holder's
// token (it may have expired and been taken by another).
var unlockScript = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// lockKey is the Redis key of a lock: the namespace and a hash of the name.
func (r *Redis) lockKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return r.Namespace + ":lock:" + hex.EncodeToString(sum[:16])
}

// Lock implements storage.Locker with SET NX PX and a random token.
func (r *Redis) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := r.lockKey(name)
	ok, err := r.shared.rdb.SetNX(ctx, key, token, ttl).Result()
	r.observe(err)
	if err != nil {
		return nil, false, callErr(ctx, "SET NX", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = unlockScript.Run(ctx, r.shared.rdb, []string{key}, token).Err()
	}, true, nil
}

// Locked implements storage.Locker.
func (r *Redis) Locked(ctx context.Context, name string) (bool, error) {
	n, err := r.shared.rdb.Exists(ctx, r.lockKey(name)).Result()
	r.observe(err)
	if err != nil {
		return false, callErr(ctx, "EXISTS", err)
	}
	return n > 0, nil
}

var _ storage.Locker = (*Redis)(nil)
