package mongodb

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two modules with clients of their own (as two Caddy instances
// have), lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: name})
	// another connect timeout: another client, as another process has
	b := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second)}, Collection: name})
	if a.shared == b.shared || a.shared.client == b.shared.client {
		t.Fatal("the two modules share one client; want two, as two processes have")
	}
	const writers = 40
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.Update(bg, "idx", func(old *storage.Entry) *storage.Entry {
				e := &storage.Entry{Kind: storage.KindVary, Expires: time.Now().Add(time.Minute)}
				if old != nil {
					e.Variants = slices.Clone(old.Variants)
				}
				e.Variants = append(e.Variants, fmt.Sprint(i))
				return e
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		}()
	}
	wg.Wait()
	e, err := a.Get(bg, "idx")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Variants) != writers {
		t.Fatalf("%d of %d concurrent additions kept: %v", len(e.Variants), writers, e.Variants)
	}

	// a plain Put in between is seen; nil from fn stores nothing
	if err := b.Put(bg, "idx", &storage.Entry{Kind: storage.KindVary, Variants: []string{"put"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(bg, "idx", func(old *storage.Entry) *storage.Entry {
		if old == nil || !slices.Equal(old.Variants, []string{"put"}) {
			t.Errorf("old = %+v, want the Put's", old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(bg, "absent", func(old *storage.Entry) *storage.Entry { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(bg, "absent"); err != storage.ErrNotFound {
		t.Fatalf("Get after a nil update: %v", err)
	}
}
