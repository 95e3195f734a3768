package sqlite

import (
	"fmt"
	"testing"

	"go.uber.org/zap"
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
