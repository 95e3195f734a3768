package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddycache/caddy-cache/storage"
)

// channel is the pub/sub channel of the namespace's invalidations.
func (r *Redis) channel() string { return r.Namespace + ":invalidate" }

// Broadcast implements storage.Broadcaster with PUBLISH on the namespace's
// channel (in Cluster, PUBLISH reaches the subscribers of every node).
func (r *Redis) Broadcast(ctx context.Context, msg []byte) error {
	err := r.shared.rdb.Publish(ctx, r.channel(), msg).Err()
	r.observe(err)
	if err != nil {
		return callErr(ctx, "PUBLISH", err)
	}
	return nil
}

// Listen implements storage.Broadcaster with SUBSCRIBE. go-redis
// reconnects and subscribes again after a connection loss; healthy(false)
// is reported on the first receive error, healthy(true) once the
// subscription is confirmed again.
func (r *Redis) Listen(fn func(msg []byte), healthy func(ok bool)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ps := r.shared.rdb.Subscribe(ctx, r.channel())
	done := make(chan struct{})
	go func() {
		defer close(done)
		up := false
		set := func(ok bool) {
			if ok != up {
				up = ok
				healthy(ok)
			}
		}
		for ctx.Err() == nil {
			m, err := ps.ReceiveTimeout(ctx, 30*time.Second)
			switch v := m.(type) {
			case *goredis.Subscription:
				set(v.Kind == "subscribe")
			case *goredis.Message:
				set(true)
				fn([]byte(v.Payload))
			case *goredis.Pong:
				set(true)
			}
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if isTimeout(err) {
				// idle: check the connection
				if perr := ps.Ping(ctx); perr != nil {
					set(false)
				}
				continue
			}
			set(false)
			select { // go-redis reconnects on the next receive
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		_ = ps.Close()
		<-done
	}
}

func isTimeout(err error) bool {
	type timeout interface{ Timeout() bool }
	t, ok := err.(timeout)
	return ok && t.Timeout()
}

var _ storage.Broadcaster = (*Redis)(nil)
