package redis

import (
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// BenchmarkGetHit16KB measures a hit of an entry with a 16 KB body (stored
// with the default zstd compression, incompressible body) on a standalone
// Redis on loopback, from parallel goroutines.
func BenchmarkGetHit16KB(b *testing.B) {
	srv := testservers.Redis(b)
	r := provision(b, &Redis{Addresses: []string{srv.Addr}, Namespace: uniqueNamespace(b)})
	e := storagetest.Entry("bench", 0)
	e.Body = storagetest.RandomBody(16<<10, 7)
	if err := r.Put(bg, "bench", e); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(e.Body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			got, err := r.Get(bg, "bench")
			if err != nil {
				b.Error(err)
				return
			}
			if len(got.Body) != len(e.Body) {
				b.Errorf("body of %d bytes, want %d", len(got.Body), len(e.Body))
				return
			}
		}
	})
}
