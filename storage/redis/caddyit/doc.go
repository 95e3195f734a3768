// Package caddyit holds the in-process Caddy test of the Redis storage
// backend: the cache handler on a real redis-server, through a Redis outage
// and back. It is a separate package so that the backend's own tests do not
// depend on the handler.
package caddyit
