// Command scale fills a SQLite cache file directly through the store's API,
// for the scale benchmark of bench/run.sh: storing a million entries
// through Caddy would take most of the run.
//
// It copies one entry that Caddy stored (the template: its key contains
// -marker) under n new keys, with the marker replaced by the entry number,
// so that Caddy serves every copy as a hit of the URL with that number:
//
//	scale -db cache.db -marker n=tpl -from 0 -n 1000000 -tags 100
//
// Entry i gets the tag "t<i mod tags>" (so with -tags 100 a tag names 1 %
// of the entries), and with -expire its freshness ends that long after it
// is stored. It prints one line of JSON: how many entries and how long it took.
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

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// Result is what one fill prints.
type Result struct {
	Entries int     `json:"entries"`
	Seconds float64 `json:"seconds"`
	Key     string  `json:"template_key"`
}

func main() {
	path := flag.String("db", "", "the SQLite file Caddy wrote the template entry to")
	marker := flag.String("marker", "n=tpl", "the part of the template key replaced by the entry number")
	key := flag.String("key", "", "the template's key (default: the first key with -marker, found by listing the file)")
	prefix := flag.String("prefix", "n=", "what the entry number follows in the new keys")
	from := flag.Int("from", 0, "first entry number")
	n := flag.Int("n", 1000, "how many entries")
	tags := flag.Int("tags", 100, "entry i gets the tag t<i mod tags> (0: no tags)")
	expire := flag.Duration("expire", 0, "each entry expires this long after it is stored (0: as the template)")
	workers := flag.Int("c", 4, "concurrent writers")
	flag.Parse()
	if *path == "" || *n <= 0 || *workers <= 0 {
		fmt.Fprintln(os.Stderr, "scale: want -db, -n > 0 and -c > 0")
		os.Exit(2)
	}
	res, err := fill(*path, *key, *marker, *prefix, *from, *n, *tags, *expire, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

var errFound = errors.New("found")

func fill(path, key, marker, prefix string, from, n, tags int, expire time.Duration, workers int) (Result, error) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	unlimited := int64(0)
	// synchronous off: a crash during the fill only costs the benchmark
	// its file; Caddy opens it later with its own settings.
	s := &sqlite.SQLite{Path: path, MaxSize: &unlimited, Synchronous: "off"}
	if err := s.Provision(ctx); err != nil {
		return Result{}, err
	}
	defer func() { _ = s.Cleanup() }()

	tplKey := key
	var tpl *storage.Entry
	var err error
	if tplKey == "" {
		err = s.List(ctx, "", func(k string, _ *storage.Entry) error {
			if strings.Contains(k, marker) {
				tplKey = k
				return errFound
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			return Result{}, fmt.Errorf("listing %s: %w", path, err)
		}
	}
	if tplKey == "" {
		return Result{}, fmt.Errorf("no entry of %s has %q in its key", path, marker)
	}
	if tpl, err = s.Get(ctx, tplKey); err != nil {
		return Result{}, fmt.Errorf("reading the template %q: %w", tplKey, err)
	}
	start := time.Now()
	work := make(chan int, 1024)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				part := prefix + strconv.Itoa(i)
				e := *tpl
				e.URL = strings.Replace(tpl.URL, marker, part, 1)
				if expire > 0 {
					now := time.Now()
					e.RequestTime, e.ResponseTime, e.InitialAge = now, now, 0
					e.Lifetime, e.Expires = expire, now.Add(expire)
				}
				e.Tags = nil
				if tags > 0 {
					e.Tags = []string{"t" + strconv.Itoa(i%tags)}
				}
				if err := s.Put(ctx, strings.Replace(tplKey, marker, part, 1), &e); err != nil {
					errs <- fmt.Errorf("storing entry %d: %w", i, err)
					return
				}
			}
		})
	}
	var ferr error
	for i := from; i < from+n && ferr == nil; i++ {
		select {
		case work <- i:
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
	return Result{Entries: n, Seconds: time.Since(start).Seconds(), Key: tplKey}, nil
}
