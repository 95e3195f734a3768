package integration

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/caddycache/caddy-cache/storage/storagetest"
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

// An entry file whose zstd body inflates to far more than the entry
// records (a decompression bomb written by something else) is a miss: the
// response comes from the origin, the bad entry is replaced, and the body
// is never inflated (the request allocates far less than the bomb's size).
func TestInflationBombFileEntryIsAMiss(t *testing.T) {
	body := strings.Repeat("a line of text that zstd compresses well\n", 100)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		b := fmt.Sprintf("%d %s", n, body)
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		io.WriteString(w, b)
	})
	dir := t.TempDir()
	in := startCaddy(t, fmt.Sprintf("\tcache {\n\t\tstorage file %s\n\t\tmemory off\n\t}\n\treverse_proxy %s", dir, o.addr()))
	for name, bomb := range storagetest.InflationBombs(t, 256<<20) {
		t.Run(name, func(t *testing.T) {
			path := "/" + strings.ReplaceAll(name, " ", "-")
			wantCacheStatus(t, in.get(path), "stored")
			r := in.get(path)
			wantCacheStatus(t, r, "hit")
			file := entryFile(t, dir, path)
			old, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// The file header (key, expiry) stays; the codec bytes after it
			// become the bomb.
			at := bytes.Index(old, []byte("CCE\x02"))
			if at < 0 {
				t.Fatalf("no encoded entry in %s", file)
			}
			if err := os.WriteFile(file, append(old[:at:at], bomb...), 0o600); err != nil {
				t.Fatal(err)
			}
			hits := o.hits.Load()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r = in.get(path)
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
				t.Fatalf("the request over a bomb entry allocated %d MiB: the body was inflated", n>>20)
			}
			if r.status != http.StatusOK || !strings.HasSuffix(r.body, body) {
				t.Fatalf("over a bomb entry: %d, body of %d bytes; want the origin's 200", r.status, len(r.body))
			}
			wantCacheStatus(t, r, "fwd=")
			o.wantHits(t, hits+1)
			wantCacheStatus(t, in.get(path), "hit")
		})
	}
}

// entryFile is the one file under dir whose header names the key of path.
func entryFile(t *testing.T, dir, path string) string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		// header: "CCF", version, expiry (8 bytes), key length (2 bytes), key
		if err == nil && len(b) > 14 && bytes.HasPrefix(b, []byte("CCF")) {
			key := b[14:min(len(b), 14+int(binary.BigEndian.Uint16(b[12:14])))]
			if bytes.HasSuffix(key, []byte(path)) {
				found = append(found, p)
			}
		}
		return nil
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("entry files for %s under the store: %v (%v), want one", path, found, err)
	}
	return found[0]
}
