package cache

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
)

func preparedEntry(etag string) *storage.Entry {
	return &storage.Entry{
		Kind: storage.KindResponse, Status: http.StatusOK, Body: []byte("body"),
		Header: http.Header{"Cache-Control": {"max-age=60"}, "Etag": {etag}, "Cdn-Cache-Control": {"max-age=5"}},
	}
}

func prepareOf(h *Handler, e *storage.Entry) *prepared {
	p := new(prepared)
	h.prepare(e, p)
	return p
}

// The prepared data describes the entry for this handler's settings: the
// targeted field governs reuse (RFC 9213) and is not counted when it is
// stripped, Content-Length comes from the body.
func TestPreparedDescribesEntry(t *testing.T) {
	strip := &Handler{targets: []string{"Cdn-Cache-Control"}, strip: []string{"Cdn-Cache-Control"}, ccs: new(ccCache)}
	fwd := &Handler{targets: []string{"Cdn-Cache-Control"}, ccs: new(ccCache)} // forwards it (the default)
	e := preparedEntry(`"a"`)
	if p := prepareOf(strip, e); p.cc.MaxAge != 5*time.Second || p.length != "4" || p.nvals != 3 {
		t.Fatalf("prepared data %+v does not describe the entry", p)
	}
	if p := prepareOf(fwd, e); p.cc.MaxAge != 5*time.Second || p.nvals != 4 {
		t.Fatalf("prepared data %+v of a handler forwarding the targeted field", p)
	}
	noTarget := &Handler{ccs: new(ccCache)}
	if p := prepareOf(noTarget, e); p.cc.MaxAge != 60*time.Second {
		t.Fatalf("a handler without targeted fields read them: %+v", p.cc)
	}
	// no body allowed: no Content-Length
	nb := preparedEntry(`"a"`)
	nb.Status = http.StatusNotModified
	if p := prepareOf(strip, nb); p.length != "" || p.nvals != 2 {
		t.Fatalf("prepared data %+v of a 304", p)
	}
}

// Stored entries carry nothing of the handler: two handlers sharing one
// memory store, with different targeted settings, each serve a hit by
// their own settings.
func TestPreparedPerHandlerOnSharedStore(t *testing.T) {
	st := memory.New(1 << 20)
	t.Cleanup(func() { _ = st.Destruct() })
	ctx := context.Background()
	if err := st.Put(ctx, "k", preparedEntry(`"a"`)); err != nil {
		t.Fatal(err)
	}
	e, err := st.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	a := &Handler{targets: []string{"Cdn-Cache-Control"}, ccs: new(ccCache)}
	b := &Handler{ccs: new(ccCache)}
	if pa, pb := prepareOf(a, e), prepareOf(b, e); pa.cc.MaxAge != 5*time.Second || pb.cc.MaxAge != 60*time.Second {
		t.Fatalf("handler settings mixed on a shared entry: %v, %v", pa.cc.MaxAge, pb.cc.MaxAge)
	}
}

// The directives of common values are parsed once and shared; values that
// cannot be shared (two Cache-Control lines, a long value, a full cache)
// are parsed for the one use and still correct.
func TestPreparedSharesDirectives(t *testing.T) {
	h := &Handler{targets: []string{"Cdn-Cache-Control"}, ccs: new(ccCache)}
	e1, e2 := preparedEntry(`"a"`), preparedEntry(`"b"`)
	if p1, p2 := prepareOf(h, e1), prepareOf(h, e2); p1.cc != p2.cc || p1.cc.MaxAge != 5*time.Second {
		t.Fatal("the directives of the same values are not shared")
	}
	e2.Header["Cdn-Cache-Control"] = []string{"max-age=7"}
	if p := prepareOf(h, e2); p.cc.MaxAge != 7*time.Second {
		t.Fatalf("another targeted value got the shared directives: %v", p.cc.MaxAge)
	}
	two := preparedEntry(`"c"`)
	delete(two.Header, "Cdn-Cache-Control")
	two.Header["Cache-Control"] = []string{"max-age=60", "no-cache"}
	if p := prepareOf(h, two); !p.cc.NoCache || p.cc.MaxAge != 60*time.Second || len(h.ccs.m) != 2 {
		t.Fatalf("two Cache-Control lines: %+v (%d shared)", p.cc, len(h.ccs.m))
	}
	long := preparedEntry(`"d"`)
	long.Header["Cache-Control"] = []string{"max-age=30, " + strings.Repeat("x", ccCacheValue)}
	if p := prepareOf(h, long); p.cc.MaxAge != 5*time.Second || len(h.ccs.m) != 2 {
		t.Fatalf("a long value: %+v (%d shared)", p.cc, len(h.ccs.m))
	}
	empty := preparedEntry(`"f"`)
	empty.Header["Cache-Control"] = []string{}
	empty.Header["Cdn-Cache-Control"] = nil
	if p := prepareOf(h, empty); p.cc.MaxAge != 0 || p.nvals != 2 {
		t.Fatalf("fields without values: %+v, %d values", p.cc, p.nvals)
	}
	full := &Handler{ccs: new(ccCache)}
	for i := range ccCacheMax + 10 {
		e := preparedEntry(`"e"`)
		delete(e.Header, "Cdn-Cache-Control")
		e.Header["Cache-Control"] = []string{"max-age=" + strconv.Itoa(i)}
		if p := prepareOf(full, e); p.cc.MaxAge != time.Duration(i)*time.Second {
			t.Fatalf("value %d: max-age %v", i, p.cc.MaxAge)
		}
	}
	if n := len(full.ccs.m); n != ccCacheMax {
		t.Fatalf("the shared directives hold %d values, want the bound %d", n, ccCacheMax)
	}
}

// Content-Length: the stored value is sent when it is the body's length in
// canonical form, else the body's length.
func TestPreparedLength(t *testing.T) {
	for _, c := range []struct{ stored, want string }{
		{"4", "4"}, {"999", "4"}, {"04", "4"}, {"+4", "4"}, {"", "4"}, {"4x", "4"},
	} {
		e := preparedEntry(`"a"`)
		if c.stored != "" {
			e.Header["Content-Length"] = []string{c.stored}
		}
		if got := lengthOf(e.Header["Content-Length"], len(e.Body)); got != c.want {
			t.Errorf("stored %q: %q, want %q", c.stored, got, c.want)
		}
	}
}

// A hit's header holds the stored values but for the fields that never
// reach clients, Content-Length from the body, in one allocation whose
// spare slots are empty, and changing it leaves the entry alone.
func TestPreparedWriteHeader(t *testing.T) {
	h := &Handler{targets: []string{"Cdn-Cache-Control"}, strip: []string{"Cdn-Cache-Control"}, ccs: new(ccCache)}
	e := preparedEntry(`"a"`)
	e.Header["Content-Length"] = []string{"999"}
	e.Header["Link"] = []string{"</a>", "</b>"}
	dst := http.Header{}
	spare := prepareOf(h, e).writeHeader(h, e, dst, 2)
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
