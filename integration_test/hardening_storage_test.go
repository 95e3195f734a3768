package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data directory where the SQLite file cannot be created does not stop
// Caddy from starting (issue 13, item 8): a read-only root in a container,
// or an explicit path that is not writable. Caddy starts, every request
// goes to the origin with Cache-Status saying why, and the log says once
// which path could not be opened. The paths are made unusable by a
// regular file where a directory should be, which stops root too (CI runs
// as root, where a chmod 0555 directory is still writable).
func TestUnwritableStorageStillServes(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "origin %s", r.URL.Path)
	})
	for _, tc := range []struct {
		name string
		// setup prepares home and returns the cache directive's storage
		// line and the database path the warning must name.
		setup func(t *testing.T, home string) (storageLine, dbPath string)
	}{
		{"XDG_DATA_HOME is a file", func(t *testing.T, home string) (string, string) {
			// startCaddyProcess sets XDG_DATA_HOME to home/data
			if err := os.WriteFile(filepath.Join(home, "data"), []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
			return "", filepath.Join(home, "data", "caddy", "cache", "cache.db")
		}},
		{"explicit path under a file", func(t *testing.T, home string) (string, string) {
			blocker := filepath.Join(home, "afile")
			if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(blocker, "cache.db")
			return "storage sqlite " + db, db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			storageLine, dbPath := tc.setup(t, home)
			port := freePort(t)
			site := fmt.Sprintf("http://127.0.0.1:%d", port)
			cfg := siteCaddyfile(port, fmt.Sprintf("\tcache {\n\t\t%s\n\t}\n\treverse_proxy %s", storageLine, o.addr()))
			p := startCaddyProcess(t, cfg, home, fmt.Sprintf("127.0.0.1:%d", port))

			const requests = 20
			failed := 0
			for i := range requests {
				path := fmt.Sprintf("/page/%d", i%5)
				r := do(t, http.MethodGet, site+path)
				if r.status != http.StatusOK || r.body != "origin "+path {
					failed++
					t.Errorf("GET %s: %d %q, want the origin's 200", path, r.status, r.body)
					continue
				}
				wantCacheStatus(t, r, "fwd=miss")
				wantCacheStatus(t, r, `detail="storage-error"`)
			}
			log := p.log.String()
			var warnings []string
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, "cannot be opened") {
					warnings = append(warnings, line)
				}
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], dbPath) {
				t.Fatalf("log lines saying the database cannot be opened: %d, want one naming %s:\n%s", len(warnings), dbPath, log)
			}
			if strings.Contains(log, "cache storage failing") {
				t.Fatalf("the handler announced the outage again:\n%s", log)
			}
			t.Logf("%s: started, %d failed requests of %d, %d warning", tc.name, failed, requests, len(warnings))
		})
	}
}
