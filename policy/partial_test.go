package policy

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestContentRange(t *testing.T) {
	cases := []struct {
		name, v  string
		want     ByteRange
		complete int64
		ok       bool
	}{
		{"9110 14.4 a single range with its complete length", "bytes 0-99/1000", ByteRange{0, 99}, 1000, true},
		{"the unit is case-insensitive", "Bytes 10-10/11", ByteRange{10, 10}, 11, true},
		{"9110 14.4 an unknown complete length cannot be placed", "bytes 0-99/*", ByteRange{}, 0, false},
		{"9110 14.4 the unsatisfied-range form is not a part", "bytes */1000", ByteRange{}, 0, false},
		{"9110 14.4 last before first is invalid", "bytes 9-3/10", ByteRange{}, 0, false},
		{"9110 14.4 last at the complete length is invalid", "bytes 0-10/10", ByteRange{}, 0, false},
		{"another unit", "items 0-1/2", ByteRange{}, 0, false},
		{"a sign is not a digit", "bytes +1-2/3", ByteRange{}, 0, false},
		{"no slash", "bytes 0-1", ByteRange{}, 0, false},
		{"empty", "", ByteRange{}, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, n, ok := ContentRange(tc.v)
			if r != tc.want || n != tc.complete || ok != tc.ok {
				t.Fatalf("ContentRange(%q) = %v, %d, %v; want %v, %d, %v", tc.v, r, n, ok, tc.want, tc.complete, tc.ok)
			}
			if ok {
				if back := FormatContentRange(r, n); !strings.EqualFold(back, tc.v) {
					t.Fatalf("FormatContentRange = %q, want %q", back, tc.v)
				}
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		name, v string
		size    int64
		want    []ByteRange
		ok      bool
	}{
		{"9110 14.1.2 first and last position", "bytes=0-499", 1000, []ByteRange{{0, 499}}, true},
		{"9110 14.1.2 a last position past the end means the end", "bytes=900-2000", 1000, []ByteRange{{900, 999}}, true},
		{"9110 14.1.2 an open range runs to the end", "bytes=900-", 1000, []ByteRange{{900, 999}}, true},
		{"9110 14.1.2 a suffix range is the last n bytes", "bytes=-100", 1000, []ByteRange{{900, 999}}, true},
		{"9110 14.1.2 a suffix longer than the representation is all of it", "bytes=-5000", 1000, []ByteRange{{0, 999}}, true},
		{"9110 14.1.2 a zero-length suffix is unsatisfiable", "bytes=-0", 1000, nil, true},
		{"9110 14.1.2 a first position past the end is unsatisfiable", "bytes=1000-", 1000, nil, true},
		{"9110 14.1.2 several ranges in request order", "bytes=500-599, 0-9", 1000, []ByteRange{{500, 599}, {0, 9}}, true},
		{"9110 14.1.2 unsatisfiable ranges among satisfiable ones are left out", "bytes=2000-, 0-0", 1000, []ByteRange{{0, 0}}, true},
		{"9110 14.1.1 last before first is invalid", "bytes=5-1", 1000, nil, false},
		{"9110 14.2 another unit is not a byte range", "items=0-1", 1000, nil, false},
		{"no range at all", "bytes=", 1000, nil, false},
		{"garbage", "bytes=a-b", 1000, nil, false},
		{"no dash", "bytes=5", 1000, nil, false},
		{"units are case-insensitive", "BYTES=0-0", 10, []ByteRange{{0, 0}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRange(tc.v, tc.size)
			if ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseRange(%q, %d) = %v, %v; want %v, %v", tc.v, tc.size, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMergeParts(t *testing.T) {
	part := func(first int64, s string) Part {
		return Part{Range: ByteRange{first, first + int64(len(s)) - 1}, Data: []byte(s)}
	}
	cases := []struct {
		name string
		in   []Part
		want []Part
	}{
		{"9111 3.4 disjoint parts stay apart, sorted", []Part{part(6, "gh"), part(0, "ab")}, []Part{part(0, "ab"), part(6, "gh")}},
		{"9111 3.4 adjacent parts are joined", []Part{part(0, "abc"), part(3, "def")}, []Part{part(0, "abcdef")}},
		{"9111 3.4 overlapping parts are joined", []Part{part(2, "cdef"), part(0, "abcd")}, []Part{part(0, "abcdef")}},
		{"9111 3.4 a part inside another adds nothing", []Part{part(0, "abcdef"), part(2, "cd")}, []Part{part(0, "abcdef")}},
		{"three parts close a gap", []Part{part(0, "ab"), part(4, "ef"), part(2, "cd")}, []Part{part(0, "abcdef")}},
		{"one part", []Part{part(5, "x")}, []Part{part(5, "x")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeParts(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d parts %v, want %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].Range != tc.want[i].Range || string(got[i].Data) != string(tc.want[i].Data) {
					t.Fatalf("part %d = %v %q, want %v %q", i, got[i].Range, got[i].Data, tc.want[i].Range, tc.want[i].Data)
				}
			}
		})
	}
	t.Run("the result shares no memory with the input", func(t *testing.T) {
		in := []Part{part(0, "ab")}
		out := MergeParts(in)
		out[0].Data[0] = 'X'
		if string(in[0].Data) != "ab" {
			t.Fatalf("input changed to %q", in[0].Data)
		}
	})
}

func TestCovering(t *testing.T) {
	set := []ByteRange{{0, 99}, {200, 299}}
	cases := []struct {
		name string
		r    ByteRange
		want int
	}{
		{"9111 3.3 a range wholly within a stored part", ByteRange{10, 20}, 0},
		{"9111 3.3 the whole of a stored part", ByteRange{200, 299}, 1},
		{"9111 3.3 a range across a gap is not within the stored parts", ByteRange{50, 250}, -1},
		{"9111 3.3 a range past a part", ByteRange{90, 100}, -1},
		{"a range in the gap", ByteRange{100, 199}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Covering(set, tc.r); got != tc.want {
				t.Fatalf("Covering(%v) = %d, want %d", tc.r, got, tc.want)
			}
		})
	}
}

const (
	date     = "Thu, 01 Jan 2026 00:00:10 GMT"
	modified = "Thu, 01 Jan 2026 00:00:00 GMT"
)

func TestStrongValidator(t *testing.T) {
	cases := []struct {
		name string
		h    http.Header
		want string
		ok   bool
	}{
		{"9110 8.8.3 a strong ETag", http.Header{"Etag": {`"v1"`}}, `"v1"`, true},
		{"9110 8.8.3 a weak ETag is not strong", http.Header{"Etag": {`W/"v1"`}}, "", false},
		{"9110 8.8.3 a weak ETag wins over a strong Last-Modified", http.Header{"Etag": {`W/"v1"`}, "Last-Modified": {modified}, "Date": {date}}, "", false},
		{"an invalid ETag is no validator", http.Header{"Etag": {`v1`}}, "", false},
		{"9110 8.8.2.2 Last-Modified a second or more before Date is strong", http.Header{"Last-Modified": {modified}, "Date": {date}}, "lm:" + modified, true},
		{"9110 8.8.2.2 Last-Modified equal to Date is weak", http.Header{"Last-Modified": {date}, "Date": {date}}, "", false},
		{"9110 8.8.2.2 Last-Modified without Date is weak", http.Header{"Last-Modified": {modified}}, "", false},
		{"no validator", http.Header{}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := StrongValidator(tc.h)
			if v != tc.want || ok != tc.ok {
				t.Fatalf("StrongValidator = %q, %v; want %q, %v", v, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSameStrongValidator(t *testing.T) {
	cases := []struct {
		name string
		a, b http.Header
		want bool
	}{
		{"9111 3.4 equal strong ETags combine", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`"a"`}}, true},
		{"9111 3.4 different ETags do not", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`"b"`}}, false},
		{"9111 3.4 weak ETags do not", http.Header{"Etag": {`W/"a"`}}, http.Header{"Etag": {`W/"a"`}}, false},
		{"9111 3.4 no validator does not", http.Header{}, http.Header{}, false},
		{
			"9111 3.4 equal strong Last-Modified combine",
			http.Header{"Last-Modified": {modified}, "Date": {date}},
			http.Header{"Last-Modified": {modified}, "Date": {"Thu, 01 Jan 2026 00:05:00 GMT"}},
			true,
		},
		{
			"an ETag and a Last-Modified are not the same validator",
			http.Header{"Etag": {`"a"`}},
			http.Header{"Last-Modified": {modified}, "Date": {date}},
			false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SameStrongValidator(tc.a, tc.b); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIfRangeMatches(t *testing.T) {
	withTag := http.Header{"Etag": {`"v1"`}, "Last-Modified": {modified}, "Date": {date}}
	lmOnly := http.Header{"Last-Modified": {modified}, "Date": {date}}
	weakLM := http.Header{"Last-Modified": {date}, "Date": {date}}
	cases := []struct {
		name    string
		ifRange []string
		stored  http.Header
		want    bool
	}{
		{"no If-Range", nil, withTag, true},
		{"9110 13.1.5 an equal strong entity-tag matches", []string{`"v1"`}, withTag, true},
		{"9110 13.1.5 another entity-tag does not", []string{`"v2"`}, withTag, false},
		{"9110 13.1.5 a weak entity-tag never matches", []string{`W/"v1"`}, withTag, false},
		{"9110 13.1.5 a date equal to a strong Last-Modified matches", []string{modified}, lmOnly, true},
		{"9110 13.1.5 a date equal to a strong Last-Modified matches beside an ETag", []string{modified}, withTag, true},
		{"9110 13.1.5 another date does not", []string{date}, lmOnly, false},
		{"9110 13.1.5 a date against a weak Last-Modified does not", []string{date}, weakLM, false},
		{"an invalid value does not", []string{"soon"}, withTag, false},
		{"two values do not", []string{`"v1"`, `"v1"`}, withTag, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := http.Header{}
			if tc.ifRange != nil {
				req["If-Range"] = tc.ifRange
			}
			if got := IfRangeMatches(req, tc.stored); got != tc.want {
				t.Fatalf("IfRangeMatches(%q) = %v, want %v", tc.ifRange, got, tc.want)
			}
		})
	}
}
