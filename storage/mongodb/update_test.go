package mongodb

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// Update is atomic across clients: 40 concurrent read-modify-writes of one
// entry, from two modules with clients of their own (as two Caddy instances
// have), lose none of the values they add.
func TestUpdateAtomic(t *testing.T) {
	srv := testservers.FerretDB(t)
	name := uniqueName(t)
	a := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: name})
	// another connect timeout: another client, as another process has
	b := provision(t, &MongoDB{Config: mongoconn.Config{
		URI: srv.URI, Database: a.Database,
		ConnectTimeout: caddy.Duration(7 * time.Second),
	}, Collection: name})
	if a.shared == b.shared || a.shared.client == b.shared.client {
		t.Fatal("the two modules share one client; want two, as two processes have")
	}
	storagetest.UpdateAtomic(t, a, b)
}
