package sqlite

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

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
