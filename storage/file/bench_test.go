package file

import (
	"fmt"
	"testing"
)

func BenchmarkGetHit16KB(b *testing.B) {
	f := provision(b, File{Path: b.TempDir()})
	if err := f.Put(bg, "bench", randomEntry("bench", 16<<10)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Get(bg, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut16KB(b *testing.B) {
	f := provision(b, File{Path: b.TempDir()})
	e := randomEntry("bench", 16<<10)
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := f.Put(bg, fmt.Sprintf("bench/%d", i%1000), e); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
