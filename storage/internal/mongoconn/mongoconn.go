// Package mongoconn holds the MongoDB clients shared by the mongodb and
// gridfs storage backends: one live client per connection string, kept in a
// Caddy usage pool so config reloads reuse it, created in the background so
// that provisioning never waits on the network.
package mongoconn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/caddyserver/caddy/v2"
)

// DefaultConnectTimeout is the default time allowed to open one connection.
const DefaultConnectTimeout = 10 * time.Second

var pool = caddy.NewUsagePool()

// ResolveURI replaces Caddy placeholders such as {env.MONGO_URI} in raw and
// checks the result. It never touches the network: a mongodb+srv URI is only
// checked for its shape here and resolved when the client is first used.
// Errors never contain the URI, which may hold a password.
func ResolveURI(raw string) (string, error) {
	uri := strings.TrimSpace(caddy.NewReplacer().ReplaceKnown(raw, ""))
	if uri == "" {
		return "", errors.New("uri is required (empty after replacing placeholders)")
	}
	switch {
	case strings.HasPrefix(uri, "mongodb://"):
		if _, err := connstring.ParseAndValidate(uri); err != nil {
			return "", fmt.Errorf("uri for %s is invalid: %s", Display(uri), scrub(err.Error(), uri))
		}
	case strings.HasPrefix(uri, "mongodb+srv://"):
		if hosts(uri) == "" || strings.Contains(hosts(uri), ",") {
			return "", fmt.Errorf("uri for %s: a mongodb+srv URI names exactly one host", Display(uri))
		}
	default:
		return "", errors.New(`uri must start with "mongodb://" or "mongodb+srv://"`)
	}
	return uri, nil
}

// scrub removes the URI from a driver error message, in case it quotes it.
func scrub(msg, uri string) string {
	return strings.ReplaceAll(msg, uri, Display(uri))
}

// hosts returns the host list of a MongoDB URI, without credentials.
func hosts(uri string) string {
	_, after, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	rest := after
	if j := strings.IndexAny(rest, "/?"); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.LastIndex(rest, "@"); j >= 0 {
		rest = rest[j+1:]
	}
	return rest
}

// Display returns scheme and hosts of uri, without user, password, database
// or options: what log lines and errors may show.
func Display(uri string) string {
	scheme := "mongodb"
	if before, _, ok := strings.Cut(uri, "://"); ok {
		scheme = before
	}
	return scheme + "://" + hosts(uri)
}

// Key returns the pool key of a client: a hash of the connection string
// (never the string itself, which may hold a password) and the timeout.
func Key(uri string, connectTimeout time.Duration) string {
	sum := sha256.Sum256([]byte(uri))
	return fmt.Sprintf("mongo|%s|%s|%s", Display(uri), hex.EncodeToString(sum[:12]), connectTimeout)
}

// Acquire returns the shared client for uri (resolved by ResolveURI),
// creating it when no live config uses it yet, and the key to Release it
// with. It does not wait for the server.
func Acquire(uri string, connectTimeout time.Duration) (*Client, string, error) {
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	key := Key(uri, connectTimeout)
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		c := &Client{uri: uri, connectTimeout: connectTimeout}
		c.mu.Lock()
		c.startLocked()
		c.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*Client), key, nil
}

// Release drops one reference taken by Acquire; the last one disconnects
// the client.
func Release(key string) error {
	_, err := pool.Delete(key)
	return err
}

// References reports how many references the pool holds for key (for tests).
func References(key string) int {
	n, _ := pool.References(key)
	return n
}

// Client is a lazily created *mongo.Client. The driver connects in the
// background and reconnects by itself after an outage.
type Client struct {
	uri            string
	connectTimeout time.Duration

	mu         sync.Mutex
	mc         *mongo.Client
	connecting chan struct{} // closed when the running attempt ends; nil when none runs
	err        error         // of the last failed attempt
	closed     bool
}

// Display names the server(s) without credentials.
func (c *Client) Display() string { return Display(c.uri) }

// startLocked starts creating the driver client in the background.
func (c *Client) startLocked() {
	done := make(chan struct{})
	c.connecting = done
	go func() {
		opts := options.Client().ApplyURI(c.uri).
			SetConnectTimeout(c.connectTimeout).
			SetAppName("caddy-cache")
		mc, err := mongo.Connect(opts)
		if err != nil {
			err = fmt.Errorf("creating MongoDB client for %s: %s", c.Display(), scrub(err.Error(), c.uri))
		}
		c.mu.Lock()
		closed := c.closed
		if err == nil && !closed {
			c.mc = mc
		}
		c.err = err
		c.connecting = nil
		c.mu.Unlock()
		close(done)
		if err == nil && closed {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = mc.Disconnect(ctx)
			cancel()
		}
	}()
}

// ErrClosed is returned by Get after the client was destroyed.
var ErrClosed = errors.New("mongodb client closed")

// Get returns the driver client, waiting (at most until ctx is done) for it
// to be created. Creating it only resolves DNS for mongodb+srv URIs; the
// connection itself is made by the driver when the first operation needs it.
// A failed creation is retried by the next Get.
func (c *Client) Get(ctx context.Context) (*mongo.Client, error) {
	c.mu.Lock()
	if c.mc != nil {
		mc := c.mc
		c.mu.Unlock()
		return mc, nil
	}
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.connecting == nil {
		c.startLocked()
	}
	done := c.connecting
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mc != nil {
		return c.mc, nil
	}
	if c.closed {
		return nil, ErrClosed
	}
	return nil, c.err
}

// Closed reports whether Destruct ran (for tests).
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Destruct disconnects the client. The usage pool calls it when the last
// config using the client is unloaded.
func (c *Client) Destruct() error {
	c.mu.Lock()
	c.closed = true
	mc := c.mc
	c.mc = nil
	c.mu.Unlock()
	if mc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return mc.Disconnect(ctx)
}

// ExpiresAt converts an entry expiry to the BSON date stored in expires_at:
// rounded up to the millisecond (BSON's precision), so the stored date is
// never before the real expiry. The zero time means "no expiry" and is not
// stored.
func ExpiresAt(t time.Time) time.Time {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r.UTC()
}

// CloseCursor closes cur, also when ctx is already done (so the server
// can free it), but waits at most two seconds.
func CloseCursor(ctx context.Context, cur *mongo.Cursor) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = cur.Close(ctx)
}

// IsServerError reports whether err is an error the server sent back (as
// opposed to a network failure or a timeout).
func IsServerError(err error) bool {
	if err == nil || mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se mongo.ServerError
	return errors.As(err, &se)
}

// CheckDatabaseName checks a MongoDB database name ("" is accepted: it
// means the default).
func CheckDatabaseName(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 63 {
		return errors.New("longer than 63 bytes")
	}
	if i := strings.IndexAny(s, "/\\. \"$*<>:|?\x00"); i >= 0 {
		return fmt.Errorf("contains %q", s[i])
	}
	return nil
}

// CheckCollectionName checks a MongoDB collection (or GridFS bucket) name ("" is accepted:
// it means the default).
func CheckCollectionName(s string) error {
	if s == "" {
		return nil
	}
	if strings.ContainsAny(s, "$\x00") {
		return errors.New(`contains "$" or a NUL byte`)
	}
	if strings.HasPrefix(s, "system.") {
		return errors.New(`must not start with "system."`)
	}
	if len(s) > 200 {
		return errors.New("longer than 200 bytes")
	}
	return nil
}

// Location turns a pool key made with Key (plus "|database|collection" or
// "|gridfs|database|bucket") into words without credentials: the URI as
// Display shows it and the database and collection or bucket.
func Location(poolKey string) string {
	parts := strings.Split(poolKey, "|")
	if len(parts) < 5 {
		return "mongodb"
	}
	return parts[1] + " " + strings.Join(parts[4:], ".")
}
