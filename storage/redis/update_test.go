package redis

import (
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage/storagetest"
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
	storagetest.UpdateAtomic(t, a, b)
}
