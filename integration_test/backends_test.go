package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// backendCase configures one storage backend on a real server (started by
// the harness) for a Caddy site, with the hot tier off so every hit reads
// the backend.
type backendCase struct {
	name   string
	server func(t *testing.T) *testservers.Server // nil for embedded stores
	config func(t *testing.T, s *testservers.Server) string
}

var backendCases = []backendCase{
	{"sqlite", nil, func(t *testing.T, _ *testservers.Server) string {
		return "storage sqlite " + filepath.Join(t.TempDir(), "c.db")
	}},
	{"file", nil, func(t *testing.T, _ *testservers.Server) string {
		return "storage file " + t.TempDir()
	}},
	{
		"redis", func(t *testing.T) *testservers.Server { return testservers.Redis(t) },
		func(t *testing.T, s *testservers.Server) string {
			return fmt.Sprintf("storage redis %s {\n\t\t\tnamespace %s\n\t\t}", s.URI, safeName(t))
		},
	},
	{
		"mongodb", func(t *testing.T) *testservers.Server { return testservers.FerretDB(t) },
		func(t *testing.T, s *testservers.Server) string {
			return fmt.Sprintf("storage mongodb %s {\n\t\t\tdatabase %s\n\t\t}", s.URI, safeName(t))
		},
	},
	{
		"gridfs", func(t *testing.T) *testservers.Server { return testservers.FerretDB(t) },
		func(t *testing.T, s *testservers.Server) string {
			return fmt.Sprintf("storage gridfs %s {\n\t\t\tdatabase %s\n\t\t}", s.URI, safeName(t))
		},
	},
	{
		"dynamodb", func(t *testing.T) *testservers.Server { return testservers.DynamoDBLocal(t) },
		func(t *testing.T, s *testservers.Server) string {
			return fmt.Sprintf("storage dynamodb {\n\t\t\ttable %s\n\t\t\tendpoint %s\n\t\t\tregion us-east-1\n\t\t\taccess_key_id dummy\n\t\t\tsecret_access_key dummy\n\t\t\tcreate_table\n\t\t}", safeName(t), s.URI)
		},
	},
}

func safeName(t *testing.T) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

// Caddy with each backend gets a hit; with the storage server stopped,
// requests still succeed from the origin; once it is back, entries are
// stored and served again without a reload.
func TestBackendsHitOutageRecovery(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			var srv *testservers.Server
			if bc.server != nil {
				srv = bc.server(t)
			}
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "public, max-age=600")
				fmt.Fprintf(w, "%s %d", r.URL.Path, n)
			})
			in := startCaddy(t, fmt.Sprintf("\tcache {\n\t\t%s\n\t\tmemory off\n\t\tstorage_timeout 2s\n\t}\n\treverse_proxy %s",
				bc.config(t, srv), o.addr()))
			// The first writes to a fresh server (lazy connection, index or
			// table creation) may exceed the storage timeout on a loaded
			// machine: then the response is simply not stored. A hit must
			// come soon, with the body that was stored.
			var stored string
			hit := false
			for i := 0; i < 10 && !hit; i++ {
				r := in.get("/a")
				cs := r.header.Get("Cache-Status")
				switch {
				case strings.Contains(cs, "hit"):
					if r.body != stored {
						t.Fatalf("hit body %q, stored %q", r.body, stored)
					}
					hit = true
				case strings.Contains(cs, "stored"):
					stored = r.body
				}
			}
			if !hit {
				t.Fatal("no hit after 10 requests")
			}
			if srv == nil {
				return
			}
			srv.Stop(t)
			for i := 0; i < 3; i++ {
				r := in.get("/b")
				if r.status != http.StatusOK || !strings.HasPrefix(r.body, "/b ") {
					t.Fatalf("with the store down: %d %q", r.status, r.body)
				}
			}
			srv.Start(t)
			// the client reconnects by itself (pooled connections to the old
			// process fail once each): soon a new entry is stored and hit
			hit = false
			for i := 0; i < 100 && !hit; i++ {
				path := fmt.Sprintf("/c%d", i)
				in.get(path)
				hit = strings.Contains(in.get(path).header.Get("Cache-Status"), "hit")
			}
			if !hit {
				t.Fatal("no hit after the server came back")
			}
		})
	}
}
