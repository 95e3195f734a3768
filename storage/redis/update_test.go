package redis

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
)

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two Redis modules with clients of their own (as two Caddy
// instances have), lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.Redis(t)
	ns := uniqueNamespace(t)
	a := provision(t, &Redis{URL: srv.URI, Namespace: ns})
	b := provision(t, &Redis{URL: srv.URI, Namespace: ns, DB: 0, Username: "", PoolSize: 3})
	if a.shared == b.shared {
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
}
