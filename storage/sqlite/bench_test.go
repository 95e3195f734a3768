package sqlite

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func BenchmarkGetHit16KB(b *testing.B) {
	s := provision(b, SQLite{Path: tempPath(b)})
	s.db.logger = zap.NewNop()
	e := randomEntry("bench", 16<<10)
	if err := s.Put(bg, "bench", e); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(bg, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetHit16KBParallel(b *testing.B) {
	s := provision(b, SQLite{Path: tempPath(b)})
	e := randomEntry("bench", 16<<10)
	if err := s.Put(bg, "bench", e); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Get(bg, "bench"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPut16KB(b *testing.B) {
	s := provision(b, SQLite{Path: tempPath(b)})
	e := randomEntry("bench", 16<<10)
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put(bg, fmt.Sprintf("bench/%d", i%1000), e); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPurge2000 deletes 2000 tagged entries of 20,000, one Delete per
// key ("each") or with DeleteMany ("batch"); each iteration stores them
// again first (not timed).
func BenchmarkPurge2000(b *testing.B) {
	for _, mode := range []string{"each", "batch"} {
		b.Run(mode, func(b *testing.B) {
			s := provision(b, SQLite{Path: tempPath(b)})
			e := storagetest.Entry("x", 1024)
			e.Tags = []string{"t"}
			keys := make([]string, 2000)
			for i := range 20000 {
				k := fmt.Sprintf("k%d", i)
				if i < len(keys) {
					keys[i] = k
				}
				if err := s.Put(bg, k, e); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				b.StopTimer()
				for _, k := range keys {
					if err := s.Put(bg, k, e); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if mode == "batch" {
					if err := s.DeleteMany(bg, keys); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, k := range keys {
					if err := s.Delete(bg, k); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkPutParallel16KB stores distinct 16 KB entries from 8 goroutines
// per CPU, as bench/run.sh fill does through Caddy (run it with
// GOMAXPROCS=1 and -benchtime=20000x for the same shape): what it measures
// is mostly the group commit and SQLite's writing of the WAL and its
// checkpoints. "compressible" bodies shrink to a few bytes under zstd (the
// fill's bodies); "random" ones are stored whole. cpu-ns/op is the
// process's CPU time per Put, steadier than the wall time on a busy disk.
func BenchmarkPutParallel16KB(b *testing.B) {
	for _, body := range []struct {
		name string
		e    *storage.Entry
	}{
		{"compressible", func() *storage.Entry {
			e := storagetest.Entry("bench", 0)
			e.Body = bytes.Repeat([]byte("a"), 16<<10)
			return e
		}()},
		{"random", randomEntry("bench", 16<<10)},
	} {
		b.Run(body.name, func(b *testing.B) {
			s := provision(b, SQLite{Path: tempPath(b), MaxSize: ptr[int64](0)})
			s.db.logger = zap.NewNop()
			var n atomic.Int64
			b.SetBytes(16 << 10)
			b.SetParallelism(8)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// A URL per entry, as in the fill.
					e := *body.e
					e.URL = fmt.Sprintf("https://example.test/16KB?fill=%d", n.Add(1))
					if err := s.Put(bg, "GET "+e.URL, &e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
