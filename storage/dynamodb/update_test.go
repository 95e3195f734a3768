package dynamodb

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two modules with clients of their own (as two Caddy instances
// have), lose none of the values they add. Every other round the entry has
// a body larger than an item, so the manifest names parts.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.DynamoDBLocal(t)
	cfg := local(t, srv.URI)
	a := provision(t, cfg)
	cfg2 := *cfg
	cfg2.logger = nil
	cfg2.AccessKeyID += "2" // DynamoDB Local runs with -sharedDb: same data, another client
	b := provision(t, &cfg2)
	if a.shared == b.shared {
		t.Fatal("the two modules share one client; want two, as two processes have")
	}
	big := storagetest.RandomBody(PartSize+1000, 7)
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
				if len(e.Variants)%2 == 0 {
					e.Body, e.BodySize = big, int64(len(big))
				}
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
	if len(e.Body) != len(big) {
		t.Fatalf("body of %d bytes, want %d", len(e.Body), len(big))
	}

	// nil from fn stores nothing; an absent key gets nil
	if err := a.Update(bg, "absent", func(old *storage.Entry) *storage.Entry {
		if old != nil {
			t.Errorf("old = %+v for an absent key", old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(bg, "absent"); err != storage.ErrNotFound {
		t.Fatalf("Get after a nil update: %v", err)
	}
}
