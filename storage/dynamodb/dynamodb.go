// Package dynamodb is the Amazon DynamoDB storage backend.
//
// # Items
//
// Every cache entry is one item (the manifest) in a table whose partition
// key is the string attribute pk:
//
//	pk         S  <namespace>:<key>, or <namespace>#h:<sha256 of key> when that
//	              would exceed DynamoDB's 2048-byte partition key limit
//	ns         S  the namespace
//	k          S  the cache key (checked on every read, so a hashed pk can
//	              never return another key's entry)
//	url        S  the request URL
//	tags       L  surrogate keys (omitted when there are none)
//	expires_at N  expiry, Unix seconds rounded up: the table's TTL attribute
//	              (omitted for entries that never expire)
//	meta       B  the entry without its body, for listing
//	body_size  N  bytes of the body, uncompressed
//	size       N  bytes of the stored encoding
//	data       B  the entry in the storage encoding, when it fits in the item
//	parts, gen N, S  otherwise: the number of body parts and their generation
//
// # Large entries are split into parts
//
// DynamoDB items are limited to 400 KB. An encoded entry that does not fit
// in its manifest is split into parts of at most 384 KiB, each its own item
// (pk <namespace>#p:<gen>:<i>, with data and the entry's expires_at). The
// parts are written first, then the manifest that names their generation,
// so a reader never finds a manifest whose parts are not all written. An
// overwrite or Delete removes the parts of the manifest it replaced; a reader
// that loses that race (its manifest's parts are gone) reads the manifest
// again. Parts left behind by a failed Put expire through the TTL attribute
// with their entry. So there is no size limit besides the handler's
// max_object_size; each part costs one write and one read unit per KB.
// With consistent_reads off, a reader may briefly miss the parts of a new
// entry and then reports it as not found.
//
// The only entries refused with storage.ErrTooLarge are those whose headers
// alone (the meta attribute) do not fit in an item.
//
// # Expiry
//
// DynamoDB's TTL deletion is lazy (it can take days on AWS), so reads check
// the exact expiry and never return an expired entry; TTL only reclaims the
// space.
//
// # Costs of the extras
//
// List and Stats Scan the whole table (every namespace in it), page by page:
// they consume read capacity for every item in the table, not only the
// matching ones. They are meant for occasional inspection and purges, not
// for request paths.
package dynamodb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(DynamoDB{})
}

// Defaults.
const (
	DefaultTable     = "caddy-cache"
	DefaultNamespace = "caddy-cache"
)

// maxNamespace bounds the namespace so that part keys stay short.
const maxNamespace = 1024

var tableNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// DynamoDB stores cache entries as items in a DynamoDB table. The client is
// shared by every handler (and every config reload) using the same
// endpoint, region, table and credentials.
type DynamoDB struct {
	// Table is the name of the table. Its partition key must be the string
	// attribute "pk" (no sort key); create_table creates it that way.
	// Default: caddy-cache.
	Table string `json:"table,omitempty"`
	// Namespace is prepended to every partition key, so several caches can
	// share a table. At most 1024 bytes. Default: caddy-cache.
	Namespace string `json:"namespace,omitempty"`
	// Region is the AWS region. Default: from the AWS environment
	// (AWS_REGION, the shared config file); required if none is found.
	Region string `json:"region,omitempty"`
	// Endpoint overrides the service URL, for DynamoDB Local and other
	// compatible services (http://127.0.0.1:8000). Default: AWS's endpoint
	// for the region.
	Endpoint string `json:"endpoint,omitempty"`
	// CreateTable creates the table when it does not exist (on-demand
	// billing, partition key pk) and enables TTL on expires_at, on first
	// use. Meant for development and tests: in production, create the table
	// with your infrastructure tooling and leave this off (it needs the
	// CreateTable, DescribeTable, DescribeTimeToLive and UpdateTimeToLive
	// permissions). Default: false.
	CreateTable bool `json:"create_table,omitempty"`
	// AccessKeyID and SecretAccessKey are static credentials. Placeholders
	// such as {env.CACHE_AWS_KEY} are replaced; they are never logged.
	// Default: the AWS default credential chain (environment, shared
	// files, web identity, container and instance roles).
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	// ConsistentReads makes reads strongly consistent, so a Get right after
	// a Put in another process sees it; eventually consistent reads cost
	// half as much. Default: true.
	ConsistentReads *bool `json:"consistent_reads,omitempty"`
	// Compression selects whether bodies are stored zstd-compressed
	// ("zstd") or as they are ("off"). Default: zstd.
	Compression string `json:"compression,omitempty"`

	comp       storage.Compression
	consistent bool
	ns         string
	shared     *table
	poolKey    string
	logger     *zap.Logger
	httpClient dynamodb.HTTPClient // tests: the SDK client's transport (a new pooled client only)
}

// CaddyModule returns the Caddy module information.
func (DynamoDB) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.dynamodb",
		New: func() caddy.Module { return new(DynamoDB) },
	}
}

var pool = caddy.NewUsagePool()

// Provision checks the configuration and obtains the shared client. It
// reads the AWS environment and shared config files but does not contact
// the service; the table is created (with create_table) on first use.
func (d *DynamoDB) Provision(ctx caddy.Context) error {
	if d.logger == nil { // tests may set one
		d.logger = ctx.Logger()
	}
	if err := d.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	tableName := repl.ReplaceKnown(d.Table, "")
	if tableName == "" {
		tableName = DefaultTable
	}
	if !tableNameRE.MatchString(tableName) {
		return fmt.Errorf("dynamodb storage: table %q: want 3-255 letters, digits, '_', '-' or '.'", tableName)
	}
	d.ns = repl.ReplaceKnown(d.Namespace, "")
	if d.ns == "" {
		d.ns = DefaultNamespace
	}
	if len(d.ns) > maxNamespace {
		return fmt.Errorf("dynamodb storage: namespace is %d bytes, at most %d allowed", len(d.ns), maxNamespace)
	}
	region := repl.ReplaceKnown(d.Region, "")
	endpoint := repl.ReplaceKnown(d.Endpoint, "")
	if endpoint != "" {
		if err := checkEndpoint(endpoint); err != nil {
			return fmt.Errorf("dynamodb storage: endpoint %q: %w", endpoint, err)
		}
	}
	keyID := repl.ReplaceKnown(d.AccessKeyID, "")
	secret := repl.ReplaceKnown(d.SecretAccessKey, "")
	if (keyID == "") != (secret == "") {
		return errors.New("dynamodb storage: access_key_id and secret_access_key must be set together (after replacing placeholders)")
	}
	d.comp, _ = storage.ParseCompression(d.Compression)
	d.consistent = d.ConsistentReads == nil || *d.ConsistentReads

	sum := sha256.Sum256([]byte(keyID + "\x00" + secret))
	key := strings.Join([]string{"dynamodb", endpoint, region, tableName, hex.EncodeToString(sum[:12])}, "|")
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		var opts []func(*config.LoadOptions) error
		if region != "" {
			opts = append(opts, config.WithRegion(region))
		}
		if keyID != "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, "")))
		}
		cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
		if err != nil {
			return nil, fmt.Errorf("loading the AWS configuration: %w", err)
		}
		if cfg.Region == "" {
			return nil, errors.New("region is not set and none was found in the AWS environment (AWS_REGION or the shared config file)")
		}
		client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			if d.httpClient != nil {
				o.HTTPClient = d.httpClient
			}
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
				// DynamoDB Local sends error responses whose CRC32
				// header does not match; the SDK would log a warning
				// for each.
				o.DisableValidateResponseChecksum = true
			}
		})
		where := endpoint
		if where == "" {
			where = cfg.Region
		}
		return newTable(client, tableName, where, d.logger), nil
	})
	if err != nil {
		return fmt.Errorf("dynamodb storage: table %s: %w", tableName, err)
	}
	d.poolKey, d.shared = key, v.(*table)
	d.shared.health.SetLogger(d.logger)
	return nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// Validate checks the configuration.
func (d *DynamoDB) Validate() error {
	if d.Table != "" && !strings.Contains(d.Table, "{") && !tableNameRE.MatchString(d.Table) {
		return fmt.Errorf("dynamodb storage: table %q: want 3-255 letters, digits, '_', '-' or '.'", d.Table)
	}
	if len(d.Namespace) > maxNamespace {
		return fmt.Errorf("dynamodb storage: namespace is %d bytes, at most %d allowed", len(d.Namespace), maxNamespace)
	}
	if d.Endpoint != "" && !strings.Contains(d.Endpoint, "{") {
		if err := checkEndpoint(d.Endpoint); err != nil {
			return fmt.Errorf("dynamodb storage: endpoint %q: %w", d.Endpoint, err)
		}
	}
	if (d.AccessKeyID == "") != (d.SecretAccessKey == "") {
		return errors.New("dynamodb storage: access_key_id and secret_access_key must be set together")
	}
	if _, err := storage.ParseCompression(d.Compression); err != nil {
		return fmt.Errorf("dynamodb storage: compression: %w", err)
	}
	return nil
}

// Cleanup releases this handle's reference to the shared client.
func (d *DynamoDB) Cleanup() error {
	if d.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(d.poolKey)
	d.poolKey = ""
	return err
}

// LogsHealth implements storage.HealthLogger: this store logs one Warn when
// its server stops answering and one Info when it is back.
func (d *DynamoDB) LogsHealth() bool { return true }

// Get implements storage.Store.
func (d *DynamoDB) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := d.get(ctx, key)
	_ = d.observe(err)
	return e, err
}

// Put implements storage.Store. Entries too large for one item are split
// into parts (see the package documentation).
func (d *DynamoDB) Put(ctx context.Context, key string, e *storage.Entry) error {
	return d.observe(d.put(ctx, key, e))
}

// Delete implements storage.Store.
func (d *DynamoDB) Delete(ctx context.Context, key string) error {
	return d.observe(d.delete(ctx, key))
}

// List implements storage.Lister with a paginated Scan of the whole table
// (see the package documentation for its cost). It reads the meta
// attribute, never bodies or parts.
func (d *DynamoDB) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	err := d.list(ctx, prefix, fn)
	if cb, ok := errors.AsType[cbError](err); ok {
		return cb.err
	}
	return d.observe(err)
}

// Stats implements storage.Statser with a paginated Scan of the whole table
// (see the package documentation for its cost). Entries whose expiry passed
// less than a second ago may still be counted; Evictions is always 0.
func (d *DynamoDB) Stats(ctx context.Context) (storage.Stats, error) {
	s, err := d.stats(ctx)
	_ = d.observe(err)
	return s, err
}

// DeleteExpired implements storage.Expirer: DynamoDB's TTL deletion is
// lazy (it can take days), so this removes the entries whose expires_at
// has passed now, with their parts. It Scans the whole table (see the
// package documentation for the cost) and deletes each expired item with a
// condition, so an entry replaced meanwhile stays.
func (d *DynamoDB) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := d.deleteExpired(ctx)
	_ = d.observe(err)
	return n, err
}

// observe feeds the outcome of a call to the health tracker and notices a
// table that disappeared.
func (d *DynamoDB) observe(err error) error {
	d.shared.tableGone(err)
	return d.shared.health.Observe(err)
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	storage dynamodb [<table>] {
//		table             <name>
//		namespace         <namespace>
//		region            <region>
//		endpoint          <url>
//		create_table      [true|false]
//		access_key_id     <id>
//		secret_access_key <secret>
//		consistent_reads  true|false
//		compression       zstd|off
//	}
//
// The table may be given on the first line or in the block, not both.
func (d *DynamoDB) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next() // backend name
	if disp.NextArg() {
		d.Table = disp.Val()
		if disp.NextArg() {
			return disp.Errf("dynamodb storage: unexpected argument %q after the table", disp.Val())
		}
	}
	once := make(caddyopt.Once)
	if d.Table != "" {
		once["table"] = struct{}{}
	}
	for disp.NextBlock(0) {
		opt := disp.Val()
		if err := once.Check(disp, ""); err != nil {
			return err
		}
		var err error
		switch opt {
		case "table":
			d.Table, err = caddyopt.String(disp)
		case "namespace":
			d.Namespace, err = caddyopt.String(disp)
		case "region":
			d.Region, err = caddyopt.String(disp)
		case "endpoint":
			if d.Endpoint, err = caddyopt.String(disp); err == nil && !strings.Contains(d.Endpoint, "{") {
				if e := checkEndpoint(d.Endpoint); e != nil {
					err = disp.Errf("endpoint %q: %v", d.Endpoint, e)
				}
			}
		case "create_table":
			d.CreateTable, err = caddyopt.Bool(disp)
		case "access_key_id":
			d.AccessKeyID, err = caddyopt.String(disp)
		case "secret_access_key":
			d.SecretAccessKey, err = caddyopt.String(disp)
		case "consistent_reads":
			var b bool
			b, err = caddyopt.Bool(disp)
			d.ConsistentReads = &b
		case "compression":
			if d.Compression, err = caddyopt.String(disp); err == nil {
				if _, e := storage.ParseCompression(d.Compression); e != nil {
					err = disp.Errf("compression: %v", e)
				}
			}
		default:
			err = caddyopt.Unknown(disp, "dynamodb storage", opt, options)
		}
		if err != nil {
			return err
		}
	}
	if d.Table != "" && !strings.Contains(d.Table, "{") && !tableNameRE.MatchString(d.Table) {
		return disp.Errf("table %q: want 3-255 letters, digits, '_', '-' or '.'", d.Table)
	}
	if (d.AccessKeyID == "") != (d.SecretAccessKey == "") {
		return disp.Err("access_key_id and secret_access_key must be set together")
	}
	return nil
}

// options are the block's option names, for typo hints.
var options = []string{
	"table", "namespace", "region", "endpoint", "create_table", "access_key_id",
	"secret_access_key", "consistent_reads", "compression",
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*DynamoDB)(nil)
	_ caddy.Validator       = (*DynamoDB)(nil)
	_ caddy.CleanerUpper    = (*DynamoDB)(nil)
	_ caddyfile.Unmarshaler = (*DynamoDB)(nil)
	_ storage.Store         = (*DynamoDB)(nil)
	_ storage.Lister        = (*DynamoDB)(nil)
	_ storage.Statser       = (*DynamoDB)(nil)
	_ storage.Expirer       = (*DynamoDB)(nil)
	_ caddy.Destructor      = (*table)(nil)
)

// StorageIdentity implements storage.Identifier: the data this module
// reaches, the key of its shared state (secrets hashed). Empty before
// Provision.
func (d *DynamoDB) StorageIdentity() string { return d.poolKey }

// Location implements storage.Locator, for the handler's start-up log
// line.
func (d *DynamoDB) Location() string { return d.location() }

var (
	_ storage.Identifier = (*DynamoDB)(nil)
	_ storage.Locator    = (*DynamoDB)(nil)
)

// location is the endpoint, region and table (the key of the shared
// client without its credential hash).
func (d *DynamoDB) location() string {
	parts := strings.Split(d.poolKey, "|")
	if len(parts) < 4 {
		return "dynamodb"
	}
	return strings.Join(parts[1:4], " ")
}
