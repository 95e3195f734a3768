// Package storagetest is the conformance suite every storage backend passes.
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return openMyStore(t) }, storagetest.Options{})
//	}
//
// The suite checks the contract written on storage.Store, storage.Lister and
// storage.Statser: not found, round trip of every Entry field, overwrite,
// delete, expiry, body sizes and contents, awkward keys, corrupt stored bytes,
// concurrent readers and writers, context cancellation, listing and stats.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// Options adapt the suite to a backend.
type Options struct {
	// MaxBodySize is the largest body the backend must hold (the
	// "large body at the limit" case). Default 4 MiB.
	MaxBodySize int
	// Corrupt overwrites the raw stored bytes of key with garbage,
	// bypassing the codec, so the suite can check that Get answers
	// ErrCorrupt (and never panics). Required for backends that store
	// encoded bytes; stores that keep Go values (memory) set NoBytes.
	// raw is what the codec part of the stored value must become (for
	// example the data column of a row); the entry's other bookkeeping
	// (expiry, key) stays as Put left it.
	Corrupt func(t *testing.T, s storage.Store, key string, raw []byte)
	// NoBytes marks a store that keeps decoded values and so cannot hold
	// corrupt bytes; the corrupt-entry subtest then checks nothing and
	// says so in its name instead of skipping.
	NoBytes bool
	// TimePrecision is the precision at which the backend keeps the
	// Entry times (RequestTime, ResponseTime, Expires); a stored time may
	// differ from the original by less than this. Backends that use the
	// storage codec keep nanoseconds. Default: 1ns (exact).
	TimePrecision time.Duration
	// ExpiryGrace is how long after an entry's Expires the backend may
	// still be returning it (for stores whose native TTL is coarser than
	// the Entry's). The expiry subtest sleeps this much longer. Default: 0.
	ExpiryGrace time.Duration
}

func (o *Options) defaults() {
	if o.MaxBodySize <= 0 {
		o.MaxBodySize = 4 << 20
	}
	if o.TimePrecision <= 0 {
		o.TimePrecision = time.Nanosecond
	}
}

// Run runs every subtest against fresh stores from open. open is called
// once per subtest and must return an empty store; the suite cleans up
// through t.Cleanup registered by open.
func Run(t *testing.T, open func(t *testing.T) storage.Store, opts Options) {
	t.Helper()
	opts.defaults()
	if !opts.NoBytes && opts.Corrupt == nil {
		t.Fatal("storagetest: Options.Corrupt is required for a store that keeps encoded bytes (set NoBytes for a store that keeps Go values)")
	}
	s := suite{open: open, opts: opts}
	t.Run("not found", s.notFound)
	t.Run("round trip of every field", s.roundTrip)
	t.Run("round trip of a Vary index entry", s.roundTripVary)
	t.Run("overwrite", s.overwrite)
	t.Run("delete", s.delete)
	t.Run("expiry", s.expiry)
	t.Run("zero Expires never expires", s.noExpiry)
	t.Run("large body at MaxBodySize", s.largeBody)
	t.Run("empty body", s.emptyBody)
	t.Run("binary body with every byte value", s.binaryBody)
	t.Run("awkward keys", s.keys)
	if opts.NoBytes {
		t.Run("corrupt entry (not applicable: the store keeps Go values, checks they round-trip)", s.corruptNoBytes)
	} else {
		t.Run("corrupt entry", s.corrupt)
	}
	t.Run("concurrent readers and writers", s.concurrent)
	t.Run("cancelled context", s.cancelled)
	t.Run("list", s.list)
	t.Run("stats", s.stats)
	t.Run("tag index", s.tagIndex)
}

type suite struct {
	open func(t *testing.T) storage.Store
	opts Options
}

var bg = context.Background()

// Entry returns a sample response entry with every field set. The body is
// bodySize bytes derived from id, so bodies of different ids differ, and the
// header X-Entry-Id carries id. Times are in a fixed non-UTC zone and carry a
// monotonic reading, which stores are free to drop.
func Entry(id string, bodySize int) *storage.Entry {
	now := time.Now().In(time.FixedZone("UTC+3", 3*3600))
	body := make([]byte, bodySize)
	seed := []byte(id + "|")
	for i := range body {
		body[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return &storage.Entry{
		Kind:   storage.KindResponse,
		URL:    "https://example.test/item?id=" + id,
		Status: http.StatusOK,
		Header: http.Header{
			"Content-Type":  {"text/plain; charset=utf-8"},
			"Cache-Control": {"max-age=3600", "public"},
			"Set-Cookie":    {"a=1", "b=2", "c=3"},
			"X-Empty":       {""},
			"X-Entry-Id":    {id},
		},
		Body:         body,
		BodySize:     int64(bodySize),
		RequestTime:  now.Add(-1500 * time.Millisecond).Add(123456789 * time.Nanosecond),
		ResponseTime: now.Add(-1 * time.Second).Add(987654321 * time.Nanosecond),
		InitialAge:   17*time.Second + 3*time.Nanosecond,
		Lifetime:     time.Hour + 7*time.Nanosecond,
		Expires:      now.Add(2*time.Hour + 11*time.Nanosecond),
		Vary:         []string{"Accept-Encoding", "Accept-Language"},
		VaryRequest:  map[string]string{"Accept-Encoding": "gzip", "Accept-Language": "de-CH, fr;q=0.5", "X-None": ""},
		Tags:         []string{"tag-" + id, "product", "ünïcödé tag"},
	}
}

// Diff describes how got differs from want, field by field, or returns ""
// when they are equal. Times are compared with time.Time.Equal after allowing
// for prec (1ns or less means exact); nil and empty slices, maps and bodies
// are equal; got.BodySize may be 0 or len(got.Body).
func Diff(want, got *storage.Entry, prec time.Duration) string {
	return diff(want, got, prec, false)
}

// DiffMeta is Diff for an entry handed out by storage.Lister.List: got.Body
// must be nil and got.BodySize must equal len(want.Body).
func DiffMeta(want, got *storage.Entry, prec time.Duration) string {
	return diff(want, got, prec, true)
}

func diff(want, got *storage.Entry, prec time.Duration, meta bool) string {
	if got == nil {
		return "got a nil entry"
	}
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.Kind != want.Kind {
		add("Kind: got %d, want %d", got.Kind, want.Kind)
	}
	if got.URL != want.URL {
		add("URL: got %q, want %q", got.URL, want.URL)
	}
	if got.Status != want.Status {
		add("Status: got %d, want %d", got.Status, want.Status)
	}
	if !maps.EqualFunc(got.Header, want.Header, slices.Equal[[]string]) {
		add("Header: got %v, want %v", got.Header, want.Header)
	}
	if meta {
		if got.Body != nil {
			add("Body: got %d bytes, want nil in a List result", len(got.Body))
		}
		if got.BodySize != int64(len(want.Body)) {
			add("BodySize: got %d, want %d", got.BodySize, len(want.Body))
		}
	} else {
		if !bytes.Equal(got.Body, want.Body) {
			add("Body: %s", bodyDiff(got.Body, want.Body))
		}
		if got.BodySize != 0 && got.BodySize != int64(len(got.Body)) {
			add("BodySize: got %d, but the body has %d bytes", got.BodySize, len(got.Body))
		}
	}
	for _, tc := range []struct {
		name      string
		got, want time.Time
	}{
		{"RequestTime", got.RequestTime, want.RequestTime},
		{"ResponseTime", got.ResponseTime, want.ResponseTime},
		{"Expires", got.Expires, want.Expires},
	} {
		if !timeEqual(tc.got, tc.want, prec) {
			how := "exact"
			if prec > time.Nanosecond {
				how = "precision " + prec.String()
			}
			add("%s: got %s, want %s (%s)", tc.name,
				tc.got.UTC().Format(time.RFC3339Nano), tc.want.UTC().Format(time.RFC3339Nano), how)
		}
	}
	if got.InitialAge != want.InitialAge {
		add("InitialAge: got %v, want %v", got.InitialAge, want.InitialAge)
	}
	if got.Lifetime != want.Lifetime {
		add("Lifetime: got %v, want %v", got.Lifetime, want.Lifetime)
	}
	if !slices.Equal(got.Vary, want.Vary) {
		add("Vary: got %q, want %q", got.Vary, want.Vary)
	}
	if !maps.Equal(got.VaryRequest, want.VaryRequest) {
		add("VaryRequest: got %q, want %q", got.VaryRequest, want.VaryRequest)
	}
	if !slices.Equal(got.Variants, want.Variants) {
		add("Variants: got %q, want %q", got.Variants, want.Variants)
	}
	if !slices.Equal(got.Tags, want.Tags) {
		add("Tags: got %q, want %q", got.Tags, want.Tags)
	}
	return strings.Join(d, "; ")
}

func timeEqual(a, b time.Time, prec time.Duration) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	if prec <= time.Nanosecond {
		return a.Equal(b)
	}
	d := a.Sub(b)
	return d > -prec && d < prec
}

func bodyDiff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("%d bytes as wanted, but byte %d is %#02x, want %#02x", len(got), i, got[i], want[i])
		}
	}
	return "differs"
}

// mustPut stores e under key and fails the test on error.
func mustPut(t *testing.T, s storage.Store, key string, e *storage.Entry) {
	t.Helper()
	if err := s.Put(bg, key, e); err != nil {
		t.Fatalf("Put(%q): %v", short(key), err)
	}
}

// wantEntry checks that Get(key) returns an entry equal to want.
func (s *suite) wantEntry(t *testing.T, st storage.Store, key string, want *storage.Entry) {
	t.Helper()
	got, err := st.Get(bg, key)
	if err != nil {
		t.Fatalf("Get(%q) after Put: %v, want the stored entry", short(key), err)
	}
	if d := Diff(want, got, s.opts.TimePrecision); d != "" {
		t.Fatalf("Get(%q) returned a different entry: %s", short(key), d)
	}
}

// wantNotFound checks that Get(key) answers ErrNotFound.
func wantNotFound(t *testing.T, st storage.Store, key, why string) {
	t.Helper()
	got, err := st.Get(bg, key)
	if !errors.Is(err, storage.ErrNotFound) {
		if err == nil {
			t.Fatalf("Get(%q) %s: got an entry (URL %q, Expires %v), want ErrNotFound", short(key), why, got.URL, got.Expires)
		}
		t.Fatalf("Get(%q) %s: error %v, want ErrNotFound", short(key), why, err)
	}
	if got != nil {
		t.Fatalf("Get(%q) %s: returned ErrNotFound together with a non-nil entry", short(key), why)
	}
}

// short abbreviates long keys in messages.
func short(key string) string {
	if len(key) > 60 {
		return fmt.Sprintf("%s…(%d bytes)", key[:40], len(key))
	}
	return key
}

func (s *suite) notFound(t *testing.T) {
	st := s.open(t)
	wantNotFound(t, st, "never/stored", "of a key never stored")
	mustPut(t, st, "present", Entry("present", 10))
	wantNotFound(t, st, "presen", "of a prefix of a stored key")
	wantNotFound(t, st, "present/", "of a stored key plus a suffix")
	wantNotFound(t, st, "PRESENT", "of a stored key in another case")
}

func (s *suite) roundTrip(t *testing.T) {
	st := s.open(t)
	want := Entry("round-trip", 3000)
	want.Status = http.StatusNotFound
	mustPut(t, st, "rt", want)
	s.wantEntry(t, st, "rt", want)
	// A second Get still returns it (nothing consumed by the first).
	s.wantEntry(t, st, "rt", want)
}

func (s *suite) roundTripVary(t *testing.T) {
	st := s.open(t)
	now := time.Now()
	want := &storage.Entry{
		Kind:     storage.KindVary,
		URL:      "https://example.test/varies",
		Vary:     []string{"Accept-Encoding"},
		Variants: []string{"varies#gzip", "varies#br", "varies#"},
		Expires:  now.Add(time.Hour),
		Header:   http.Header{},
	}
	mustPut(t, st, "varies", want)
	s.wantEntry(t, st, "varies", want)
}

func (s *suite) overwrite(t *testing.T) {
	st := s.open(t)
	first := Entry("first", 5000)
	mustPut(t, st, "k", first)
	second := Entry("second", 100) // smaller body: no leftover bytes of the first may show
	second.Status = http.StatusMultipleChoices
	second.Tags = []string{"other"}
	second.Vary = nil
	second.VaryRequest = nil
	mustPut(t, st, "k", second)
	s.wantEntry(t, st, "k", second)
	third := Entry("third", 9000) // and a larger one after that
	mustPut(t, st, "k", third)
	s.wantEntry(t, st, "k", third)
}

func (s *suite) delete(t *testing.T) {
	st := s.open(t)
	mustPut(t, st, "a", Entry("a", 10))
	b := Entry("b", 10)
	mustPut(t, st, "b", b)
	if err := st.Delete(bg, "a"); err != nil {
		t.Fatalf("Delete of a stored key: %v", err)
	}
	wantNotFound(t, st, "a", "after Delete")
	s.wantEntry(t, st, "b", b)
	if err := st.Delete(bg, "a"); err != nil {
		t.Fatalf("second Delete of the same key: %v, want nil", err)
	}
	if err := st.Delete(bg, "never/stored"); err != nil {
		t.Fatalf("Delete of a key never stored: %v, want nil", err)
	}
	// The key is usable again after a delete.
	again := Entry("a-again", 20)
	mustPut(t, st, "a", again)
	s.wantEntry(t, st, "a", again)
}

func (s *suite) expiry(t *testing.T) {
	st := s.open(t)

	// Already expired when stored: never returned, and it replaces (removes)
	// any live entry under the same key.
	expired := Entry("expired", 10)
	expired.Expires = time.Now().Add(-time.Second)
	if err := st.Put(bg, "expired", expired); err != nil {
		t.Fatalf("Put of an entry already expired: %v, want nil (not stored)", err)
	}
	wantNotFound(t, st, "expired", "of an entry already expired at Put")
	mustPut(t, st, "replaced", Entry("replaced", 10))
	if err := st.Put(bg, "replaced", expired); err != nil {
		t.Fatalf("Put of an expired entry over a live one: %v, want nil", err)
	}
	wantNotFound(t, st, "replaced", "after an expired entry replaced a live one")

	// Expires in 1.5s: returned before, not after.
	soon := Entry("soon", 10)
	soon.Expires = time.Now().Add(1500 * time.Millisecond)
	mustPut(t, st, "soon", soon)
	later := Entry("later", 10)
	mustPut(t, st, "later", later)
	s.wantEntry(t, st, "soon", soon)
	if l, ok := st.(storage.Lister); ok {
		keys := listKeys(t, l, "")
		if !keys["soon"] || !keys["later"] {
			t.Fatalf("List before expiry: got keys %v, want soon and later", sortedKeys(keys))
		}
	}

	time.Sleep(time.Until(soon.Expires) + 100*time.Millisecond + s.opts.ExpiryGrace)

	wantNotFound(t, st, "soon", "after its Expires passed")
	s.wantEntry(t, st, "later", later)
	if x, ok := st.(storage.Expirer); ok {
		counter, counts := st.(storage.ExpiredCounter)
		counted := int64(-1)
		if counts {
			var err error
			if counted, err = counter.CountExpired(bg); err != nil || counted < 0 {
				t.Fatalf("CountExpired after one entry expired: %d, %v", counted, err)
			}
			s.wantEntry(t, st, "later", later) // counting removes nothing
		}
		n, err := x.DeleteExpired(bg)
		if err != nil {
			t.Fatalf("DeleteExpired after one entry expired: %v", err)
		}
		if n < 0 {
			t.Fatalf("DeleteExpired after one entry expired: removed %d", n)
		}
		if counts && counted != n {
			t.Fatalf("CountExpired said %d, then DeleteExpired removed %d", counted, n)
		}
		if counts {
			if c, err := counter.CountExpired(bg); err != nil || c != 0 {
				t.Fatalf("CountExpired after DeleteExpired: %d, %v; want 0, nil", c, err)
			}
		}
		wantNotFound(t, st, "soon", "after DeleteExpired")
		s.wantEntry(t, st, "later", later)
		if n, err := x.DeleteExpired(bg); err != nil || n != 0 {
			t.Fatalf("a second DeleteExpired: removed %d, error %v; want 0, nil", n, err)
		}
	}
	if l, ok := st.(storage.Lister); ok {
		keys := listKeys(t, l, "")
		if keys["soon"] {
			t.Fatalf("List after expiry: listed the expired key %q (keys %v)", "soon", sortedKeys(keys))
		}
		if !keys["later"] {
			t.Fatalf("List after expiry: did not list the live key %q (keys %v)", "later", sortedKeys(keys))
		}
	}
}

func (s *suite) noExpiry(t *testing.T) {
	st := s.open(t)
	e := Entry("forever", 10)
	e.Expires = time.Time{}
	mustPut(t, st, "forever", e)
	s.wantEntry(t, st, "forever", e)
}

func (s *suite) largeBody(t *testing.T) {
	st := s.open(t)
	e := Entry("large", 0)
	e.Body, e.BodySize = RandomBody(s.opts.MaxBodySize, 1), int64(s.opts.MaxBodySize)
	mustPut(t, st, "large", e)
	s.wantEntry(t, st, "large", e)

	// A compressible one of the same size too.
	c := Entry("large-compressible", s.opts.MaxBodySize)
	mustPut(t, st, "large-compressible", c)
	s.wantEntry(t, st, "large-compressible", c)
}

// RandomBody returns n incompressible bytes, the same for the same seed.
func RandomBody(n int, seed byte) []byte {
	body := make([]byte, n)
	r := rand.New(rand.NewChaCha8([32]byte{seed, 2, 3}))
	for i := 0; i < len(body); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(body); j++ {
			body[i+j] = byte(v >> (8 * j))
		}
	}
	return body
}

func (s *suite) emptyBody(t *testing.T) {
	st := s.open(t)
	for _, tc := range []struct {
		key  string
		body []byte
	}{{"empty-slice", []byte{}}, {"nil-body", nil}} {
		e := Entry(tc.key, 0)
		e.Body, e.BodySize = tc.body, 0
		e.Status = http.StatusNoContent
		mustPut(t, st, tc.key, e)
		got, err := st.Get(bg, tc.key)
		if err != nil {
			t.Fatalf("Get(%q) of an entry with an empty body: %v", tc.key, err)
		}
		if len(got.Body) != 0 || got.BodySize != 0 {
			t.Fatalf("Get(%q): body of %d bytes, BodySize %d, want both 0", tc.key, len(got.Body), got.BodySize)
		}
		if d := Diff(e, got, s.opts.TimePrecision); d != "" {
			t.Fatalf("Get(%q) returned a different entry: %s", tc.key, d)
		}
	}
}

func (s *suite) binaryBody(t *testing.T) {
	st := s.open(t)
	e := Entry("binary", 0)
	body := make([]byte, 0, 256*5)
	for round := range 5 {
		for b := range 256 {
			body = append(body, byte(b+round))
		}
	}
	body = append(body, 0, 0, 0) // trailing NULs must survive
	e.Body, e.BodySize = body, int64(len(body))
	e.Header.Set("Content-Type", "application/octet-stream")
	mustPut(t, st, "binary", e)
	s.wantEntry(t, st, "binary", e)
}

func (s *suite) keys(t *testing.T) {
	st := s.open(t)
	keys := []string{
		"unicode/日本語/ключ/🙂",
		"with spaces and\ttabs",
		"slashes/a/b/c/../../d//e/",
		"/leading-slash",
		"https://example.com/path?q=1&r=2#frag",
		"Case",
		"case",
		"prefix",
		"prefix/longer",
		"%2F%00-escaped*?[]\\",
		".",
		"..",
		"GET example.com/ a=1",
		strings.Repeat("k", storage.MaxKeyLen),
		strings.Repeat("k", storage.MaxKeyLen-1) + "x",
		strings.Repeat("é", storage.MaxKeyLen/2), // MaxKeyLen bytes of 2-byte runes
	}
	entries := make([]*storage.Entry, len(keys))
	for i, k := range keys {
		entries[i] = Entry(fmt.Sprintf("key-%d", i), 50+i)
		mustPut(t, st, k, entries[i])
	}
	for i, k := range keys {
		s.wantEntry(t, st, k, entries[i])
	}
	// Deleting one leaves the others, including its case twin and its
	// prefix, alone.
	if err := st.Delete(bg, "case"); err != nil {
		t.Fatalf("Delete(%q): %v", "case", err)
	}
	wantNotFound(t, st, "case", "after Delete")
	for i, k := range keys {
		if k != "case" {
			s.wantEntry(t, st, k, entries[i])
		}
	}
}

func (s *suite) corrupt(t *testing.T) {
	valid := storage.Encode(Entry("corrupt", 2000), storage.CompressionOff)
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x40
	cases := []struct { //nolint:prealloc // a literal table, extended by the bombs below
		name string
		raw  []byte
	}{
		{"garbage", []byte("this is not a cache entry at all, just text")},
		{"empty", []byte{}},
		{"truncated encoding", valid[:len(valid)/2]},
		{"encoding missing its last byte", valid[:len(valid)-1]},
		{"encoding with one flipped bit", flipped},
	}
	bombs := InflationBombs(t, 16<<20)
	for _, name := range slices.Sorted(maps.Keys(bombs)) {
		cases = append(cases, struct {
			name string
			raw  []byte
		}{"zstd " + name, bombs[name]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := s.open(t)
			good := Entry("good", 100)
			mustPut(t, st, "neighbour", good)
			mustPut(t, st, "corrupt", Entry("corrupt", 2000))
			s.opts.Corrupt(t, st, "corrupt", tc.raw)

			got, err := st.Get(bg, "corrupt")
			if !errors.Is(err, storage.ErrCorrupt) {
				if err == nil {
					t.Fatalf("Get of a corrupt entry (%s): got an entry with URL %q, want an error wrapping ErrCorrupt", tc.name, got.URL)
				}
				t.Fatalf("Get of a corrupt entry (%s): error %v, want one wrapping ErrCorrupt", tc.name, err)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Get of a corrupt entry (%s): error %v wraps both ErrCorrupt and ErrNotFound", tc.name, err)
			}
			if l, ok := st.(storage.Lister); ok {
				err := l.List(bg, "", func(key string, meta *storage.Entry) error { return nil })
				if err != nil && !errors.Is(err, storage.ErrCorrupt) {
					t.Fatalf("List over a corrupt entry (%s): error %v, want nil (entry skipped) or one wrapping ErrCorrupt", tc.name, err)
				}
			}
			// The neighbour is unaffected; the handler's delete works.
			s.wantEntry(t, st, "neighbour", good)
			if err := st.Delete(bg, "corrupt"); err != nil {
				t.Fatalf("Delete of a corrupt entry (%s): %v", tc.name, err)
			}
			wantNotFound(t, st, "corrupt", "after deleting the corrupt entry")
			// And the key can be stored again.
			fresh := Entry("fresh", 10)
			mustPut(t, st, "corrupt", fresh)
			s.wantEntry(t, st, "corrupt", fresh)
		})
	}
}

func (s *suite) corruptNoBytes(t *testing.T) {
	st := s.open(t)
	e := Entry("value", 2000)
	mustPut(t, st, "value", e)
	s.wantEntry(t, st, "value", e)
}

func (s *suite) concurrent(t *testing.T) {
	st := s.open(t)
	const (
		workers = 8
		ops     = 50
		nkeys   = 4
	)
	var written sync.Map // id → *storage.Entry, stored before the Put starts
	keyOf := func(id string) string { return "concurrent/" + id[:1] }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				k := (w + i) % nkeys
				key := fmt.Sprintf("concurrent/%d", k)
				switch i % 5 {
				case 0, 1:
					id := fmt.Sprintf("%d-w%d-op%d", k, w, i)
					e := Entry(id, 200+((w*ops+i)*997)%30000)
					written.Store(id, e)
					if err := st.Put(bg, key, e); err != nil {
						t.Errorf("worker %d op %d: Put(%q): %v", w, i, key, err)
					}
				case 2, 3:
					got, err := st.Get(bg, key)
					if errors.Is(err, storage.ErrNotFound) {
						continue
					}
					if err != nil {
						t.Errorf("worker %d op %d: Get(%q): %v, want an entry or ErrNotFound", w, i, key, err)
						continue
					}
					s.checkWritten(t, &written, keyOf, key, got, fmt.Sprintf("worker %d op %d", w, i))
				case 4:
					if err := st.Delete(bg, key); err != nil {
						t.Errorf("worker %d op %d: Delete(%q): %v", w, i, key, err)
					}
				}
			}
		})
	}
	wg.Wait()
	for k := range nkeys {
		key := fmt.Sprintf("concurrent/%d", k)
		got, err := st.Get(bg, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("Get(%q) after the workers finished: %v", key, err)
		}
		s.checkWritten(t, &written, keyOf, key, got, "after the workers finished")
	}
}

// checkWritten checks that got is exactly one of the entries written under key.
func (s *suite) checkWritten(t *testing.T, written *sync.Map, keyOf func(string) string, key string, got *storage.Entry, where string) {
	id := got.Header.Get("X-Entry-Id")
	v, ok := written.Load(id)
	if !ok {
		t.Errorf("%s: Get(%q) returned an entry that was never written (X-Entry-Id %q, URL %q)", where, key, id, got.URL)
		return
	}
	if keyOf(id) != key {
		t.Errorf("%s: Get(%q) returned the entry %q written under %q", where, key, id, keyOf(id))
		return
	}
	if d := Diff(v.(*storage.Entry), got, s.opts.TimePrecision); d != "" {
		t.Errorf("%s: Get(%q) returned a mix of entries (X-Entry-Id %q): %s", where, key, id, d)
	}
}

func (s *suite) cancelled(t *testing.T) {
	st := s.open(t)
	live := Entry("live", 100)
	mustPut(t, st, "live", live)

	cancelled, cancel := context.WithCancel(bg)
	cancel()
	past, cancel2 := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel2()

	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"cancelled", cancelled}, {"deadline exceeded", past}} {
		check := func(op string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s with a %s context: nil error, want context.Canceled or DeadlineExceeded", op, c.name)
				return
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with a %s context: error %v, want one wrapping context.Canceled or DeadlineExceeded", op, c.name, err)
			}
		}
		got, err := st.Get(c.ctx, "live")
		check("Get", err)
		if err != nil && got != nil {
			t.Errorf("Get with a %s context returned an error and a non-nil entry", c.name)
		}
		_, err = st.Get(c.ctx, "absent")
		check("Get of an absent key", err)
		newKey := "new-" + strings.ReplaceAll(c.name, " ", "-")
		newEntry := Entry(newKey, 100)
		check("Put", st.Put(c.ctx, newKey, newEntry))
		check("Delete", st.Delete(c.ctx, "live"))
		if l, ok := st.(storage.Lister); ok {
			called := false
			check("List", l.List(c.ctx, "", func(string, *storage.Entry) error { called = true; return nil }))
			if called {
				t.Errorf("List with a %s context called fn", c.name)
			}
		}
		if sr, ok := st.(storage.Statser); ok {
			_, err := sr.Stats(c.ctx)
			check("Stats", err)
		}
		// A failed Put leaves nothing or the complete entry, never a part.
		got, err = st.Get(bg, newKey)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			t.Errorf("Get after a Put with a %s context: %v, want ErrNotFound or the entry", c.name, err)
		default:
			if d := Diff(newEntry, got, s.opts.TimePrecision); d != "" {
				t.Errorf("Get after a Put with a %s context returned a partial entry: %s", c.name, d)
			}
		}
	}
	// The store still works with a live context.
	after := Entry("live-after", 10)
	mustPut(t, st, "live-after", after)
	s.wantEntry(t, st, "live-after", after)
}

func listKeys(t *testing.T, l storage.Lister, prefix string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	err := l.List(bg, prefix, func(key string, meta *storage.Entry) error {
		if keys[key] {
			t.Errorf("List(%q) passed key %q twice", prefix, key)
		}
		keys[key] = true
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (s *suite) list(t *testing.T) {
	st := s.open(t)
	l, ok := st.(storage.Lister)
	if !ok {
		t.Logf("the store does not implement storage.Lister: nothing to check")
		return
	}
	if keys := listKeys(t, l, ""); len(keys) != 0 {
		t.Fatalf("List on an empty store: got keys %v, want none", sortedKeys(keys))
	}
	stored := map[string]*storage.Entry{
		"site-a/1":  Entry("a1", 1000),
		"site-a/2":  Entry("a2", 0),
		"site-a":    Entry("a", 20),
		"site-b/1":  Entry("b1", 3000),
		"other":     Entry("other", 5),
		"site-a/日本": Entry("a-ja", 7),
	}
	for k, e := range stored {
		mustPut(t, st, k, e)
	}
	check := func(prefix string, want ...string) {
		t.Helper()
		seen := map[string]bool{}
		err := l.List(bg, prefix, func(key string, meta *storage.Entry) error {
			if seen[key] {
				t.Errorf("List(%q) passed key %q twice", prefix, key)
			}
			seen[key] = true
			e, ok := stored[key]
			if !ok {
				t.Errorf("List(%q) passed key %q, which was never stored", prefix, key)
				return nil
			}
			if d := DiffMeta(e, meta, s.opts.TimePrecision); d != "" {
				t.Errorf("List(%q) key %q: meta differs from the stored entry: %s", prefix, key, d)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		slices.Sort(want)
		if got := sortedKeys(seen); !slices.Equal(got, want) {
			t.Fatalf("List(%q): got keys %q, want %q", prefix, got, want)
		}
	}
	check("", "other", "site-a", "site-a/1", "site-a/2", "site-a/日本", "site-b/1")
	check("site-a", "site-a", "site-a/1", "site-a/2", "site-a/日本")
	check("site-a/", "site-a/1", "site-a/2", "site-a/日本")
	check("site-a/日", "site-a/日本")
	check("site-b/1", "site-b/1")
	check("nothing-here")

	// ErrStop stops the walk after the current entry and List returns nil.
	calls := 0
	if err := l.List(bg, "", func(string, *storage.Entry) error { calls++; return storage.ErrStop }); err != nil {
		t.Fatalf("List stopped with ErrStop: returned %v, want nil", err)
	}
	if calls != 1 {
		t.Fatalf("List stopped with ErrStop on the first entry: fn was called %d times, want 1", calls)
	}
	// Any other error stops it and is returned.
	boom := errors.New("boom")
	calls = 0
	if err := l.List(bg, "", func(string, *storage.Entry) error { calls++; return boom }); !errors.Is(err, boom) {
		t.Fatalf("List whose fn failed: returned %v, want the fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("List whose fn failed on the first entry: fn was called %d times, want 1", calls)
	}

	// fn may delete through the same store.
	deleted := 0
	err := l.List(bg, "site-a/", func(key string, _ *storage.Entry) error {
		deleted++
		return st.Delete(bg, key)
	})
	if err != nil {
		t.Fatalf("List(%q) deleting every entry it visits: %v", "site-a/", err)
	}
	if deleted != 3 {
		t.Fatalf("List(%q) deleting every entry it visits: visited %d entries, want 3", "site-a/", deleted)
	}
	for _, k := range []string{"site-a/1", "site-a/2", "site-a/日本"} {
		wantNotFound(t, st, k, "after List deleted it")
	}
	check("", "other", "site-a", "site-b/1")
}

func (s *suite) tagIndex(t *testing.T) {
	st := s.open(t)
	ti, ok := st.(storage.TagIndex)
	if !ok {
		t.Logf("the store does not implement storage.TagIndex: nothing to check")
		return
	}
	keys := func(tag string) map[string]bool {
		t.Helper()
		ks, err := ti.KeysForTag(bg, tag)
		if err != nil {
			t.Fatalf("KeysForTag(%q): %v", tag, err)
		}
		m := map[string]bool{}
		for _, k := range ks {
			if m[k] {
				t.Fatalf("KeysForTag(%q) returned %q twice", tag, k)
			}
			m[k] = true
		}
		return m
	}
	if got := keys("shared"); len(got) != 0 {
		t.Fatalf("KeysForTag on an empty store: %v, want none", sortedKeys(got))
	}
	tagged := func(id string, tags ...string) *storage.Entry {
		e := Entry(id, 10)
		e.Tags = tags
		return e
	}
	mustPut(t, st, "a", tagged("a", "shared", "only-a"))
	mustPut(t, st, "b", tagged("b", "shared", "ünïcödé tag"))
	mustPut(t, st, "c", tagged("c", "other"))
	mustPut(t, st, "d", tagged("d"))
	for tag, want := range map[string][]string{
		"shared": {"a", "b"}, "only-a": {"a"}, "ünïcödé tag": {"b"}, "other": {"c"},
	} {
		got := keys(tag)
		for _, k := range want {
			if !got[k] {
				t.Fatalf("KeysForTag(%q): %v, missing %q", tag, sortedKeys(got), k)
			}
		}
		for _, k := range []string{"a", "b", "c", "d"} {
			if got[k] && !slices.Contains(want, k) {
				t.Fatalf("KeysForTag(%q): %v, includes %q, which never had that tag", tag, sortedKeys(got), k)
			}
		}
	}
	if got := keys("Shared"); got["a"] || got["b"] {
		t.Fatalf("KeysForTag is not case-sensitive: %q matched %v", "Shared", sortedKeys(got))
	}
	if got := keys("shar"); got["a"] || got["b"] {
		t.Fatalf("KeysForTag matched a prefix of a tag: %v", sortedKeys(got))
	}
	// A new entry under a key takes the new tags.
	mustPut(t, st, "c", tagged("c2", "shared"))
	if got := keys("shared"); !got["c"] {
		t.Fatalf("KeysForTag(%q) after c was replaced with that tag: %v, missing c", "shared", sortedKeys(got))
	}
}

func (s *suite) stats(t *testing.T) {
	st := s.open(t)
	sr, ok := st.(storage.Statser)
	if !ok {
		t.Logf("the store does not implement storage.Statser: nothing to check")
		return
	}
	want := func(entries int64, why string) storage.Stats {
		t.Helper()
		got, err := sr.Stats(bg)
		if err != nil {
			t.Fatalf("Stats %s: %v", why, err)
		}
		if got.Entries != entries {
			t.Fatalf("Stats %s: Entries = %d, want %d", why, got.Entries, entries)
		}
		if entries > 0 && got.Bytes <= 0 {
			t.Fatalf("Stats %s: Bytes = %d with %d entries, want > 0", why, got.Bytes, entries)
		}
		if got.Bytes < 0 || got.Evictions < 0 {
			t.Fatalf("Stats %s: negative Bytes %d or Evictions %d", why, got.Bytes, got.Evictions)
		}
		return got
	}
	want(0, "of an empty store")
	mustPut(t, st, "one", Entry("one", 100))
	mustPut(t, st, "two", Entry("two", 100))
	mustPut(t, st, "three", Entry("three", 100))
	small := want(3, "after 3 Puts")
	two := Entry("two", 0)
	two.Body = RandomBody(20000, 2)
	mustPut(t, st, "two", two)
	big := want(3, "after overwriting one of 3 entries")
	if big.Bytes <= small.Bytes {
		t.Fatalf("Stats: Bytes = %d after replacing a 100-byte body with a 20000-byte one, was %d; want more", big.Bytes, small.Bytes)
	}
	if err := st.Delete(bg, "one"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want(2, "after deleting one of 3 entries")
}

// Concurrent runs workers goroutines of ops mixed operations each (Put, Get,
// Delete and, on stores that have it, List) over a few keys, spreading the
// workers over stores — several handles on, or several processes' views
// of, one storage. It fails the test on any error other than ErrNotFound
// and on any entry that is not exactly one of those written under its key.
func Concurrent(t *testing.T, stores []storage.Store, workers, ops int) {
	t.Helper()
	const nkeys = 6
	var (
		written sync.Map
		mu      sync.Mutex
		failed  int
		wg      sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if failed <= 10 {
			t.Errorf(format, args...)
		}
	}
	for w := range workers {
		st := stores[w%len(stores)]
		wg.Go(func() {
			for i := range ops {
				key := fmt.Sprintf("load/%d", (w*7+i)%nkeys)
				var err error
				switch i % 10 {
				case 0, 1, 2:
					id := fmt.Sprintf("w%d-%d", w, i)
					e := Entry(id, 500+(w*131+i*17)%20000)
					e.URL = key + "#" + id
					written.Store(id, e)
					err = st.Put(bg, key, e)
				case 3:
					err = st.Delete(bg, key)
				case 4:
					if l, ok := st.(storage.Lister); ok && i%50 == 4 {
						err = l.List(bg, "load/", func(string, *storage.Entry) error { return nil })
					}
				default:
					var got *storage.Entry
					got, err = st.Get(bg, key)
					if err == nil {
						id := got.Header.Get("X-Entry-Id")
						want, ok := written.Load(id)
						switch {
						case !ok || want.(*storage.Entry).URL != key+"#"+id:
							fail("worker %d: Get(%q) returned an entry never written under that key (id %q)", w, key, id)
						default:
							if d := Diff(want.(*storage.Entry), got, 0); d != "" {
								fail("worker %d: Get(%q) returned a torn entry: %s", w, key, d)
							}
						}
					}
					if errors.Is(err, storage.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					fail("worker %d op %d on %q: %v", w, i, key, err)
				}
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of %d operations failed, want none", failed, workers*ops)
	}
}
