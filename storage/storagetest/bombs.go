package storagetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/caddycache/caddy-cache/storage"
)

// BombBodySize is the recorded body length of the encodings InflationBombs
// returns.
const BombBodySize = 2000

// InflationBombs returns encodings of a response entry that record a
// zstd-compressed body of BombBodySize bytes, each with a valid checksum,
// whose zstd data inflates to about inflated bytes instead:
//
//	"frame declares more than the recorded length"  one frame whose header says inflated bytes
//	"frame without a content size"                  one frame that declares no size
//	"frame declaring the recorded length, inflating past it" a frame whose header lies
//	"second frame behind a matching first"         the real body, then a second frame of inflated bytes
//
// Decode must answer ErrCorrupt for every one of them without inflating
// more than about BombBodySize bytes. The layout is the one codec.go
// documents (payload: meta, raw length, compressed length, frame).
func InflationBombs(t testing.TB, inflated int) map[string][]byte {
	t.Helper()
	e := Entry("bomb", 0)
	var sb strings.Builder
	for i := 0; sb.Len() < BombBodySize; i++ {
		fmt.Fprintf(&sb, "line %d of a body that compresses well\n", i)
	}
	e.Body = []byte(sb.String()[:BombBodySize])
	e.BodySize = BombBodySize
	enc := storage.Encode(e, storage.CompressionZstd)

	// Find the body's frame: the payload ends with
	// uvarint(BombBodySize) uvarint(len(frame)) frame, then the CRC.
	const crcLen = 4
	zmagic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	start := bytes.LastIndex(enc, zmagic)
	if start < 0 || enc[4]&1 == 0 {
		t.Fatal("storagetest: the bomb entry was not stored compressed")
	}
	frame := enc[start : len(enc)-crcLen]
	tail := binary.AppendUvarint(binary.AppendUvarint(nil, BombBodySize), uint64(len(frame)))
	metaEnd := start - len(tail)
	if metaEnd < 5 || !bytes.Equal(enc[metaEnd:start], tail) {
		t.Fatal("storagetest: the entry format is not the one InflationBombs knows")
	}
	build := func(z []byte) []byte {
		b := bytes.Clone(enc[:metaEnd])
		b = binary.AppendUvarint(b, BombBodySize)
		b = binary.AppendUvarint(b, uint64(len(z)))
		b = append(b, z...)
		return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	}
	// zeros compresses inflated zero bytes, streaming them so that the
	// test does not hold them; size is the content size the frame
	// declares (0: none).
	zeros := func(size int64) []byte {
		var out bytes.Buffer
		w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		w.ResetContentSize(&out, size)
		chunk := make([]byte, 64<<10)
		for n := 0; n < inflated; n += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), inflated-n)]); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Close() // with a declared size that is not the written one, Close says so after writing the frame
		return out.Bytes()
	}
	return map[string][]byte{
		"frame declares more than the recorded length":           build(zeros(int64(inflated))),
		"frame without a content size":                           build(zeros(0)),
		"frame declaring the recorded length, inflating past it": build(zeros(BombBodySize)),
		"second frame behind a matching first":                   build(append(bytes.Clone(frame), zeros(int64(inflated))...)),
	}
}
