package cache

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
	"github.com/caddycache/caddy-cache/storage/tiered"
)

func preparedEntry(etag string) *storage.Entry {
	return &storage.Entry{
		Kind: storage.KindResponse, Status: http.StatusOK, Body: []byte("body"),
		Header: http.Header{"Cache-Control": {"max-age=60"}, "Etag": {etag}, "Cdn-Cache-Control": {"max-age=5"}},
	}
}

// The prepared data of an entry stored in memory is derived when it is
// stored and attached to that very entry: later uses find it, a copy of
// the entry or a handler with other settings does not use it.
func TestPreparedAttachedToStoredEntry(t *testing.T) {
	// strip_targeted: the targeted field is not sent to clients
	h := &Handler{isMemory: true, targets: []string{"Cdn-Cache-Control"}, strip: []string{"Cdn-Cache-Control"}}
	h.prepKey = h.preparedKey()
	e := preparedEntry(`"a"`)
	h.attachPrepared(e)
	p1, p2 := h.preparedOf(e), h.preparedOf(e)
	if p1 != p2 || e.Memo() != p1 {
		t.Fatal("the prepared data of an entry in memory is derived again on the next use")
	}
	// the targeted field governs this cache (RFC 9213)
	if p1.cc.MaxAge != 5*time.Second || p1.length != "4" || p1.nvals != 3 {
		t.Fatalf("prepared data %+v does not describe the entry", p1)
	}

	cp := *e
	cp.Header = http.Header{"Cache-Control": {"max-age=9"}}
	if p := h.preparedOf(&cp); p == p1 || p.cc.MaxAge != 9*time.Second {
		t.Fatalf("a copy of the entry with another header used its prepared data: %+v", p)
	}
	other := &Handler{isMemory: true, targets: []string{"Cdn-Cache-Control"}} // forwards it (the default)
	other.prepKey = other.preparedKey()
	if p := other.preparedOf(e); p == p1 || p.nvals != 4 {
		t.Fatalf("a handler with other settings used the entry's prepared data: %+v", p)
	}
	// attaching again for the same settings keeps the data
	h.attachPrepared(e)
	if h.preparedOf(e) != p1 {
		t.Fatal("attaching again replaced the prepared data")
	}
}

// A handler whose store returns decoded copies attaches nothing.
func TestPreparedNotAttachedForEncodedStores(t *testing.T) {
	h := &Handler{}
	h.prepKey = h.preparedKey()
	e := preparedEntry(`"a"`)
	h.attachPrepared(e)
	if e.Memo() != nil {
		t.Fatal("prepared data attached for a store that returns decoded copies")
	}
	if p1, p2 := h.preparedOf(e), h.preparedOf(e); p1 == p2 {
		t.Fatal("prepared data reused for a store that returns decoded copies")
	}
}

// Entries the hot tier copies from the main store get their prepared data
// before they are shared.
func TestPreparedAttachedOnPromotion(t *testing.T) {
	hot, cold := memory.New(1<<20), memory.New(1<<20)
	t.Cleanup(func() { _ = hot.Destruct(); _ = cold.Destruct() })
	ctx := context.Background()
	e := preparedEntry(`"a"`)
	if err := cold.Put(ctx, "k", e); err != nil {
		t.Fatal(err)
	}
	h := &Handler{hot: &memory.Memory{}}
	h.prepKey = h.preparedKey()
	st := tiered.New(hot, copyingStore{cold})
	st.(interface{ SetOnPromote(func(*storage.Entry)) }).SetOnPromote(h.attachPrepared)
	got, err := st.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := got.Memo().(*prepared)
	if !ok || h.preparedOf(got) != p {
		t.Fatal("an entry copied into the hot tier has no prepared data")
	}
	if again, err := hot.Get(ctx, "k"); err != nil || h.preparedOf(again) != p {
		t.Fatalf("the hot copy does not carry the prepared data (%v)", err)
	}
}

// copyingStore returns a copy of its entries to every Get, as the stores
// that decode bytes do.
type copyingStore struct{ storage.Store }

func (s copyingStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	cp := *e
	return &cp, nil
}

// A hit's header holds the stored values but for the fields that never
// reach clients, Content-Length from the body, in one allocation whose
// spare slots are empty, and changing it leaves the entry alone.
func TestPreparedWriteHeader(t *testing.T) {
	h := &Handler{isMemory: true, targets: []string{"Cdn-Cache-Control"}, strip: []string{"Cdn-Cache-Control"}}
	h.prepKey = h.preparedKey()
	e := preparedEntry(`"a"`)
	e.Header["Content-Length"] = []string{"999"}
	e.Header["Link"] = []string{"</a>", "</b>"}
	h.attachPrepared(e)
	dst := http.Header{}
	spare := h.preparedOf(e).writeHeader(h, e, dst, 2)
	want := http.Header{
		"Cache-Control": {"max-age=60"}, "Etag": {`"a"`}, "Link": {"</a>", "</b>"}, "Content-Length": {"4"},
	}
	if len(dst) != len(want) {
		t.Fatalf("header %v, want %v", dst, want)
	}
	for k, vs := range want {
		if got := dst[k]; len(got) != len(vs) || len(got) != cap(got) || got[0] != vs[0] || got[len(got)-1] != vs[len(vs)-1] {
			t.Fatalf("%s: %q (cap %d), want %q", k, got, cap(got), vs)
		}
	}
	if len(spare) != 2 || spare[0] != "" || spare[1] != "" {
		t.Fatalf("spare slots %q, want two empty ones", spare)
	}
	dst["Link"][0] = "changed"
	_ = append(dst["Etag"], "appended")
	if e.Header["Link"][0] != "</a>" || len(e.Header["Etag"]) != 1 {
		t.Fatal("changing the written header changed the stored entry")
	}
}
