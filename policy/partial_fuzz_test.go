package policy

import (
	"bytes"
	"testing"
)

// ParseRange never returns a range outside the representation, nor one
// whose last position is before its first.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-499", "bytes=-5", "bytes=9-", "bytes=-0", "bytes=1-2, 5-", "bytes=", "items=1-2", "bytes=99999999999999999999-"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		ranges, ok := ParseRange(v, size)
		if !ok && ranges != nil {
			t.Fatalf("ParseRange(%q, %d) = %v, false", v, size, ranges)
		}
		for _, r := range ranges {
			if r.First < 0 || r.Last < r.First || r.Last >= size {
				t.Fatalf("ParseRange(%q, %d) gave %v", v, size, r)
			}
		}
	})
}

// ContentRange accepts only what FormatContentRange writes back the same
// (up to the unit's case), with a range inside the complete length.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1000", "bytes */10", "bytes 0-1/*", "bytes 5-4/10", "Bytes 1-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, n, ok := ContentRange(v)
		if !ok {
			return
		}
		if r.First < 0 || r.Last < r.First || r.Last >= n {
			t.Fatalf("ContentRange(%q) = %v/%d", v, r, n)
		}
		r2, n2, ok := ContentRange(FormatContentRange(r, n))
		if !ok || r2 != r || n2 != n {
			t.Fatalf("ContentRange(%q) = %v/%d does not survive formatting", v, r, n)
		}
	})
}

// MergeParts keeps every byte of its input parts at its position, and
// returns sorted parts that neither overlap nor touch.
func FuzzMergeParts(f *testing.F) {
	f.Add([]byte{0, 3, 2, 4, 9, 1})
	f.Fuzz(func(t *testing.T, spec []byte) {
		// a representation of 64 bytes; spec holds (first, length) pairs
		rep := make([]byte, 64)
		for i := range rep {
			rep[i] = byte('a' + i%26)
		}
		var parts []Part
		for i := 0; i+1 < len(spec) && len(parts) < 20; i += 2 {
			first := int64(spec[i] % 64)
			last := min(first+int64(spec[i+1]%16), 63)
			parts = append(parts, Part{Range: ByteRange{first, last}, Data: rep[first : last+1]})
		}
		merged := MergeParts(parts)
		for i, p := range merged {
			if !bytes.Equal(p.Data, rep[p.Range.First:p.Range.Last+1]) {
				t.Fatalf("part %v holds %q", p.Range, p.Data)
			}
			if i > 0 && p.Range.First <= merged[i-1].Range.Last+1 {
				t.Fatalf("parts %v and %v overlap or touch", merged[i-1].Range, p.Range)
			}
		}
		for _, p := range parts {
			if Covering(rangesOf(merged), p.Range) < 0 {
				t.Fatalf("input part %v lost in %v", p.Range, merged)
			}
		}
	})
}

func rangesOf(parts []Part) []ByteRange {
	out := make([]ByteRange, len(parts))
	for i, p := range parts {
		out[i] = p.Range
	}
	return out
}
