package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func snapEntries() []struct {
	key string
	e   *Entry
} {
	now := time.Unix(1_700_000_000, 0)
	out := []struct {
		key string
		e   *Entry
	}{}
	for i := 0; i < 5; i++ {
		body := []byte(fmt.Sprintf("body %d", i))
		if i == 3 {
			body = bytes.Repeat([]byte("compressible "), 200) // zstd path
		}
		out = append(out, struct {
			key string
			e   *Entry
		}{fmt.Sprintf("https://example.com/p%d", i), &Entry{
			URL: fmt.Sprintf("https://example.com/p%d", i), Status: 200,
			Header:      http.Header{"Content-Type": {"text/plain"}},
			Body:        body,
			BodySize:    int64(len(body)),
			RequestTime: now, ResponseTime: now.Add(time.Duration(i) * time.Second),
			Lifetime: time.Minute, Expires: now.Add(time.Hour), Tags: []string{"t"},
		}})
	}
	out = append(out, struct {
		key string
		e   *Entry
	}{"https://example.com/v", &Entry{
		Kind: KindVary, URL: "https://example.com/v", Header: http.Header{},
		Vary: []string{"Accept-Language"}, Variants: []string{"https://example.com/v\x00vary:00"}, Expires: now.Add(time.Hour),
	}})
	return out
}

func writeSnap(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	sw, err := NewSnapshotWriter(&buf, SnapshotHeader{Created: time.Unix(1_700_000_000, 5), Handler: "h1", Backend: "sqlite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range snapEntries() {
		if err := sw.Write(it.key, it.e, CompressionZstd); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if sw.Records() != int64(len(snapEntries())) || sw.Bytes() != int64(buf.Len()) {
		t.Fatalf("writer counts %d records, %d bytes; wrote %d bytes", sw.Records(), sw.Bytes(), buf.Len())
	}
	return buf.Bytes()
}

// readAll reads a stream to its end, returning the keys read and the
// error that ended it (nil for a complete stream).
func readAll(b []byte) ([]string, []*Entry, error) {
	sr, err := NewSnapshotReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	var entries []*Entry
	for {
		k, e, err := sr.Next()
		if err == io.EOF {
			return keys, entries, nil
		}
		if err != nil {
			return keys, entries, err
		}
		keys = append(keys, k)
		entries = append(entries, e)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	b := writeSnap(t)
	sr, err := NewSnapshotReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h := sr.Header()
	if h.Handler != "h1" || h.Backend != "sqlite" || !h.Created.Equal(time.Unix(1_700_000_000, 5)) {
		t.Fatalf("header %+v", h)
	}
	want := snapEntries()
	for i := 0; ; i++ {
		k, e, err := sr.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("EOF after %d records, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		w := want[i].e
		if k != want[i].key || e.Kind != w.Kind || string(e.Body) != string(w.Body) || !e.ResponseTime.Equal(w.ResponseTime) ||
			!reflect.DeepEqual(e.Variants, w.Variants) || !reflect.DeepEqual(e.Tags, w.Tags) {
			t.Fatalf("record %d: got %q %+v, want %q %+v", i, k, e, want[i].key, w)
		}
	}
	if sr.Offset() != int64(len(b)) || sr.Records() != int64(len(want)) {
		t.Fatalf("offset %d records %d, want %d %d", sr.Offset(), sr.Records(), len(b), len(want))
	}
	// Next keeps answering EOF
	if _, _, err := sr.Next(); err != io.EOF {
		t.Fatalf("after the end: %v", err)
	}
}

// A stream cut at any byte gives the records that were complete before
// the cut and then an error saying it was truncated: never a partial
// entry, never a clean end.
func TestSnapshotTruncatedAnywhere(t *testing.T) {
	b := writeSnap(t)
	full, _, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	// record end offsets, from the complete stream
	sr, _ := NewSnapshotReader(bytes.NewReader(b))
	ends := []int64{}
	for {
		if _, _, err := sr.Next(); err != nil {
			break
		}
		ends = append(ends, sr.Offset())
	}
	for n := 0; n < len(b); n++ {
		keys, _, err := readAll(b[:n])
		if err == nil {
			t.Fatalf("cut at %d of %d: no error", n, len(b))
		}
		if !errors.Is(err, ErrSnapshotDamaged) {
			t.Fatalf("cut at %d: %v does not wrap ErrSnapshotDamaged", n, err)
		}
		if n > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v does not say truncated", n, err)
		}
		complete := 0
		for _, end := range ends {
			if end <= int64(n) {
				complete++
			}
		}
		if len(keys) != complete || !slices.Equal(keys, full[:complete]) {
			t.Fatalf("cut at %d: read %q, want the %d complete records %q", n, keys, complete, full[:complete])
		}
	}
}

// Any single altered byte is detected, and what was read before it is
// the original.
func TestSnapshotAlteredByte(t *testing.T) {
	b := writeSnap(t)
	full, fullEntries, _ := readAll(b)
	for i := range b {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= x
			keys, entries, err := readAll(c)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: not detected", i, x)
			}
			if !errors.Is(err, ErrSnapshotDamaged) {
				t.Fatalf("byte %d: %v does not wrap ErrSnapshotDamaged", i, err)
			}
			if !slices.Equal(keys, full[:len(keys)]) {
				t.Fatalf("byte %d: read %q before the damage", i, keys)
			}
			for j, e := range entries {
				if string(e.Body) != string(fullEntries[j].Body) || e.URL != fullEntries[j].URL {
					t.Fatalf("byte %d: record %d altered but returned", i, j)
				}
			}
		}
	}
}

func TestSnapshotDamageMessages(t *testing.T) {
	b := writeSnap(t)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not a snapshot", []byte("GET / HTTP/1.1\r\n\r\n"), "not a cache snapshot"},
		{"newer version", append(append([]byte("CCSNAP"), 2, 0), b[8:]...), "format version 2"},
		{"data after the trailer", append(bytes.Clone(b), 'x'), "data after the trailer"},
		{"no trailer", b[:len(b)-6], "without a trailer"},
		{"two streams", append(bytes.Clone(b), b...), "data after the trailer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(tc.data)
			if err == nil || !errors.Is(err, ErrSnapshotDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want damage %q", err, tc.want)
			}
		})
	}
}

// An error of the underlying reader is reported as such, not as damage.
func TestSnapshotReadError(t *testing.T) {
	b := writeSnap(t)
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotestErr{boom})
	sr, err := NewSnapshotReader(r)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err = sr.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrSnapshotDamaged) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

func TestSnapshotWriterRejectsBadKeys(t *testing.T) {
	sw, _ := NewSnapshotWriter(io.Discard, SnapshotHeader{})
	e := &Entry{Header: http.Header{}}
	if err := sw.Write("", e, CompressionOff); err == nil {
		t.Fatal("empty key accepted")
	}
	if err := sw.Write(strings.Repeat("k", MaxKeyLen+1), e, CompressionOff); err == nil {
		t.Fatal("over-long key accepted")
	}
}
