package integration

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// A corrupted row in the SQLite store is a miss, never a 500 or a served
// corrupt body, and is replaced by the fresh response.
func TestCorruptSQLiteRowIsAMiss(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "good %d", n)
	})
	path := filepath.Join(t.TempDir(), "c.db")
	in := startCaddy(t, fmt.Sprintf("\tcache {\n\t\tstorage sqlite %s\n\t\tmemory off\n\t}\n\treverse_proxy %s", path, o.addr()))
	wantCacheStatus(t, in.get("/x"), "stored")
	wantCacheStatus(t, in.get("/x"), "hit")

	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE entries SET data = substr(data, 1, length(data) / 2) || x'deadbeef'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupted %d rows, want 1", n)
	}
	r := in.get("/x")
	if r.status != http.StatusOK || r.body != "good 2" {
		t.Fatalf("after corruption: %d %q, want the origin's fresh response", r.status, r.body)
	}
	r = in.get("/x")
	wantCacheStatus(t, r, "hit")
	if r.body != "good 2" {
		t.Fatalf("body %q after the corrupt row was replaced", r.body)
	}
	o.wantHits(t, 2)
}
