package storage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Layout facts of the format that these tests rely on (see codec.go):
// magic "CCE", version byte, flags byte, payload, CRC-32C (big endian).
const (
	offVersion = 3
	offFlags   = 4
	headerLen  = 5
	trailerLen = 4
	flagZstd   = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fixCRC returns b with its trailing checksum recomputed, so a test can alter
// the header or payload and reach the checks behind the checksum.
func fixCRC(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < trailerLen {
		return b
	}
	n := len(b) - trailerLen
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// textBody is a compressible, text-like body of n bytes.
func textBody(n int) []byte {
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, "<li class=\"item\" data-id=\"%d\">Item number %d of the list</li>\n", i, i*7)
	}
	return []byte(sb.String()[:n])
}

func sampleEntries() map[string]*storage.Entry {
	full := storagetest.Entry("full", 3000)
	zstdBody := storagetest.Entry("zstd", 0)
	zstdBody.Body = textBody(20000)
	zero := &storage.Entry{}
	vary := &storage.Entry{
		Kind:     storage.KindVary,
		URL:      "https://example.test/v",
		Vary:     []string{"Accept-Encoding"},
		Variants: []string{"a", "b"},
		Expires:  time.Now().Add(time.Hour),
	}
	empty := storagetest.Entry("empty", 0)
	empty.Body = []byte{}
	atMin := storagetest.Entry("at-min", 0)
	atMin.Body = textBody(storage.CompressMinSize)
	belowMin := storagetest.Entry("below-min", 0)
	belowMin.Body = textBody(storage.CompressMinSize - 1)
	negative := storagetest.Entry("negative", 10)
	negative.InitialAge = -time.Second
	negative.Lifetime = -time.Hour
	negative.RequestTime = time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)
	status := storagetest.Entry("status", 10)
	status.Status = 999
	return map[string]*storage.Entry{
		"full": full, "zstd body": zstdBody, "zero value": zero, "vary index": vary,
		"empty body": empty, "body of CompressMinSize": atMin, "body below CompressMinSize": belowMin,
		"negative durations and old time": negative, "status 999": status,
	}
}

func TestRoundTrip(t *testing.T) {
	for name, e := range sampleEntries() {
		for _, c := range []storage.Compression{storage.CompressionZstd, storage.CompressionOff} {
			t.Run(name+"/"+string(c), func(t *testing.T) {
				b := storage.Encode(e, c)
				got, err := storage.Decode(b)
				if err != nil {
					t.Fatalf("Decode(Encode(e)): %v", err)
				}
				if d := storagetest.Diff(e, got, 0); d != "" {
					t.Fatalf("Decode(Encode(e)) differs: %s", d)
				}
				if got.BodySize != int64(len(e.Body)) {
					t.Fatalf("Decode: BodySize %d, want %d", got.BodySize, len(e.Body))
				}
				meta, err := storage.DecodeMeta(b)
				if err != nil {
					t.Fatalf("DecodeMeta(Encode(e)): %v", err)
				}
				if d := storagetest.DiffMeta(e, meta, 0); d != "" {
					t.Fatalf("DecodeMeta(Encode(e)) differs: %s", d)
				}
				if again := storage.Encode(e, c); !bytes.Equal(again, b) {
					t.Fatalf("Encode is not deterministic: two encodings of the same entry differ")
				}
				if re := storage.Encode(got, c); !bytes.Equal(re, b) {
					t.Fatalf("re-encoding the decoded entry gives different bytes (%d vs %d)", len(re), len(b))
				}
			})
		}
	}
}

// Map iteration order must not leak into the encoding.
func TestEncodeIsIndependentOfMapOrder(t *testing.T) {
	e := storagetest.Entry("order", 10)
	for i := range 50 {
		e.Header.Set(fmt.Sprintf("X-H%02d", i), "v")
		e.VaryRequest[fmt.Sprintf("X-V%02d", i)] = "v"
	}
	first := storage.Encode(e, storage.CompressionOff)
	for range 20 {
		if !bytes.Equal(storage.Encode(e, storage.CompressionOff), first) {
			t.Fatal("encodings of one entry differ between calls (map order leaked into the format)")
		}
	}
}

func TestCompression(t *testing.T) {
	compressible := storagetest.Entry("c", 0)
	compressible.Body = textBody(64 << 10)
	on := storage.Encode(compressible, storage.CompressionZstd)
	off := storage.Encode(compressible, storage.CompressionOff)
	if on[offFlags]&flagZstd == 0 {
		t.Fatalf("compression zstd: a %d-byte text body was not compressed (flags %#x)", len(compressible.Body), on[offFlags])
	}
	if len(on) >= len(off)/2 {
		t.Fatalf("compression zstd: encoding is %d bytes, uncompressed %d; want less than half", len(on), len(off))
	}
	if off[offFlags] != 0 {
		t.Fatalf("compression off: flags %#x, want 0", off[offFlags])
	}
	if len(off) <= len(compressible.Body) {
		t.Fatalf("compression off: encoding of %d bytes is smaller than the %d-byte body", len(off), len(compressible.Body))
	}

	encoded := storagetest.Entry("ce", 0)
	encoded.Body = textBody(64 << 10)
	encoded.Header.Set("Content-Encoding", "gzip")
	if b := storage.Encode(encoded, storage.CompressionZstd); b[offFlags] != 0 || len(b) <= len(encoded.Body) {
		t.Fatalf("a body with Content-Encoding was compressed again (flags %#x, %d bytes for a %d-byte body)", b[offFlags], len(b), len(encoded.Body))
	}

	random := storagetest.Entry("r", 0)
	random.Body = storagetest.RandomBody(64<<10, 9)
	if b := storage.Encode(random, storage.CompressionZstd); b[offFlags] != 0 {
		t.Fatalf("an incompressible body was stored compressed (flags %#x)", b[offFlags])
	}

	small := storagetest.Entry("s", 0)
	small.Body = textBody(storage.CompressMinSize - 1)
	if b := storage.Encode(small, storage.CompressionZstd); b[offFlags] != 0 {
		t.Fatalf("a body below CompressMinSize was compressed (flags %#x)", b[offFlags])
	}

	// Compression never changes what Decode returns.
	for _, b := range [][]byte{on, off} {
		got, err := storage.Decode(b)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if d := storagetest.Diff(compressible, got, 0); d != "" {
			t.Fatalf("Decode of a compressed entry differs: %s", d)
		}
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]storage.Compression{"": storage.CompressionZstd, "zstd": storage.CompressionZstd, "off": storage.CompressionOff} {
		got, err := storage.ParseCompression(in)
		if err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q, nil", in, got, err, want)
		}
	}
	for _, in := range []string{"gzip", "ZSTD", "none", " zstd"} {
		if _, err := storage.ParseCompression(in); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseCompression(%q): error %v, want one naming the value", in, err)
		}
	}
}

// wantCorrupt decodes b with Decode and DecodeMeta and requires ErrCorrupt
// from both (a panic fails the test by itself).
func wantCorrupt(t *testing.T, what string, b []byte) {
	t.Helper()
	wantCorruptFrom(t, what, b, true)
}

// wantCorruptBody is wantCorrupt for damage inside a compressed body, which
// only Decode can see: DecodeMeta does not decompress.
func wantCorruptBody(t *testing.T, what string, b []byte) {
	t.Helper()
	wantCorruptFrom(t, what, b, false)
}

func wantCorruptFrom(t *testing.T, what string, b []byte, meta bool) {
	t.Helper()
	decoders := []struct {
		name string
		fn   func([]byte) (*storage.Entry, error)
	}{{"Decode", storage.Decode}}
	if meta {
		decoders = append(decoders, struct {
			name string
			fn   func([]byte) (*storage.Entry, error)
		}{"DecodeMeta", storage.DecodeMeta})
	}
	for _, dec := range decoders {
		e, err := dec.fn(b)
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("%s of %s: entry %v, error %v; want ErrCorrupt", dec.name, what, e != nil, err)
		}
		if e != nil {
			t.Fatalf("%s of %s: returned ErrCorrupt with a non-nil entry", dec.name, what)
		}
	}
}

func smallEncodings() map[string][]byte {
	plain := storagetest.Entry("small", 40)
	plain.Header = http.Header{"Content-Type": {"text/plain"}}
	plain.VaryRequest = map[string]string{"Accept": "x"}
	comp := storagetest.Entry("small-z", 0)
	comp.Header = http.Header{}
	comp.Body = textBody(4000)
	return map[string][]byte{
		"plain":      storage.Encode(plain, storage.CompressionOff),
		"compressed": storage.Encode(comp, storage.CompressionZstd),
	}
}

func TestCorruptTruncated(t *testing.T) {
	for name, b := range smallEncodings() {
		for n := range len(b) {
			wantCorrupt(t, fmt.Sprintf("%s entry truncated to %d of %d bytes", name, n, len(b)), b[:n])
		}
		// Also truncated with a checksum that matches what is left, so the
		// payload parser itself must notice.
		for n := headerLen + trailerLen; n < len(b); n++ {
			trunc := append(bytes.Clone(b[:n-trailerLen]), 0, 0, 0, 0)
			wantCorrupt(t, fmt.Sprintf("%s entry cut to %d bytes with a fixed checksum", name, n), fixCRC(trunc))
		}
	}
	wantCorrupt(t, "nil", nil)
}

func TestCorruptFlippedBytes(t *testing.T) {
	for name, b := range smallEncodings() {
		if b[offFlags] == 0 && name == "compressed" {
			t.Fatalf("the %q sample was not compressed; the test needs one that is", name)
		}
		for i := range b {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				c := bytes.Clone(b)
				c[i] ^= mask
				wantCorrupt(t, fmt.Sprintf("%s entry with byte %d xor %#02x", name, i, mask), c)
			}
		}
	}
}

// Altering the payload behind a recomputed checksum must give ErrCorrupt or
// a valid entry, never a panic; a valid result re-encodes consistently.
func TestAlteredPayloadWithValidChecksum(t *testing.T) {
	for name, b := range smallEncodings() {
		for i := headerLen; i < len(b)-trailerLen; i++ {
			for _, v := range []byte{0x00, 0x01, 0x7f, 0x80, 0xff} {
				c := bytes.Clone(b)
				c[i] = v
				checkDecodes(t, fmt.Sprintf("%s entry with byte %d set to %#02x", name, i, v), fixCRC(c))
			}
		}
	}
}

func TestCorruptHeader(t *testing.T) {
	b := smallEncodings()["plain"]
	mod := func(f func(c []byte) []byte) []byte { return f(bytes.Clone(b)) }
	cases := map[string][]byte{
		"wrong magic":                           fixCRC(mod(func(c []byte) []byte { c[0] = 'X'; return c })),
		"magic of another format":               fixCRC(mod(func(c []byte) []byte { copy(c, "GIF"); return c })),
		"future version":                        fixCRC(mod(func(c []byte) []byte { c[offVersion]++; return c })),
		"version 0":                             fixCRC(mod(func(c []byte) []byte { c[offVersion] = 0; return c })),
		"version 255":                           fixCRC(mod(func(c []byte) []byte { c[offVersion] = 255; return c })),
		"unknown flag bit 1":                    fixCRC(mod(func(c []byte) []byte { c[offFlags] |= 2; return c })),
		"unknown flag bit 7":                    fixCRC(mod(func(c []byte) []byte { c[offFlags] |= 0x80; return c })),
		"zstd flag on an uncompressed body":     fixCRC(mod(func(c []byte) []byte { c[offFlags] |= flagZstd; return c })),
		"trailing bytes before the checksum":    fixCRC(mod(func(c []byte) []byte { return append(c[:len(c)-trailerLen], 0, 0, 0, 0, 0, 0) })),
		"one trailing byte before the checksum": fixCRC(mod(func(c []byte) []byte { return append(c[:len(c)-trailerLen], 'x', 0, 0, 0, 0) })),
		"trailing bytes after the checksum":     append(bytes.Clone(b), 'x'),
		"two encodings concatenated":            append(bytes.Clone(b), b...),
		"checksum zeroed":                       mod(func(c []byte) []byte { copy(c[len(c)-trailerLen:], []byte{0, 0, 0, 0}); return c }),
		"header only":                           fixCRC(append(bytes.Clone(b[:headerLen]), 0, 0, 0, 0)),
		"JSON":                                  []byte(`{"status":200,"body":"hello"}`),
		"gzip stream":                           {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"all zero bytes":                        make([]byte, 64),
		"all 0xff bytes":                        bytes.Repeat([]byte{0xff}, 64),
	}
	for name, c := range cases {
		wantCorrupt(t, name, c)
	}

	// A compressed body whose zstd data or declared length is wrong.
	z := smallEncodings()["compressed"]
	zc := bytes.Clone(z)
	zc[len(zc)-trailerLen-10] ^= 0xff // inside the zstd frame
	wantCorruptBody(t, "an entry with a damaged zstd frame", fixCRC(zc))
}

// Hand-built payloads with absurd lengths must fail without allocating much.
func TestCorruptHugeLengths(t *testing.T) {
	build := func(flags byte, fields ...[]byte) []byte {
		b := []byte{'C', 'C', 'E', 1, flags}
		for _, f := range fields {
			b = append(b, f...)
		}
		return fixCRC(append(b, 0, 0, 0, 0))
	}
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	sv := func(v int64) []byte { return binary.AppendVarint(nil, v) }
	// kind, url, status, 3 times, 2 durations: the fixed part of the meta.
	prefix := func(url []byte) [][]byte {
		return [][]byte{uv(0), url, uv(200), sv(1), sv(2), sv(0), sv(0), sv(3)}
	}
	huge := uint64(1) << 40
	cases := map[string][]byte{
		"URL length 2^40":        build(0, prefix(uv(huge))...),
		"URL length 2^63":        build(0, prefix(uv(1<<63))...),
		"header count 2^40":      build(0, append(prefix(uv(0)), uv(huge))...),
		"header count 2^31":      build(0, append(prefix(uv(0)), uv(1<<31))...),
		"vary count 2^31":        build(0, append(prefix(uv(0)), uv(0), uv(1<<31))...),
		"body length 2^40":       build(0, append(prefix(uv(0)), uv(0), uv(0), uv(0), uv(0), uv(0), uv(huge))...),
		"zstd raw length 2^31+1": build(flagZstd, append(prefix(uv(0)), uv(0), uv(0), uv(0), uv(0), uv(0), uv(1<<31+1), uv(4), []byte("abcd"))...),
		"unterminated varint":    build(0, bytes.Repeat([]byte{0x80}, 20)),
		"unknown kind":           build(0, uv(7)),
		"status 1000":            build(0, uv(0), uv(0), uv(1000)),
	}
	for name, c := range cases {
		wantCorrupt(t, name, c)
	}
	// Within range, but the zstd data is not a frame of that size: only
	// Decode can tell, and it must not allocate the declared 2 GiB first.
	lying := build(flagZstd, append(prefix(uv(0)), uv(0), uv(0), uv(0), uv(0), uv(0), uv(1<<31), uv(4), []byte("abcd"))...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	wantCorruptBody(t, "zstd raw length 2^31 over 4 bytes", lying)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Fatalf("Decode of 4 bytes of zstd data declaring a 2 GiB body allocated %d MiB", n>>20)
	}
}

// checkDecodes is the fuzz property: Decode either fails with ErrCorrupt or
// returns an entry that survives Encode/Decode unchanged, and DecodeMeta
// agrees with it.
func checkDecodes(t *testing.T, what string, b []byte) {
	t.Helper()
	e, err := storage.Decode(b)
	if err != nil {
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("Decode of %s: error %v does not wrap ErrCorrupt", what, err)
		}
		if e != nil {
			t.Fatalf("Decode of %s: returned an error and a non-nil entry", what)
		}
		return
	}
	meta, err := storage.DecodeMeta(b)
	if err != nil {
		t.Fatalf("Decode of %s succeeded but DecodeMeta failed: %v", what, err)
	}
	if d := storagetest.DiffMeta(e, meta, 0); d != "" {
		t.Fatalf("DecodeMeta of %s disagrees with Decode: %s", what, d)
	}
	for _, c := range []storage.Compression{storage.CompressionOff, storage.CompressionZstd} {
		again, err := storage.Decode(storage.Encode(e, c))
		if err != nil {
			t.Fatalf("re-encoding (%s) the entry decoded from %s: Decode failed: %v", c, what, err)
		}
		if d := storagetest.Diff(e, again, 0); d != "" {
			t.Fatalf("re-encoding (%s) the entry decoded from %s changed it: %s", c, what, d)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to Decode, both as they are and with the
// checksum recomputed so that mutations reach the payload parser.
//
//	go test -run '^$' -fuzz FuzzDecode ./storage/
func FuzzDecode(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(storage.Encode(e, storage.CompressionZstd))
		f.Add(storage.Encode(e, storage.CompressionOff))
	}
	for _, b := range smallEncodings() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodes(t, "the input", b)
		checkDecodes(t, "the input with its checksum fixed", fixCRC(b))
	})
}

func benchEntry(n int) *storage.Entry {
	e := storagetest.Entry("bench", 0)
	e.Body = textBody(n)
	return e
}

var benchSizes = []struct {
	name string
	n    int
}{{"1KB", 1 << 10}, {"16KB", 16 << 10}, {"1MB", 1 << 20}}

func BenchmarkEncode(b *testing.B) {
	for _, sz := range benchSizes {
		for _, c := range []storage.Compression{storage.CompressionOff, storage.CompressionZstd} {
			b.Run(sz.name+"/"+string(c), func(b *testing.B) {
				e := benchEntry(sz.n)
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					storage.Encode(e, c)
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, sz := range benchSizes {
		for _, c := range []storage.Compression{storage.CompressionOff, storage.CompressionZstd} {
			b.Run(sz.name+"/"+string(c), func(b *testing.B) {
				enc := storage.Encode(benchEntry(sz.n), c)
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := storage.Decode(enc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A compressed body whose zstd frame declares, or inflates to, more than
// the entry's recorded length is corrupt, and Decode finds out without
// inflating it: memory stays bounded by the recorded length.
func TestCorruptInflationBomb(t *testing.T) {
	const inflated = 64 << 20
	for name, b := range storagetest.InflationBombs(t, inflated) {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			wantCorruptBody(t, name, b)
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
				t.Fatalf("Decode of an entry recording %d bytes whose frame inflates to %d MiB allocated %d MiB",
					storagetest.BombBodySize, inflated>>20, n>>20)
			}
			// DecodeMeta does not inflate: it still reads the entry.
			if _, err := storage.DecodeMeta(b); err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
		})
	}
}

// toVersion1 rewrites a version 2 encoding as version 1 wrote it: without
// the metadata's length.
func toVersion1(t *testing.T, b []byte) []byte {
	t.Helper()
	m, k := binary.Uvarint(b[headerLen:])
	if k <= 0 || int(m) > len(b) {
		t.Fatalf("no metadata length in the encoding")
	}
	v1 := append(bytes.Clone(b[:headerLen]), b[headerLen+k:]...)
	v1[offVersion] = 1
	return fixCRC(v1)
}

// Entries written by format version 1 (before the metadata's length)
// decode as they did.
func TestDecodesVersion1(t *testing.T) {
	for name, e := range sampleEntries() {
		b := storage.Encode(e, storage.CompressionZstd)
		if b[offVersion] != 2 {
			t.Fatalf("Encode writes version %d, want 2", b[offVersion])
		}
		got, err := storage.Decode(toVersion1(t, b))
		if err != nil {
			t.Fatalf("%s: decoding version 1: %v", name, err)
		}
		if d := storagetest.Diff(e, got, 0); d != "" {
			t.Fatalf("%s: version 1 decodes differently: %s", name, d)
		}
	}
}

// A metadata length that does not match the metadata is corrupt.
func TestCorruptMetaLength(t *testing.T) {
	b := storage.Encode(storagetest.Entry("meta", 100), storage.CompressionOff)
	m, k := binary.Uvarint(b[headerLen:])
	for _, n := range []uint64{0, 1, m - 1, m + 1, m + 5, uint64(len(b))} {
		c := append(bytes.Clone(b[:headerLen]), binary.AppendUvarint(nil, n)...)
		c = append(c, b[headerLen+k:]...)
		wantCorrupt(t, fmt.Sprintf("metadata of %d bytes recorded as %d", m, n), fixCRC(c))
	}
}

// Decoding copies the metadata once: the strings of an entry share one
// allocation, and the header's value lists one backing array.
func TestDecodeAllocations(t *testing.T) {
	e := storagetest.Entry("allocs", 1000)
	b := storage.Encode(e, storage.CompressionOff)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := storage.Decode(b); err != nil {
			t.Fatal(err)
		}
	})
	// the Entry, the metadata string, the header map (2: a map of up to
	// eight entries and its one group), its value lists, the Vary list, the
	// VaryRequest map (2), the tags. Version 1 made 38 for this entry: one
	// per string and per list.
	if allocs > 9 {
		t.Fatalf("Decode made %.0f allocations for an entry of %d header fields, want at most 9", allocs, len(e.Header))
	}
	got, err := storage.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// the value lists are capped: appending to one leaves the next alone
	cc := got.Header["Cache-Control"]
	_ = append(cc, "appended")
	for k, vs := range e.Header {
		if !slices.Equal(got.Header[k], vs) {
			t.Fatalf("%s: %q after appending to Cache-Control, want %q", k, got.Header[k], vs)
		}
	}
}
