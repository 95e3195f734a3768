package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The stored-entry format, shared by every backend that stores bytes:
//
//	magic "CCE" | version (1 byte) | flags (1 byte) | payload | CRC-32C of all previous bytes (4 bytes, big endian)
//
// The payload is a sequence of unsigned varints, zig-zag varints and
// length-prefixed strings (see appendMeta/readMeta):
//
//	version 2: uvarint(len(meta)) | meta | [uncompressed length] | length-prefixed body
//	version 1: meta | [uncompressed length] | length-prefixed body
//
// Flag bit 0 means the body is zstd-compressed; its uncompressed length
// precedes it. Version 2 prefixes the metadata with its length so that
// Decode copies it into one string and every decoded string (URL, header
// names and values, tags) is a part of it: a handful of allocations per
// entry instead of one per string. Encode writes version 2; Decode reads
// both. A new format gets a new version byte; Decode refuses versions it
// does not know.
const (
	formatVersion byte = 2
	formatV1      byte = 1
	flagZstd      byte = 1 << 0
	headerLen          = 5 // magic + version + flags
	trailerLen         = 4 // CRC-32C
)

var magic = [3]byte{'C', 'C', 'E'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression selects how Encode treats large bodies.
type Compression string

const (
	// CompressionZstd compresses bodies of at least CompressMinSize bytes
	// with zstd when that makes them smaller and the response is not
	// already content-encoded. It is the default.
	CompressionZstd Compression = "zstd"
	// CompressionOff stores bodies as they are.
	CompressionOff Compression = "off"
)

// CompressMinSize is the smallest body Encode tries to compress.
const CompressMinSize = 1024

// maxDecodedBody bounds what a corrupt length field can make Decode allocate.
const maxDecodedBody = 1 << 31

// The decoder inflates into the capacity of the buffer it is given and no
// further (WithDecodeAllCapLimit): Decode gives it exactly the entry's
// recorded length, so a frame that inflates to more is an error, not a
// large allocation.
var (
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecodedBody),
		zstd.WithDecodeAllCapLimit(true))
)

// ParseCompression validates a compression option value ("" means zstd).
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", CompressionZstd:
		return CompressionZstd, nil
	case CompressionOff:
		return CompressionOff, nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd or off)", s)
}

// Encode serialises e in the stored-entry format.
func Encode(e *Entry, c Compression) []byte {
	body := e.Body
	var flags byte
	if c != CompressionOff && len(body) >= CompressMinSize && e.Header.Get("Content-Encoding") == "" {
		z := zstdEncoder.EncodeAll(body, make([]byte, 0, len(body)/2))
		if len(z) < len(body)-len(body)/16 {
			flags |= flagZstd
			body = z
		}
	}
	buf := make([]byte, 0, len(body)+512)
	buf = append(buf, magic[:]...)
	buf = append(buf, formatVersion, flags)
	// the metadata's length, then the metadata: reserve one varint byte,
	// which is enough for metadata under 128 bytes, and move it otherwise
	at := len(buf)
	buf = append(buf, 0)
	buf = appendMeta(buf, e)
	if n := len(buf) - at - 1; n < 0x80 {
		buf[at] = byte(n)
	} else {
		var l [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(l[:], uint64(n))
		buf = append(buf, l[:k-1]...)
		copy(buf[at+k:], buf[at+1:at+1+n])
		copy(buf[at:], l[:k])
	}
	if flags&flagZstd != 0 {
		buf = binary.AppendUvarint(buf, uint64(len(e.Body)))
	}
	buf = appendBytes(buf, body)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// Decode parses bytes written by Encode. Anything else (truncated, altered,
// foreign, or written by a newer format version) gives an error wrapping
// ErrCorrupt. Decode never panics.
func Decode(b []byte) (*Entry, error) {
	return decode(b, true)
}

// DecodeMeta is Decode without the body: Body stays nil and BodySize is set.
// It still verifies the checksum.
func DecodeMeta(b []byte) (*Entry, error) {
	return decode(b, false)
}

func decode(b []byte, withBody bool) (*Entry, error) {
	if len(b) < headerLen+trailerLen {
		return nil, corrupt("too short (%d bytes)", len(b))
	}
	if b[0] != magic[0] || b[1] != magic[1] || b[2] != magic[2] {
		return nil, corrupt("not a cache entry")
	}
	if b[3] != formatVersion && b[3] != formatV1 {
		return nil, corrupt("unknown format version %d", b[3])
	}
	flags := b[4]
	if flags&^flagZstd != 0 {
		return nil, corrupt("unknown flags %#x", flags)
	}
	n := len(b) - trailerLen
	if crc32.Checksum(b[:n], castagnoli) != binary.BigEndian.Uint32(b[n:]) {
		return nil, corrupt("checksum mismatch")
	}
	r := reader[[]byte]{b: b[headerLen:n]}
	e := &Entry{}
	if b[3] == formatV1 {
		readMeta(&r, e)
	} else {
		m := r.count()
		if r.err != nil {
			return nil, r.err
		}
		meta := reader[string]{b: string(r.b[:m])} // the one copy of all strings
		r.b = r.b[m:]
		readMeta(&meta, e)
		if meta.err != nil {
			return nil, meta.err
		}
		if len(meta.b) != 0 {
			return nil, corrupt("%d trailing bytes in the metadata", len(meta.b))
		}
	}
	rawLen := -1
	if flags&flagZstd != 0 {
		rawLen = r.int()
	}
	body := r.bytes()
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, corrupt("%d trailing bytes", len(r.b))
	}
	if rawLen >= 0 {
		if rawLen > maxDecodedBody {
			return nil, corrupt("body length %d out of range", rawLen)
		}
		e.BodySize = int64(rawLen)
		if withBody {
			out, err := inflate(body, rawLen)
			if err != nil {
				return nil, err
			}
			e.Body = out
		}
	} else {
		e.BodySize = int64(len(body))
		if withBody {
			e.Body = body
		}
	}
	return e, nil
}

// inflate decompresses a body whose recorded length is rawLen. Encode
// writes one zstd frame that declares its content size; a frame that
// declares another size (or none) is refused before anything is
// allocated, and inflation stops at rawLen bytes, so a frame that lies
// about its size (or a second frame behind it) costs at most the
// entry's recorded length.
func inflate(z []byte, rawLen int) ([]byte, error) {
	var fh zstd.Header
	if err := fh.Decode(z); err != nil {
		return nil, corrupt("zstd frame header: %v", err)
	}
	if fh.Skippable || !fh.HasFCS {
		return nil, corrupt("zstd frame does not declare its content size")
	}
	if fh.FrameContentSize != uint64(rawLen) {
		return nil, corrupt("zstd frame declares %d bytes, the entry records %d", fh.FrameContentSize, rawLen)
	}
	out, err := zstdDecoder.DecodeAll(z, make([]byte, 0, rawLen))
	if err != nil {
		return nil, corrupt("decompressing body: %v", err)
	}
	if len(out) != rawLen {
		return nil, corrupt("body is %d bytes, want %d", len(out), rawLen)
	}
	return out, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func appendMeta(buf []byte, e *Entry) []byte {
	buf = binary.AppendUvarint(buf, uint64(e.Kind))
	buf = appendString(buf, e.URL)
	buf = binary.AppendUvarint(buf, uint64(e.Status))
	buf = appendTime(buf, e.RequestTime)
	buf = appendTime(buf, e.ResponseTime)
	buf = binary.AppendVarint(buf, int64(e.InitialAge))
	buf = binary.AppendVarint(buf, int64(e.Lifetime))
	buf = appendTime(buf, e.Expires)
	// Header, in sorted order so equal entries encode equally.
	names := make([]string, 0, len(e.Header))
	for k := range e.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	buf = binary.AppendUvarint(buf, uint64(len(names)))
	for _, k := range names {
		buf = appendString(buf, k)
		buf = appendStrings(buf, e.Header[k])
	}
	buf = appendStrings(buf, e.Vary)
	vr := make([]string, 0, len(e.VaryRequest))
	for k := range e.VaryRequest {
		vr = append(vr, k)
	}
	slices.Sort(vr)
	buf = binary.AppendUvarint(buf, uint64(len(vr)))
	for _, k := range vr {
		buf = appendString(buf, k)
		buf = appendString(buf, e.VaryRequest[k])
	}
	buf = appendStrings(buf, e.Variants)
	buf = appendStrings(buf, e.Tags)
	return buf
}

// readMeta reads what appendMeta wrote. The header's value lists share one
// backing array (each capped at its length, so appending to one never
// touches another).
func readMeta[T ~string | ~[]byte](r *reader[T], e *Entry) {
	e.Kind = Kind(r.int())
	e.URL = r.string()
	e.Status = r.int()
	e.RequestTime = r.time()
	e.ResponseTime = r.time()
	e.InitialAge = time.Duration(r.varint())
	e.Lifetime = time.Duration(r.varint())
	e.Expires = r.time()
	if n := r.count(); n > 0 {
		e.Header = make(http.Header, n)
		var vals []string
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string()
			e.Header[k] = r.stringsInto(&vals, n-i)
		}
	} else {
		e.Header = http.Header{}
	}
	e.Vary = r.strings()
	if n := r.count(); n > 0 {
		e.VaryRequest = make(map[string]string, n)
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string()
			e.VaryRequest[k] = r.string()
		}
	}
	e.Variants = r.strings()
	e.Tags = r.strings()
	if r.err == nil && e.Kind != KindResponse && e.Kind != KindVary {
		r.err = corrupt("unknown entry kind %d", e.Kind)
	}
	if r.err == nil && (e.Status < 0 || e.Status > 999) {
		r.err = corrupt("status %d out of range", e.Status)
	}
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(ss)))
	for _, s := range ss {
		buf = appendString(buf, s)
	}
	return buf
}

// appendTime stores Unix nanoseconds, 0 for the zero time.
func appendTime(buf []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(buf, 0)
	}
	return binary.AppendVarint(buf, t.UnixNano())
}

// reader reads the payload; the first error sticks and later reads return
// zero values, so readMeta needs no error checks between fields.
type reader[T ~string | ~[]byte] struct {
	b   T
	err error
}

var errShort = errors.New("truncated")

func (r *reader[T]) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := uvarint(r.b)
	if n <= 0 {
		r.err = corrupt("bad length field: %v", errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader[T]) varint() int64 {
	if r.err != nil {
		return 0
	}
	ux, n := uvarint(r.b) // zig-zag, as binary.Varint
	v := int64(ux >> 1)
	if ux&1 != 0 {
		v = ^v
	}
	if n <= 0 {
		r.err = corrupt("bad number field: %v", errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader[T]) int() int {
	v := r.uvarint()
	if v > maxDecodedBody {
		if r.err == nil {
			r.err = corrupt("number %d out of range", v)
		}
		return 0
	}
	return int(v)
}

// count reads a list length and checks it against the bytes left, so a
// corrupt length cannot make Decode allocate much.
func (r *reader[T]) count() int {
	n := r.int()
	if r.err == nil && n > len(r.b) {
		r.err = corrupt("list of %d items in %d bytes", n, len(r.b))
		return 0
	}
	return n
}

// field reads a length-prefixed field: a part of r.b.
func (r *reader[T]) field() T {
	var zero T
	n := r.int()
	if r.err != nil {
		return zero
	}
	if n > len(r.b) {
		r.err = corrupt("field of %d bytes, %d left: %v", n, len(r.b), errShort)
		return zero
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// bytes reads a length-prefixed field of a []byte reader without copying
// it (capped at its length).
func (r *reader[T]) bytes() []byte {
	v := []byte(r.field())
	return slices.Clip(v)
}

// string reads a length-prefixed string: a part of the metadata's string
// (reader[string]) or a copy (reader[[]byte], version 1).
func (r *reader[T]) string() string { return string(r.field()) }

func (r *reader[T]) strings() []string {
	var buf []string
	return r.stringsInto(&buf, 0)
}

// stringsInto reads a list of strings into the free capacity of *buf,
// which, when it is full, grows with room for about two strings for each of
// the more lists that follow, and returns the list capped at its length.
func (r *reader[T]) stringsInto(buf *[]string, more int) []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	if cap(*buf)-len(*buf) < n {
		*buf = make([]string, 0, n+2*max(more-1, 0))
	}
	i := len(*buf)
	for j := 0; j < n && r.err == nil; j++ {
		*buf = append(*buf, r.string())
	}
	return (*buf)[i:len(*buf):len(*buf)]
}

// uvarint is binary.Uvarint over a string or bytes.
func uvarint[T ~string | ~[]byte](b T) (uint64, int) {
	var x uint64
	var s uint
	for i := range len(b) {
		if i == binary.MaxVarintLen64 {
			return 0, -(i + 1) // overflow
		}
		c := b[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

func (r *reader[T]) time() time.Time {
	v := r.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}
