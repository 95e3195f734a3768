package mongoconn

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/sweeper"
)

// Defaults shared by the mongodb and gridfs backends.
const (
	DefaultDatabase      = "caddy_cache"
	DefaultSweepInterval = time.Minute
)

// Config is the connection configuration of the mongodb and gridfs
// backends. They embed it, so its JSON fields sit beside their own. Its
// helpers are functions, not methods, so that the backends' method sets
// stay as they are.
type Config struct {
	// URI is the MongoDB connection string (mongodb:// or mongodb+srv://).
	// Placeholders such as {env.MONGO_URI} are replaced when the config is
	// loaded. It may hold a password: it is never logged, and log lines show
	// only its hosts. Required.
	URI string `json:"uri,omitempty"`
	// Database is the database holding the entries. Default: caddy_cache.
	Database string `json:"database,omitempty"`
	// ConnectTimeout bounds opening one connection to the server (each
	// storage call is bounded by the handler's storage timeout as well).
	// Default: 10s.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`
	// SweepInterval is how often expired entries are deleted. Shared by
	// every handler using the same database and collection (or bucket): the
	// newest config's value wins. Default: 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// Compression selects whether bodies are stored zstd-compressed
	// ("zstd") or as they are ("off"). Bodies that are already
	// content-encoded are never compressed again. Default: zstd.
	Compression string `json:"compression,omitempty"`
}

// Settings is a Config after defaults and placeholders.
type Settings struct {
	URI            string // resolved connection string; never log it
	Compression    storage.Compression
	ConnectTimeout time.Duration
	SweepInterval  time.Duration
}

// Check validates c, the configuration of a backend ("mongodb", "gridfs")
// whose own collection option is named nameOption and set to name. Errors
// start with "<backend> storage:" and name the option.
func Check(c *Config, backend, nameOption, name string) error {
	if strings.TrimSpace(c.URI) == "" {
		return fmt.Errorf("%s storage: uri is required", backend)
	}
	if err := CheckDatabaseName(c.Database); err != nil {
		return fmt.Errorf("%s storage: database %q: %w", backend, c.Database, err)
	}
	if err := CheckCollectionName(name); err != nil {
		return fmt.Errorf("%s storage: %s %q: %w", backend, nameOption, name, err)
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("%s storage: connect_timeout must not be negative, got %s", backend, time.Duration(c.ConnectTimeout))
	}
	if c.SweepInterval < 0 {
		return fmt.Errorf("%s storage: sweep_interval must not be negative, got %s", backend, time.Duration(c.SweepInterval))
	}
	if _, err := storage.ParseCompression(c.Compression); err != nil {
		return fmt.Errorf("%s storage: compression: %w", backend, err)
	}
	return nil
}

// Prepare fills in the default database of c and returns the settings to
// provision with. validate is the backend's Validate method, run after
// the defaults are set. It never touches the network.
func Prepare(c *Config, backend string, validate func() error) (Settings, error) {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if err := validate(); err != nil {
		return Settings{}, err
	}
	uri, err := ResolveURI(c.URI)
	if err != nil {
		return Settings{}, fmt.Errorf("%s storage: %w", backend, err)
	}
	comp, _ := storage.ParseCompression(c.Compression)
	return Settings{
		URI:            uri,
		Compression:    comp,
		ConnectTimeout: caddyopt.Positive(c.ConnectTimeout, DefaultConnectTimeout),
		SweepInterval:  caddyopt.Positive(c.SweepInterval, DefaultSweepInterval),
	}, nil
}

// ChangeSweepInterval sets the sweep interval of a shared store that an
// earlier config created, and logs when that changes it. what names the
// store ("collection", "bucket"), name its database.collection.
func ChangeSweepInterval(bg *sweeper.Loop, sweep time.Duration, logger *zap.Logger, backend, what, name string) {
	if old := bg.SetInterval(sweep); old != sweep {
		logger.Info("changing the sweep interval of a shared "+backend+" "+what,
			zap.String(what, name),
			zap.Duration("old_sweep_interval", old), zap.Duration("sweep_interval", sweep))
	}
}

// Drop releases the reference that *key holds in pool and clears *key, so
// that a second call does nothing.
func Drop(pool *caddy.UsagePool, key *string) error {
	if *key == "" {
		return nil
	}
	_, err := pool.Delete(*key)
	*key = ""
	return err
}

// Options are the names of the block options ParseCaddyfile handles itself.
var Options = []string{"uri", "database", "connect_timeout", "sweep_interval", "compression"}

// ParseCaddyfile reads a backend's storage block into c,
//
//	storage <backend> [<uri>] {
//		uri             <uri>
//		database        <name>
//		connect_timeout <duration>
//		sweep_interval  <duration>
//		compression     zstd|off
//		...
//	}
//
// handling the options of Config itself and handing every other option to
// own, which returns false for an option it does not know; ownOptions lists
// the names own knows, for typo hints. The uri may be given on the first
// line or in the block, not both, and is required.
func ParseCaddyfile(d *caddyfile.Dispenser, c *Config, backend string, ownOptions []string, own func(opt string) (known bool, err error)) error {
	d.Next() // backend name
	if d.NextArg() {
		c.URI = d.Val()
		if d.NextArg() {
			return d.Errf("%s storage: unexpected argument %q after the uri", backend, d.Val())
		}
	}
	once := make(caddyopt.Once)
	if c.URI != "" {
		once["uri"] = struct{}{}
	}
	for d.NextBlock(0) {
		if err := once.Check(d, ""); err != nil {
			return err
		}
		var err error
		switch opt := d.Val(); opt {
		case "uri":
			c.URI, err = caddyopt.String(d)
		case "database":
			if c.Database, err = caddyopt.String(d); err == nil {
				if e := CheckDatabaseName(c.Database); e != nil {
					err = d.Errf("database %q: %v", c.Database, e)
				}
			}
		case "connect_timeout":
			c.ConnectTimeout, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "sweep_interval":
			c.SweepInterval, err = caddyopt.Duration(d, caddyopt.NoZero)
		case "compression":
			if c.Compression, err = caddyopt.String(d); err == nil {
				if _, e := storage.ParseCompression(c.Compression); e != nil {
					err = d.Errf("compression: %v", e)
				}
			}
		default:
			var known bool
			if known, err = own(opt); !known {
				err = caddyopt.Unknown(d, backend+" storage", opt, append(slices.Clip(Options), ownOptions...))
			}
		}
		if err != nil {
			return err
		}
	}
	if c.URI == "" {
		return d.Errf("%s storage: uri is required (on the storage line or as the uri option)", backend)
	}
	return nil
}
