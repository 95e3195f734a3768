package cache

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

func preparedEntry(etag string) *storage.Entry {
	return &storage.Entry{
		Kind: storage.KindResponse, Status: http.StatusOK, Body: []byte("body"),
		Header: http.Header{"Cache-Control": {"max-age=60"}, "Etag": {etag}},
	}
}

// The prepared data of an entry kept in memory is derived on its first use
// and then found by its key, for that very entry only; once the store drops the entry and
// it is collected, its slot goes too.
func TestPreparedKeptPerEntry(t *testing.T) {
	h := &Handler{isMemory: true, preps: &prepCache{}}
	e := preparedEntry(`"a"`)
	if h.preps.load("k", e) != nil {
		t.Fatal("prepared data kept before the entry was used")
	}
	p1, p2 := h.preparedOf("k", e), h.preparedOf("k", e)
	if p1 != p2 || h.preps.load("k", e) == nil {
		t.Fatal("the prepared data of an entry in memory is derived again on the next use")
	}
	if p1.cc.MaxAge != 60*time.Second || !p1.validator {
		t.Fatalf("prepared data %+v does not describe the entry", p1)
	}

	// another entry under the same key (decoded from bytes, or stored by
	// another handler) never uses it
	other := preparedEntry(`"b"`)
	if h.preps.load("k", other) != nil {
		t.Fatal("an entry used the prepared data of another entry under its key")
	}
	if p := h.preparedOf("k", other); p == p1 {
		t.Fatal("preparedOf returned another entry's data")
	}
	// without a key (explain) it is derived afresh
	if h.preparedOf("", e) == p1 {
		t.Fatal(`preparedOf("") used the kept data`)
	}

	runtime.KeepAlive(e)
	e = nil
	for i := 0; i < 100; i++ {
		runtime.GC()
		if _, ok := h.preps.m.Load("k"); !ok {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("the slot of a collected entry is still kept")
}

// A handler whose store keeps no entries in memory keeps no prepared data.
func TestPreparedNotKeptForEncodedStores(t *testing.T) {
	h := &Handler{preps: &prepCache{}}
	e := preparedEntry(`"a"`)
	if p1, p2 := h.preparedOf("k", e), h.preparedOf("k", e); p1 == p2 {
		t.Fatal("prepared data reused for a store that returns decoded copies")
	}
	if _, ok := h.preps.m.Load("k"); ok {
		t.Fatal("prepared data kept for a store that returns decoded copies")
	}
}
