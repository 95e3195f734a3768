// Package redis is the Redis storage backend: standalone Redis, Redis
// Cluster and Sentinel-managed Redis, shared by every Caddy instance that
// points at it.
//
// # Key layout
//
// Every entry is one Redis string under
//
//	<namespace>:e:<cache key>
//
// holding the bytes of storage.Encode (metadata, body and a checksum). Cache
// keys may contain any bytes (spaces, newlines, NUL); Redis keys are binary
// safe, so they are used as they are. The key carries a native expiry (PX)
// of the entry's Expires plus stale_grace; entries without an Expires do not
// expire in Redis either.
//
// # Large values
//
// An entry is written with one SET of at most max_entry_size bytes (default
// 16 MiB, at most 512 MiB, Redis's proto-max-bulk-len default). Values are
// not chunked: Redis reads a large value from its socket incrementally
// without blocking other clients, a single SET keeps Put atomic (a reader
// sees the old or the new entry, never a mix) and a single GET keeps a hit
// to one round trip. Chunking would need a manifest and a second key space
// for no gain at these sizes.
//
// # Faults
//
// The client connects lazily: Provision never waits on the network, and a
// Redis that is down at start-up (or later) only makes calls fail, which the
// handler treats as misses. One Warn is logged when Redis stops answering and
// one Info when it answers again; go-redis reconnects by itself.
package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/outage"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/health"
)

func init() {
	caddy.RegisterModule(Redis{})
}

// Defaults.
const (
	// DefaultNamespace is the default key prefix.
	DefaultNamespace = "caddy-cache"
	// DefaultMaxEntrySize is the default largest encoded entry stored.
	DefaultMaxEntrySize = 16 << 20
	// MaxMaxEntrySize is the largest max_entry_size accepted: Redis's
	// default proto-max-bulk-len.
	MaxMaxEntrySize = 512 << 20
	// DefaultAddress is the server used when neither url nor addresses is set.
	DefaultAddress = "127.0.0.1:6379"
)

// Redis stores cache entries in Redis: a single server, a Redis Cluster
// (several addresses, or cluster set) or a Sentinel-managed master
// (sentinel_master set, addresses are the sentinels).
//
// The connection pool is shared by every config that names the same server
// with the same identity (addresses, db, username, password, TLS, Sentinel
// master, cluster mode, pool and timeout settings), and survives config
// reloads. namespace, max_entry_size, compression and stale_grace belong to
// each config and change without reconnecting.
type Redis struct {
	// URL of the server, redis://[user:password@]host[:port][/db] or
	// rediss:// for TLS, with go-redis's query options (for example
	// ?dial_timeout=3s). Placeholders such as {env.REDIS_URL} are replaced
	// at provision time. Mutually exclusive with addresses.
	URL string `json:"url,omitempty"`
	// Addresses (host:port) of the server, of Cluster seed nodes, or of
	// the sentinels when sentinel_master is set. Two or more addresses
	// without sentinel_master select Cluster mode. Mutually exclusive with
	// url. Default: 127.0.0.1:6379 when url is not set either.
	Addresses []string `json:"addresses,omitempty"`
	// Username for Redis ACL authentication (AUTH username password).
	// Placeholders are replaced at provision time.
	Username string `json:"username,omitempty"`
	// Password for AUTH. Placeholders (such as {env.REDIS_PASSWORD}) are
	// replaced at provision time. It is never logged.
	Password string `json:"password,omitempty"`
	// DB is the database number selected after connecting. Must be 0 for
	// Cluster. Default: 0 (or the /db of url).
	DB int `json:"db,omitempty"`
	// TLS enables TLS to Redis: true, or an object with settings (which
	// implies true). A rediss:// url enables it too. Default: off.
	TLS *TLSConfig `json:"tls,omitempty"`
	// SentinelMaster is the name of the master monitored by the sentinels
	// listed in addresses. Setting it selects Sentinel (failover) mode.
	SentinelMaster string `json:"sentinel_master,omitempty"`
	// SentinelPassword authenticates to the sentinels themselves.
	// Placeholders are replaced at provision time. Only with
	// sentinel_master.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// Cluster forces Redis Cluster mode, for a single seed address (a
	// cluster configuration endpoint). Default: false (Cluster mode is
	// still chosen with two or more addresses).
	Cluster bool `json:"cluster,omitempty"`
	// Namespace prefixes every key this store writes, so several caches
	// (or other applications) can share one Redis. Default: "caddy-cache".
	Namespace string `json:"namespace,omitempty"`
	// PoolSize is the maximum number of connections per Redis node.
	// Default: 10 per CPU (go-redis's default).
	PoolSize int `json:"pool_size,omitempty"`
	// MinIdleConns is the number of idle connections kept open per node.
	// Default: 0.
	MinIdleConns int `json:"min_idle_conns,omitempty"`
	// DialTimeout bounds establishing a connection. Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ReadTimeout bounds waiting for a reply. Each call is also bounded by
	// the handler's storage_timeout, whichever is shorter. Default: 5s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// WriteTimeout bounds sending a command. Default: read_timeout.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// StaleGrace keeps entries in Redis this long past their Expires, as a
	// margin for clocks that differ between the instances sharing the
	// Redis. Entries already carry their stale-serving time in Expires, and
	// Get never returns an entry past its Expires. Default: 0.
	StaleGrace caddy.Duration `json:"stale_grace,omitempty"`
	// MaxEntrySize is the largest encoded entry (metadata plus the body,
	// after compression) that Put stores; larger ones are refused with
	// storage.ErrTooLarge and the key is deleted. Default: 16 MiB; at most
	// 512 MiB.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`
	// Compression of stored bodies: "zstd" (bodies of 1 KiB or more that
	// shrink and are not already content-encoded) or "off".
	// Default: "zstd".
	Compression string `json:"compression,omitempty"`

	compression storage.Compression
	prefix      string // namespace + ":e:"
	poolKey     string
	shared      *client
	logger      *zap.Logger
}

// TLSConfig configures TLS to Redis. In JSON it is either a boolean or an
// object; an object enables TLS.
type TLSConfig struct {
	// InsecureSkipVerify disables verification of the server's
	// certificate. For tests only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// ServerName overrides the name verified in the server's certificate.
	// Default: the host of the (first) address.
	ServerName string `json:"server_name,omitempty"`
	// CAFile is a PEM file of the CA certificates that verify the server.
	// Default: the system roots.
	CAFile string `json:"ca_file,omitempty"`

	disabled bool
}

// Enabled reports whether the configuration turns TLS on.
func (t *TLSConfig) Enabled() bool { return t != nil && !t.disabled }

// UnmarshalJSON accepts true, false or an object of settings.
func (t *TLSConfig) UnmarshalJSON(b []byte) error {
	switch strings.TrimSpace(string(b)) {
	case "true":
		*t = TLSConfig{}
		return nil
	case "false":
		*t = TLSConfig{disabled: true}
		return nil
	}
	type plain TLSConfig
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("tls: want true, false or an object: %w", err)
	}
	*t = TLSConfig(p)
	return nil
}

// MarshalJSON writes false, true or the object of settings.
func (t TLSConfig) MarshalJSON() ([]byte, error) {
	if t.disabled {
		return []byte("false"), nil
	}
	if t == (TLSConfig{}) {
		return []byte("true"), nil
	}
	type plain TLSConfig
	return json.Marshal(plain(t))
}

// clients holds the live go-redis clients, shared across configs.
var clients = caddy.NewUsagePool()

// CaddyModule returns the Caddy module information.
func (Redis) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.redis",
		New: func() caddy.Module { return new(Redis) },
	}
}

// Provision validates the configuration and obtains (or creates) the shared
// client. It does not contact Redis: the client connects on first use, and a
// background PING only logs a warning when Redis cannot be reached.
func (r *Redis) Provision(ctx caddy.Context) error {
	if r.logger == nil {
		r.logger = ctx.Logger()
	}
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	}
	if r.MaxEntrySize == 0 {
		r.MaxEntrySize = DefaultMaxEntrySize
	}
	if err := r.Validate(); err != nil {
		return err
	}
	r.compression, _ = storage.ParseCompression(r.Compression)
	r.prefix = r.Namespace + ":e:"

	opts, id, err := r.clientOptions(caddy.NewReplacer())
	if err != nil {
		return err
	}
	key, err := id.key()
	if err != nil {
		return fmt.Errorf("redis storage: %w", err)
	}
	v, loaded, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &client{rdb: goredis.NewUniversalClient(opts), display: id.Display, health: outage.New(health.RecoveryPolicy)}, nil
	})
	if err != nil {
		return fmt.Errorf("redis storage %s: %w", id.Display, err)
	}
	r.poolKey, r.shared = key, v.(*client)
	if !loaded {
		go r.shared.probe(r.logger, time.Duration(r.DialTimeout))
	}
	r.logger.Debug("redis storage provisioned",
		zap.String("server", id.Display),
		zap.String("namespace", r.Namespace),
		zap.Bool("shared_client", loaded))
	return nil
}

// Validate checks the static configuration. It is called by Provision
// before anything is acquired.
func (r *Redis) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("redis storage: "+format, args...)
	}
	if r.URL != "" && len(r.Addresses) > 0 {
		return fail("url and addresses are mutually exclusive: set one of them")
	}
	for _, a := range r.Addresses {
		if strings.Contains(a, "{") {
			continue // placeholder, checked after replacement
		}
		if err := checkAddress(a); err != nil {
			return fail("addresses: %v", err)
		}
	}
	if r.DB < 0 {
		return fail("db must not be negative, got %d", r.DB)
	}
	if r.SentinelPassword != "" && r.SentinelMaster == "" {
		return fail("sentinel_password needs sentinel_master")
	}
	if r.SentinelMaster != "" && r.Cluster {
		return fail("sentinel_master and cluster are mutually exclusive")
	}
	if r.DB != 0 && r.clusterMode() {
		return fail("db must be 0 in Cluster mode (Redis Cluster has only database 0), got %d", r.DB)
	}
	if r.Namespace == "" {
		return fail("namespace must not be empty")
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"pool_size", int64(r.PoolSize)},
		{"min_idle_conns", int64(r.MinIdleConns)},
		{"dial_timeout", int64(r.DialTimeout)},
		{"read_timeout", int64(r.ReadTimeout)},
		{"write_timeout", int64(r.WriteTimeout)},
		{"stale_grace", int64(r.StaleGrace)},
		{"max_entry_size", r.MaxEntrySize},
	} {
		if n.v < 0 {
			return fail("%s must not be negative, got %d", n.name, n.v)
		}
	}
	if r.MaxEntrySize > MaxMaxEntrySize {
		return fail("max_entry_size %d is larger than Redis's 512 MiB value limit", r.MaxEntrySize)
	}
	if _, err := storage.ParseCompression(r.Compression); err != nil {
		return fail("compression: %v", err)
	}
	if r.TLS != nil && r.TLS.disabled && strings.HasPrefix(strings.ToLower(r.URL), "rediss:") {
		return fail("tls is off but url uses rediss://")
	}
	return nil
}

// Cleanup releases this handle's reference to the shared client; the last
// reference closes it.
func (r *Redis) Cleanup() error {
	if r.poolKey == "" {
		return nil
	}
	_, err := clients.Delete(r.poolKey)
	r.poolKey = ""
	return err
}

// clusterMode reports whether the configuration selects Redis Cluster.
func (r *Redis) clusterMode() bool {
	return r.SentinelMaster == "" && (r.Cluster || len(r.Addresses) > 1)
}

func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %v", a, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("%q: want host:port", a)
	}
	return nil
}

// identity is what makes two configs share one client. Secrets appear only
// as SHA-256 hashes.
type identity struct {
	Addresses        []string `json:"addresses"`
	URL              string   `json:"url,omitempty"` // password redacted
	DB               int      `json:"db"`
	Username         string   `json:"username,omitempty"`
	PasswordSHA256   string   `json:"password_sha256,omitempty"`
	SentinelMaster   string   `json:"sentinel_master,omitempty"`
	SentinelPassHash string   `json:"sentinel_password_sha256,omitempty"`
	Cluster          bool     `json:"cluster"`
	TLS              bool     `json:"tls"`
	TLSInsecure      bool     `json:"tls_insecure,omitempty"`
	TLSServerName    string   `json:"tls_server_name,omitempty"`
	TLSCAFile        string   `json:"tls_ca_file,omitempty"`
	TLSCASHA256      string   `json:"tls_ca_sha256,omitempty"`
	PoolSize         int      `json:"pool_size,omitempty"`
	MinIdleConns     int      `json:"min_idle_conns,omitempty"`
	DialTimeout      int64    `json:"dial_timeout,omitempty"`
	ReadTimeout      int64    `json:"read_timeout,omitempty"`
	WriteTimeout     int64    `json:"write_timeout,omitempty"`

	// Display names the server in logs and errors (no secrets).
	Display string `json:"-"`
}

func (id identity) key() (string, error) {
	b, err := json.Marshal(id)
	if err != nil {
		return "", err
	}
	return "redis:" + string(b), nil
}

func hashSecret(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// clientOptions resolves placeholders and builds the go-redis options and
// the identity of the client they describe.
func (r *Redis) clientOptions(repl *caddy.Replacer) (*goredis.UniversalOptions, identity, error) {
	opts := &goredis.UniversalOptions{
		Username:         repl.ReplaceAll(r.Username, ""),
		Password:         repl.ReplaceAll(r.Password, ""),
		DB:               r.DB,
		MasterName:       r.SentinelMaster,
		SentinelPassword: repl.ReplaceAll(r.SentinelPassword, ""),
		IsClusterMode:    r.Cluster,
		PoolSize:         r.PoolSize,
		MinIdleConns:     r.MinIdleConns,
		DialTimeout:      time.Duration(r.DialTimeout),
		ReadTimeout:      time.Duration(r.ReadTimeout),
		WriteTimeout:     time.Duration(r.WriteTimeout),
		// Socket deadlines follow the caller's ctx (the handler's
		// storage_timeout), so a hung Redis costs at most that.
		ContextTimeoutEnabled: true,
		// One dial per attempt: a refused connection fails the call at
		// once (go-redis still retries the command a few times with a
		// short backoff) instead of spending the caller's storage_timeout
		// on dial retries; the request goes to the origin meanwhile.
		DialerRetries: 1,
		// Maintenance notifications are a Redis Enterprise/Cloud feature
		// that needs RESP3 push support; off keeps plain servers quiet.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		DisableIdentity:          true,
	}
	var id identity
	var urlTLS *tls.Config

	if r.URL != "" {
		raw := repl.ReplaceAll(r.URL, "")
		u, err := url.Parse(raw)
		if err != nil {
			if ue, ok := errors.AsType[*url.Error](err); ok {
				err = ue.Err // the url.Error text would repeat the password
			}
			return nil, id, fmt.Errorf("redis storage: url: %v", err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, id, fmt.Errorf("redis storage: url: scheme must be redis or rediss, got %q", u.Scheme)
		}
		o, err := goredis.ParseURL(raw)
		if err != nil {
			return nil, id, fmt.Errorf("redis storage: url %s: %v", u.Redacted(), err)
		}
		opts.Addrs = []string{o.Addr}
		if opts.Username == "" {
			opts.Username = o.Username
		}
		if opts.Password == "" {
			opts.Password = o.Password
		}
		if opts.DB == 0 {
			opts.DB = o.DB
		}
		urlTLS = o.TLSConfig
		// Query options of the URL, unless the config sets them.
		opts.MaxRetries = o.MaxRetries
		opts.MinRetryBackoff, opts.MaxRetryBackoff = o.MinRetryBackoff, o.MaxRetryBackoff
		setDefault(&opts.DialTimeout, o.DialTimeout)
		setDefault(&opts.ReadTimeout, o.ReadTimeout)
		setDefault(&opts.WriteTimeout, o.WriteTimeout)
		setDefault(&opts.PoolSize, o.PoolSize)
		setDefault(&opts.MinIdleConns, o.MinIdleConns)
		opts.PoolTimeout, opts.ConnMaxIdleTime, opts.ConnMaxLifetime = o.PoolTimeout, o.ConnMaxIdleTime, o.ConnMaxLifetime
		opts.MaxIdleConns, opts.MaxActiveConns = o.MaxIdleConns, o.MaxActiveConns
		if o.Protocol != 0 {
			opts.Protocol = o.Protocol
		}
		id.URL = u.Redacted()
	} else {
		addrs := r.Addresses
		if len(addrs) == 0 {
			addrs = []string{DefaultAddress}
		}
		for _, a := range addrs {
			a = repl.ReplaceAll(a, "")
			if err := checkAddress(a); err != nil {
				return nil, id, fmt.Errorf("redis storage: addresses: %v", err)
			}
			opts.Addrs = append(opts.Addrs, a)
		}
	}
	if opts.DB != 0 && (opts.IsClusterMode || (opts.MasterName == "" && len(opts.Addrs) > 1)) {
		return nil, id, fmt.Errorf("redis storage: db must be 0 in Cluster mode, got %d", opts.DB)
	}

	// TLS: from a rediss:// url and/or the tls option.
	if r.TLS.Enabled() || urlTLS != nil {
		tc := urlTLS
		if tc == nil {
			host, _, _ := net.SplitHostPort(opts.Addrs[0])
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		id.TLS = true
		if r.TLS.Enabled() {
			if r.TLS.ServerName != "" {
				tc.ServerName = r.TLS.ServerName
			}
			if r.TLS.InsecureSkipVerify {
				tc.InsecureSkipVerify = true
			}
			if r.TLS.CAFile != "" {
				pem, err := os.ReadFile(r.TLS.CAFile)
				if err != nil {
					return nil, id, fmt.Errorf("redis storage: tls ca_file: %v", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, id, fmt.Errorf("redis storage: tls ca_file %s: no PEM certificates found", r.TLS.CAFile)
				}
				tc.RootCAs = pool
				id.TLSCAFile = r.TLS.CAFile
				id.TLSCASHA256 = hashSecret(string(pem))
			}
		}
		opts.TLSConfig = tc
		id.TLSServerName, id.TLSInsecure = tc.ServerName, tc.InsecureSkipVerify
	}

	id.Addresses = opts.Addrs
	id.DB = opts.DB
	id.Username = opts.Username
	id.PasswordSHA256 = hashSecret(opts.Password)
	id.SentinelMaster = opts.MasterName
	id.SentinelPassHash = hashSecret(opts.SentinelPassword)
	id.Cluster = opts.IsClusterMode || (opts.MasterName == "" && len(opts.Addrs) > 1)
	id.PoolSize, id.MinIdleConns = opts.PoolSize, opts.MinIdleConns
	id.DialTimeout, id.ReadTimeout, id.WriteTimeout = int64(opts.DialTimeout), int64(opts.ReadTimeout), int64(opts.WriteTimeout)

	switch {
	case id.URL != "":
		id.Display = id.URL
	case opts.MasterName != "":
		id.Display = "sentinel " + opts.MasterName + " via " + strings.Join(opts.Addrs, ",")
	case id.Cluster:
		id.Display = "cluster " + strings.Join(opts.Addrs, ",")
	default:
		id.Display = opts.Addrs[0]
	}
	if id.URL == "" && id.TLS {
		id.Display += " (tls)"
	}
	return opts, id, nil
}

func setDefault[T comparable](dst *T, v T) {
	var zero T
	if *dst == zero {
		*dst = v
	}
}

// client is the live, shared connection pool plus its health state.
type client struct {
	rdb     goredis.UniversalClient
	display string
	health  *outage.Tracker
}

// Destruct closes the connections.
func (c *client) Destruct() error { return c.rdb.Close() }

// probe pings Redis once in the background after the client was created,
// and marks it down (logging a warning) if it cannot be reached.
func (c *client) probe(logger *zap.Logger, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.rdb.Ping(ctx).Err()
	c.observe(logger, err)
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*Redis)(nil)
	_ caddy.Validator    = (*Redis)(nil)
	_ caddy.CleanerUpper = (*Redis)(nil)
	_ caddy.Destructor   = (*client)(nil)
	_ json.Marshaler     = TLSConfig{}
	_ json.Unmarshaler   = (*TLSConfig)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (r *Redis) StorageIdentity() string { return r.poolKey + "|" + r.prefix }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (r *Redis) Location() string { return r.location() }

var (
	_ storage.Identifier = (*Redis)(nil)
	_ storage.Locator    = (*Redis)(nil)
)

// location is the servers, database and namespace, without credentials.
func (r *Redis) location() string {
	addrs := strings.Join(r.Addresses, ",")
	if addrs == "" {
		addrs = DefaultAddress
		if u, err := url.Parse(r.URL); r.URL != "" && err == nil {
			addrs = u.Host // without the credentials
		}
	}
	return fmt.Sprintf("%s db %d namespace %s", addrs, r.DB, r.Namespace)
}
