package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// The snapshot stream format: every entry of a cache, one after the other,
// for export and import (see docs/snapshot-format.md for the full
// description). All integers are unsigned varints (encoding/binary) unless
// said otherwise; checksums are CRC-32C, 4 bytes big endian.
//
//	header  = "CCSNAP" | version (1 byte) | flags (1 byte, 0) |
//	          created (zig-zag varint, Unix ns) | handler (string) | backend (string) |
//	          CRC-32C of the header's previous bytes
//	record  = 'E' | key (string) | entry length | entry (Encode's bytes, with their own CRC-32C) |
//	          CRC-32C of the record's previous bytes
//	trailer = 'T' | record count | CRC-32C of every previous byte of the stream, header included
//	string  = length | bytes
//
// Nothing may follow the trailer. A reader verifies each record before it
// hands it out, so a damaged or truncated stream yields its good records
// and then an error wrapping ErrSnapshotDamaged; a stream that ends before
// its trailer is damaged, so truncation at any byte is detected.
const (
	snapshotVersion byte = 1
	recordEntry     byte = 'E'
	recordTrailer   byte = 'T'
)

var snapshotMagic = [6]byte{'C', 'C', 'S', 'N', 'A', 'P'}

// MaxSnapshotEntry bounds the encoded size of one entry in a snapshot.
const MaxSnapshotEntry = maxDecodedBody + 64<<20

// maxSnapshotString bounds the handler and backend names in a header.
const maxSnapshotString = 1024

// ErrSnapshotDamaged means a snapshot stream is truncated, altered or not a
// snapshot at all. Records read before the damage were verified and are
// good.
var ErrSnapshotDamaged = errors.New("damaged cache snapshot")

// SnapshotHeader describes where a snapshot comes from.
type SnapshotHeader struct {
	// Created is when the export started.
	Created time.Time
	// Handler and Backend are the name and storage backend of the cache
	// handler exported.
	Handler string
	Backend string
}

// SnapshotWriter writes a snapshot stream. It buffers: call Close to write
// the trailer and flush, or Flush to push out what is buffered. Not safe
// for concurrent use.
type SnapshotWriter struct {
	w       *bufio.Writer
	crc     uint32 // of everything written so far
	records int64
	bytes   int64
	buf     []byte
	err     error
}

// NewSnapshotWriter writes the header of a snapshot to w.
func NewSnapshotWriter(w io.Writer, h SnapshotHeader) (*SnapshotWriter, error) {
	sw := &SnapshotWriter{w: bufio.NewWriterSize(w, 64<<10)}
	b := append([]byte(nil), snapshotMagic[:]...)
	b = append(b, snapshotVersion, 0)
	var created int64
	if !h.Created.IsZero() {
		created = h.Created.UnixNano()
	}
	b = binary.AppendVarint(b, created)
	b = appendString(b, truncate(h.Handler, maxSnapshotString))
	b = appendString(b, truncate(h.Backend, maxSnapshotString))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	sw.write(b)
	return sw, sw.err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (sw *SnapshotWriter) write(b []byte) {
	if sw.err != nil {
		return
	}
	sw.crc = crc32.Update(sw.crc, castagnoli, b)
	n, err := sw.w.Write(b)
	sw.bytes += int64(n)
	sw.err = err
}

// Write appends one entry under key, encoded as Encode does with
// compression c.
func (sw *SnapshotWriter) Write(key string, e *Entry, c Compression) error {
	return sw.WriteEncoded(key, Encode(e, c))
}

// WriteEncoded appends one entry already in the stored-entry format
// (Encode's output), under key.
func (sw *SnapshotWriter) WriteEncoded(key string, enc []byte) error {
	if sw.err != nil {
		return sw.err
	}
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("snapshot record: key of %d bytes (want 1 to %d)", len(key), MaxKeyLen)
	}
	if len(enc) > MaxSnapshotEntry {
		return fmt.Errorf("snapshot record %q: entry of %d bytes: %w", key, len(enc), ErrTooLarge)
	}
	b := sw.buf[:0]
	b = append(b, recordEntry)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(len(enc)))
	crc := crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, enc)
	sw.write(b)
	sw.write(enc)
	sw.buf = binary.BigEndian.AppendUint32(b[:0], crc)
	sw.write(sw.buf)
	if sw.err == nil {
		sw.records++
	}
	return sw.err
}

// Records returns how many entries were written.
func (sw *SnapshotWriter) Records() int64 { return sw.records }

// Bytes returns how many bytes were written (buffered ones included).
func (sw *SnapshotWriter) Bytes() int64 { return sw.bytes }

// Flush writes out what is buffered.
func (sw *SnapshotWriter) Flush() error {
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	return sw.err
}

// Close writes the trailer and flushes. It does not close the underlying
// writer. A stream whose writer is never closed has no trailer, which
// readers report as truncation.
func (sw *SnapshotWriter) Close() error {
	b := []byte{recordTrailer}
	b = binary.AppendUvarint(b, uint64(sw.records))
	sw.write(b)
	sw.write(binary.BigEndian.AppendUint32(nil, sw.crc))
	return sw.Flush()
}

// SnapshotReader reads a snapshot stream written by SnapshotWriter,
// verifying each record before returning it. It reads through a buffer and
// holds one entry at a time: its memory does not grow with the stream.
type SnapshotReader struct {
	r       *bufio.Reader
	header  SnapshotHeader
	crc     uint32 // of every byte consumed
	rcrc    uint32 // of the current record's bytes
	offset  int64  // bytes consumed
	good    int64  // offset after the last verified record
	records int64
	done    bool
	err     error
}

// NewSnapshotReader reads and verifies the header of a snapshot from r.
// Its error wraps ErrSnapshotDamaged when r does not start with a snapshot
// header of a known version.
func NewSnapshotReader(r io.Reader) (*SnapshotReader, error) {
	sr := &SnapshotReader{r: bufio.NewReaderSize(r, 64<<10)}
	var m [8]byte
	if err := sr.full(m[:]); err != nil {
		return nil, sr.damage("reading the header: %w", err)
	}
	if [6]byte(m[:6]) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a cache snapshot (it does not start with %q)", ErrSnapshotDamaged, snapshotMagic[:])
	}
	if m[6] != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot format version %d, this build reads version %d", ErrSnapshotDamaged, m[6], snapshotVersion)
	}
	if m[7] != 0 {
		return nil, fmt.Errorf("%w: unknown header flags %#x", ErrSnapshotDamaged, m[7])
	}
	created, err := sr.varint()
	if err != nil {
		return nil, sr.damage("reading the header: %w", err)
	}
	handler, err := sr.string(maxSnapshotString)
	if err != nil {
		return nil, sr.damage("reading the header: %w", err)
	}
	backend, err := sr.string(maxSnapshotString)
	if err != nil {
		return nil, sr.damage("reading the header: %w", err)
	}
	if err := sr.checkCRC(sr.rcrc); err != nil {
		return nil, sr.damage("header: %w", err)
	}
	if created != 0 {
		sr.header.Created = time.Unix(0, created)
	}
	sr.header.Handler, sr.header.Backend = handler, backend
	sr.good = sr.offset
	return sr, nil
}

// Header returns the stream's header.
func (sr *SnapshotReader) Header() SnapshotHeader { return sr.header }

// Records returns how many verified entries Next has returned.
func (sr *SnapshotReader) Records() int64 { return sr.records }

// Offset returns the stream offset after the last verified record (or the
// trailer, once Next returned io.EOF): where damage, if any, begins.
func (sr *SnapshotReader) Offset() int64 { return sr.good }

// Next returns the next entry and its key. After the last entry it
// verifies the trailer and returns io.EOF. A damaged stream gives an error
// wrapping ErrSnapshotDamaged (truncation also wraps io.ErrUnexpectedEOF);
// an error of the underlying reader is returned wrapped. The first error
// sticks.
func (sr *SnapshotReader) Next() (string, *Entry, error) {
	if sr.err != nil {
		return "", nil, sr.err
	}
	if sr.done {
		return "", nil, io.EOF
	}
	key, e, err := sr.next()
	if err != nil {
		sr.err = err
		return "", nil, err
	}
	if e == nil {
		sr.done = true
		sr.good = sr.offset
		return "", nil, io.EOF
	}
	sr.records++
	sr.good = sr.offset
	return key, e, nil
}

func (sr *SnapshotReader) next() (string, *Entry, error) {
	sr.rcrc = 0
	typ, err := sr.byte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, fmt.Errorf("%w: truncated: the stream ends after record %d, without a trailer: %w",
				ErrSnapshotDamaged, sr.records, io.ErrUnexpectedEOF)
		}
		return "", nil, sr.where("%w", err)
	}
	switch typ {
	case recordEntry:
	case recordTrailer:
		n, err := sr.uvarint()
		if err != nil {
			return "", nil, sr.where("trailer: %w", err)
		}
		// the trailer's checksum covers every byte before it
		if err := sr.checkCRC(sr.crc); err != nil {
			return "", nil, sr.where("trailer: %w", err)
		}
		if int64(n) != sr.records {
			return "", nil, sr.where("trailer counts %d records, the stream has %d", n, sr.records)
		}
		if _, err := sr.r.ReadByte(); err == nil {
			return "", nil, sr.where("data after the trailer")
		} else if !errors.Is(err, io.EOF) {
			return "", nil, sr.where("after the trailer: %w", err)
		}
		return "", nil, nil
	default:
		return "", nil, sr.where("unknown record type %#x", typ)
	}
	key, err := sr.string(MaxKeyLen)
	if err == nil && key == "" {
		err = errors.New("empty key")
	}
	if err != nil {
		return "", nil, sr.where("key: %w", err)
	}
	n, err := sr.uvarint()
	if err == nil && n > MaxSnapshotEntry {
		err = fmt.Errorf("entry length %d out of range", n)
	}
	if err != nil {
		return "", nil, sr.where("entry length: %w", err)
	}
	enc, err := sr.bytes(int(n))
	if err != nil {
		return "", nil, sr.where("entry: %w", err)
	}
	if err := sr.checkCRC(sr.rcrc); err != nil {
		return "", nil, sr.where("%w", err)
	}
	e, err := Decode(enc)
	if err != nil {
		return "", nil, sr.where("entry %q: %w", key, err)
	}
	return key, e, nil
}

// where wraps a damage found in the record after the last good one.
func (sr *SnapshotReader) where(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if ie, ok := errors.AsType[ioError](err); ok {
		return fmt.Errorf("reading the snapshot after record %d (byte %d): %w", sr.records, sr.good, ie.err)
	}
	return fmt.Errorf("%w: record %d (at byte %d): %w", ErrSnapshotDamaged, sr.records+1, sr.good, err)
}

func (sr *SnapshotReader) damage(format string, err error) error {
	if ie, ok := errors.AsType[ioError](err); ok {
		return fmt.Errorf("reading the snapshot: %w", ie.err)
	}
	return fmt.Errorf("%w: %w", ErrSnapshotDamaged, fmt.Errorf(format, err))
}

// ioError is a failure of the underlying reader, as opposed to damage.
type ioError struct{ err error }

func (e ioError) Error() string { return e.err.Error() }
func (e ioError) Unwrap() error { return e.err }

var errTruncated = fmt.Errorf("truncated: %w", io.ErrUnexpectedEOF)

// readErr classifies an error of the underlying reader: the end of the
// stream in the middle of something is truncation (damage), anything else
// an I/O error.
func readErr(err error, atStart bool) error {
	switch {
	case errors.Is(err, io.EOF) && atStart:
		return io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errTruncated
	}
	return ioError{err}
}

func (sr *SnapshotReader) consumed(b []byte) {
	sr.crc = crc32.Update(sr.crc, castagnoli, b)
	sr.rcrc = crc32.Update(sr.rcrc, castagnoli, b)
	sr.offset += int64(len(b))
}

func (sr *SnapshotReader) byte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err != nil {
		return 0, readErr(err, true)
	}
	sr.consumed([]byte{c})
	return c, nil
}

func (sr *SnapshotReader) full(b []byte) error {
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return readErr(err, false)
	}
	sr.consumed(b)
	return nil
}

// bytes reads n bytes in steps, so that a damaged length on a short
// stream fails at its end instead of allocating n bytes first.
func (sr *SnapshotReader) bytes(n int) ([]byte, error) {
	const step = 1 << 20
	b := make([]byte, 0, min(n, step))
	for len(b) < n {
		k := min(n-len(b), step)
		b = append(b, make([]byte, k)...)
		if err := sr.full(b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (sr *SnapshotReader) uvarint() (uint64, error) {
	var v uint64
	for i := range binary.MaxVarintLen64 {
		c, err := sr.byte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errTruncated
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("number too long")
}

func (sr *SnapshotReader) varint() (int64, error) {
	u, err := sr.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}

func (sr *SnapshotReader) string(max int) (string, error) {
	n, err := sr.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", fmt.Errorf("string of %d bytes (at most %d)", n, max)
	}
	b := make([]byte, n)
	if err := sr.full(b); err != nil {
		return "", err
	}
	return string(b), nil
}

// checkCRC reads a checksum and compares it with want.
func (sr *SnapshotReader) checkCRC(want uint32) error {
	var b [4]byte
	if err := sr.full(b[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(b[:]) != want {
		return errors.New("checksum mismatch")
	}
	return nil
}
