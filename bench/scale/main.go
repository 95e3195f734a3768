// Command scale fills a cache store directly through the store's API, for
// the scale benchmark of bench/run.sh: storing a million entries through
// Caddy would take most of the run. The store is a SQLite file (-db) or a
// Redis database (-redis, a URL as in the Caddyfile).
//
// It copies one entry that Caddy stored (the template: its key contains
// -marker) under n new keys, with the marker replaced by the entry number,
// so that Caddy serves every copy as a hit of the URL with that number:
//
//	scale -db cache.db -marker n=tpl -from 0 -n 1000000 -tags 100
//	scale -redis redis://127.0.0.1:6379/2 -n 1000000
//
// Entry i gets the tag "t<i mod tags>" (so with -tags 100 a tag names 1 %
// of the entries), and with -expire its freshness ends that long after it
// is stored. It prints one line of JSON: how many entries and how long it took.
//
// SQLite entries are written with the store's Put, one per call, from -c
// writers. Redis entries are written in pipelines of -batch SETs from -c
// writers, each SET what the store's Put sends (the key under the store's
// prefix, storage.Encode of the entry with the store's compression, a PX of
// the time left to the entry's Expires plus stale_grace): one round trip per
// entry would make a million take minutes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/redis"
	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// Result is what one fill prints.
type Result struct {
	Entries int     `json:"entries"`
	Seconds float64 `json:"seconds"`
	Key     string  `json:"template_key"`
}

// config is what the flags say.
type config struct {
	db, redisURL   string
	key, marker    string
	prefix         string
	from, n, tags  int
	expire         time.Duration
	workers, batch int
}

// store is a filled store: Get and List find the template, write stores a
// batch of entries.
type store struct {
	storage.Store
	storage.Lister
	write   func(ctx context.Context, batch []item) error
	cleanup func() error
	name    string
}

// item is one entry to store under key.
type item struct {
	key string
	e   *storage.Entry
}

func main() {
	var c config
	flag.StringVar(&c.db, "db", "", "the SQLite file Caddy wrote the template entry to")
	flag.StringVar(&c.redisURL, "redis", "", "the Redis (redis://host:port/db) Caddy wrote the template entry to, default namespace")
	flag.StringVar(&c.marker, "marker", "n=tpl", "the part of the template key replaced by the entry number")
	flag.StringVar(&c.key, "key", "", "the template's key (default: the first key with -marker, found by listing the store)")
	flag.StringVar(&c.prefix, "prefix", "n=", "what the entry number follows in the new keys")
	flag.IntVar(&c.from, "from", 0, "first entry number")
	flag.IntVar(&c.n, "n", 1000, "how many entries")
	flag.IntVar(&c.tags, "tags", 100, "entry i gets the tag t<i mod tags> (0: no tags)")
	flag.DurationVar(&c.expire, "expire", 0, "each entry expires this long after it is stored (0: as the template)")
	flag.IntVar(&c.workers, "c", 4, "concurrent writers")
	flag.IntVar(&c.batch, "batch", 500, "entries per write: SETs per Redis pipeline (SQLite: Puts in a row)")
	flag.Parse()
	if (c.db == "") == (c.redisURL == "") || c.n <= 0 || c.workers <= 0 || c.batch <= 0 {
		fmt.Fprintln(os.Stderr, "scale: want one of -db and -redis, -n > 0, -c > 0 and -batch > 0")
		os.Exit(2)
	}
	res, err := fill(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// open provisions the store the flags name.
func open(ctx caddy.Context, c config) (*store, error) {
	if c.db != "" {
		unlimited := int64(0)
		// synchronous off: a crash during the fill only costs the benchmark
		// its file; Caddy opens it later with its own settings.
		s := &sqlite.SQLite{Path: c.db, MaxSize: &unlimited, Synchronous: "off"}
		if err := s.Provision(ctx); err != nil {
			return nil, err
		}
		return &store{
			Store: s, Lister: s, cleanup: s.Cleanup, name: c.db,
			write: func(ctx context.Context, batch []item) error {
				for _, it := range batch {
					if err := s.Put(ctx, it.key, it.e); err != nil {
						return err
					}
				}
				return nil
			},
		}, nil
	}
	r := &redis.Redis{URL: c.redisURL}
	if err := r.Provision(ctx); err != nil {
		return nil, err
	}
	comp, err := storage.ParseCompression(r.Compression)
	if err != nil {
		return nil, err
	}
	return &store{
		Store: r, Lister: r, cleanup: r.Cleanup, name: c.redisURL,
		write: func(ctx context.Context, batch []item) error {
			now := time.Now()
			_, err := r.Client().Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, it := range batch {
					var ttl time.Duration // 0: no expiry, as Put
					if !it.e.Expires.IsZero() {
						ttl = max(it.e.Expires.Sub(now)+time.Duration(r.StaleGrace), time.Millisecond)
					}
					p.Set(ctx, r.KeyPrefix()+it.key, storage.Encode(it.e, comp), ttl)
				}
				return nil
			})
			return err
		},
	}, nil
}

var errFound = errors.New("found")

func fill(c config) (Result, error) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s, err := open(ctx, c)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = s.cleanup() }()

	tplKey := c.key
	if tplKey == "" {
		err = s.List(ctx, "", func(k string, _ *storage.Entry) error {
			if strings.Contains(k, c.marker) {
				tplKey = k
				return errFound
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			return Result{}, fmt.Errorf("listing %s: %w", s.name, err)
		}
	}
	if tplKey == "" {
		return Result{}, fmt.Errorf("no entry of %s has %q in its key", s.name, c.marker)
	}
	tpl, err := s.Get(ctx, tplKey)
	if err != nil {
		return Result{}, fmt.Errorf("reading the template %q: %w", tplKey, err)
	}
	// entry returns the copy of the template numbered i.
	entry := func(i int) item {
		part := c.prefix + strconv.Itoa(i)
		e := *tpl
		e.URL = strings.Replace(tpl.URL, c.marker, part, 1)
		if c.expire > 0 {
			now := time.Now()
			e.RequestTime, e.ResponseTime, e.InitialAge = now, now, 0
			e.Lifetime, e.Expires = c.expire, now.Add(c.expire)
		}
		e.Tags = nil
		if c.tags > 0 {
			e.Tags = []string{"t" + strconv.Itoa(i%c.tags)}
		}
		return item{key: strings.Replace(tplKey, c.marker, part, 1), e: &e}
	}

	start := time.Now()
	work := make(chan [2]int, 64) // [first, end) of a batch
	errs := make(chan error, c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			batch := make([]item, 0, c.batch)
			for r := range work {
				batch = batch[:0]
				for i := r[0]; i < r[1]; i++ {
					batch = append(batch, entry(i))
				}
				if err := s.write(ctx, batch); err != nil {
					errs <- fmt.Errorf("storing entries %d to %d: %w", r[0], r[1]-1, err)
					return
				}
			}
		})
	}
	var ferr error
	for i, end := c.from, c.from+c.n; i < end && ferr == nil; i += c.batch {
		select {
		case work <- [2]int{i, min(i+c.batch, end)}:
		case ferr = <-errs:
		}
	}
	close(work)
	wg.Wait()
	if ferr == nil {
		select {
		case ferr = <-errs:
		default:
		}
	}
	if ferr != nil {
		return Result{}, ferr
	}
	return Result{Entries: c.n, Seconds: time.Since(start).Seconds(), Key: tplKey}, nil
}
