package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// A cold URL costs the origin one fetch across the cluster on MongoDB
// (FerretDB) and DynamoDB Local too: their stores hold the cluster locks
// (a unique insert, a conditional put).
func TestMultiInstanceCoalescingMongoDB(t *testing.T) {
	s := testservers.FerretDB(t)
	testCoalescingAcrossInstances(t, fmt.Sprintf("storage mongodb %s {\n\t\t\tdatabase %s\n\t\t}", s.URI, safeName(t)))
}

func TestMultiInstanceCoalescingDynamoDB(t *testing.T) {
	s := testservers.DynamoDBLocal(t)
	testCoalescingAcrossInstances(t, fmt.Sprintf("storage dynamodb {\n\t\t\ttable %s\n\t\t\tendpoint %s\n\t\t\tregion us-east-1\n\t\t\taccess_key_id dummy\n\t\t\tsecret_access_key dummy\n\t\t\tcreate_table\n\t\t}", safeName(t), s.URI))
}

// testCoalescingAcrossInstances sends 25 concurrent clients to each of two
// instances on one store for a cold, slow URL: the origin sees one fetch,
// and every client gets its body; then private responses under the same
// load are never handed to another client.
func testCoalescingAcrossInstances(t *testing.T, storage string) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(300 * time.Millisecond) // a slow origin: the misses overlap
		if strings.HasPrefix(r.URL.Path, "/private") {
			w.Header().Set("Cache-Control", "private, max-age=60")
			fmt.Fprintf(w, "for %s", r.Header.Get("Cookie"))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
	c := startInstances(t, 2, storage, o.addr())
	c.warm("/warm") // the store's connection and table are ready on both
	before := o.hits.Load()
	const perInstance = 25
	startedAt := time.Now()
	var wg sync.WaitGroup
	bodies := make(chan string, 2*perInstance)
	for i := 0; i < 2*perInstance; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies <- c.get(i%2, "/cold").body
		}()
	}
	wg.Wait()
	close(bodies)
	fetches := o.hits.Load() - before
	for b := range bodies {
		if !strings.HasPrefix(b, "/cold #") {
			t.Fatalf("a client got %q, want the cold URL's body", b)
		}
	}
	if fetches != 1 {
		t.Fatalf("50 clients on 2 instances: %d origin fetches, want 1", fetches)
	}
	t.Logf("cold URL: 50 clients on 2 instances, %d origin fetch, in %v", fetches, time.Since(startedAt).Round(time.Millisecond))

	before = o.hits.Load()
	type got struct{ cookie, body string }
	res := make(chan got, 2*perInstance)
	for i := 0; i < 2*perInstance; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cookie := fmt.Sprintf("user=%d", i)
			r := do(t, http.MethodGet, fmt.Sprintf("http://%s:%d/private", c.binds[i%2], c.port), "Host", clusterHost, "Cookie", cookie)
			res <- got{cookie, r.body}
		}()
	}
	wg.Wait()
	close(res)
	for g := range res {
		if g.body != "for "+g.cookie {
			t.Fatalf("client with %s got %q", g.cookie, g.body)
		}
	}
	t.Logf("private URL: %d fetches for 50 clients, 0 shared", o.hits.Load()-before)
}
