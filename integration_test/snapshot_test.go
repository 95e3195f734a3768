package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddycache/caddy-cache/internal/testservers"
)

// Snapshots between real Caddy processes on real stores: `caddy cache
// export` from one, `caddy cache import` into another of another name on
// another backend, which then serves every entry, Vary variants included,
// as a hit and purges them by tag.

// snapOrigin answers max-age=3600 with a body naming the path, the
// language and the request count; /p/<i> is tagged grp-<i%3>, /v/…
// varies on Accept-Language.
func snapOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if strings.HasPrefix(r.URL.Path, "/v/") {
			w.Header().Set("Vary", "Accept-Language")
		}
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/p/%d", &i); err == nil {
			w.Header().Set("Surrogate-Key", fmt.Sprintf("grp-%d", i%3))
		}
		fmt.Fprintf(w, "%s %s %d", r.URL.Path, r.Header.Get("Accept-Language"), n)
	})
}

const (
	snapLangs    = "en de"
	snapCacheOpt = "storage_timeout 5s"
)

// snapSet is how many URLs a snapshot test stores: plain ones, and ones
// varying on Accept-Language (two variants each).
type snapSet struct{ plain, varied int }

// entries is how many entries the set stores: each varied URL has two
// variants and its Vary index.
func (s snapSet) entries() int { return s.plain + 3*s.varied }

// The usual set, and a smaller one for the slower stores (FerretDB).
var (
	snapFull  = snapSet{300, 20}
	snapSmall = snapSet{60, 5}
)

// snapNode is a Caddy process with one cache handler named name.
type snapNode struct {
	proc  *caddyProcess
	admin string
	site  string
	snapSet
}

func startSnapNode(t *testing.T, name, storage string, port int, o *origin, set snapSet) *snapNode {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := instancesCaddyfile("127.0.0.1", admin, port, fmt.Sprintf("name %s\n\t\t%s\n\t\t%s", name, storage, snapCacheOpt), o.addr())
	p := startCaddyProcess(t, cfg, t.TempDir(), fmt.Sprintf("127.0.0.1:%d", port))
	return &snapNode{proc: p, admin: admin, site: fmt.Sprintf("http://127.0.0.1:%d", port), snapSet: set}
}

// fill requests every snapshot URL once and returns the bodies served,
// by path and language, then waits until the store holds them all.
func (n *snapNode) fill(t *testing.T) map[string]string {
	t.Helper()
	bodies := map[string]string{}
	for i := 0; i < n.plain; i++ {
		p := fmt.Sprintf("/p/%d", i)
		bodies[p] = do(t, http.MethodGet, n.site+p).body
	}
	for i := 0; i < n.varied; i++ {
		for _, lang := range strings.Fields(snapLangs) {
			p := fmt.Sprintf("/v/%d", i)
			bodies[p+" "+lang] = do(t, http.MethodGet, n.site+p, "Accept-Language", lang).body
		}
	}
	// responses are stored once their body is sent: poll until the store
	// holds them all
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := n.count(t)
		if got == n.entries() {
			return bodies
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d entries, want %d", got, n.entries())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// count returns how many entries (Vary indexes included) the node lists.
func (n *snapNode) count(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/cache/entries?index=1&limit=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	return len(ans.Entries)
}

// cacheCLI runs `caddy cache <args>` against the node, with stdin and
// stdout as given, and returns stderr.
func (n *snapNode) cacheCLI(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), append([]string{"cache"}, append(args, "--address", n.admin)...)...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// export writes the node's snapshot to a file and returns its path.
func (n *snapNode) export(t *testing.T, handler string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.snap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := n.cacheCLI(t, nil, f, "export", "--handler", handler)
	if err != nil || !strings.Contains(msg, fmt.Sprintf("exported %d entries", n.entries())) {
		t.Fatalf("caddy cache export: %v\n%s", err, msg)
	}
	return path
}

// importFile imports a snapshot file and returns the command's stderr.
func (n *snapNode) importFile(t *testing.T, handler, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := n.cacheCLI(t, f, io.Discard, "import", "--handler", handler)
	if err != nil {
		t.Fatalf("caddy cache import: %v\n%s", err, msg)
	}
	return msg
}

// wantAllHits requests every snapshot URL and wants a hit with the body
// the source served.
func (n *snapNode) wantAllHits(t *testing.T, bodies map[string]string) {
	t.Helper()
	for i := 0; i < n.plain; i++ {
		p := fmt.Sprintf("/p/%d", i)
		r := do(t, http.MethodGet, n.site+p)
		wantCacheStatus(t, r, "hit")
		if r.body != bodies[p] {
			t.Fatalf("%s: body %q, the source served %q", p, r.body, bodies[p])
		}
	}
	for i := 0; i < n.varied; i++ {
		for _, lang := range strings.Fields(snapLangs) {
			p := fmt.Sprintf("/v/%d", i)
			r := do(t, http.MethodGet, n.site+p, "Accept-Language", lang)
			wantCacheStatus(t, r, "hit")
			if r.body != bodies[p+" "+lang] {
				t.Fatalf("%s (%s): body %q, the source served %q", p, lang, r.body, bodies[p+" "+lang])
			}
		}
	}
}

// wantTagPurge checks that the tags were indexed on import: a purge by
// tag removes a third of the plain responses, and only those. It costs
// the origin one request.
func (n *snapNode) wantTagPurge(t *testing.T, handler string) {
	t.Helper()
	var ans struct {
		Removed int `json:"removed"`
	}
	b, _ := json.Marshal(map[string]any{"tag": "grp-0", "handler": handler})
	resp, err := http.Post("http://"+n.admin+"/cache/purge", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if ans.Removed != n.plain/3 {
		t.Fatalf("purge by tag after import removed %d, want %d", ans.Removed, n.plain/3)
	}
	wantCacheStatus(t, do(t, http.MethodGet, n.site+"/p/0"), "miss")
	wantCacheStatus(t, do(t, http.MethodGet, n.site+"/p/1"), "hit")
}

func storageOf(t *testing.T, backend string, srv *testservers.Server) string {
	if backend == "memory" {
		return "storage memory"
	}
	for _, bc := range backendCases {
		if bc.name == backend {
			return bc.config(t, srv)
		}
	}
	t.Fatalf("no backend %q", backend)
	return ""
}

func serverFor(t *testing.T, backend string) *testservers.Server {
	for _, bc := range backendCases {
		if bc.name == backend && bc.server != nil {
			return bc.server(t)
		}
	}
	return nil
}

func TestSnapshotAcrossBackends(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		set      snapSet
	}{
		{"sqlite", "redis", snapFull},
		{"memory", "file", snapFull},
		{"redis", "dynamodb", snapFull},
		// and every other backend, once as source and once as target
		{"dynamodb", "mongodb", snapSmall},
		{"mongodb", "gridfs", snapSmall},
		{"gridfs", "sqlite", snapSmall},
		{"file", "memory", snapFull},
	} {
		t.Run(tc.from+"_to_"+tc.to, func(t *testing.T) {
			o := snapOrigin(t)
			port := freePort(t)
			src := startSnapNode(t, "old", storageOf(t, tc.from, serverFor(t, tc.from)), port, o, tc.set)
			bodies := src.fill(t)
			snap := src.export(t, "old")
			src.proc.stop() // the new node takes over its port

			dst := startSnapNode(t, "new", storageOf(t, tc.to, serverFor(t, tc.to)), port, o, tc.set)
			msg := dst.importFile(t, "new", snap)
			if want := fmt.Sprintf("imported %d of %d entries into handler new (%s)", tc.set.entries(), tc.set.entries(), tc.to); !strings.Contains(msg, want) {
				t.Fatalf("import summary %q, want %q", msg, want)
			}
			fetched := o.hits.Load()
			dst.wantAllHits(t, bodies)
			o.wantHits(t, fetched)

			dst.wantTagPurge(t, "new")
			o.wantHits(t, fetched+1)
		})
	}
}

// An import into a Caddy that is serving traffic: no request fails while
// it runs, and the imported entries are hits afterwards.
func TestSnapshotImportUnderLoad(t *testing.T) {
	o := snapOrigin(t)
	port := freePort(t)
	src := startSnapNode(t, "old", "storage memory", port, o, snapFull)
	bodies := src.fill(t)
	snap := src.export(t, "old")
	src.proc.stop()

	dst := startSnapNode(t, "new", storageOf(t, "sqlite", nil), port, o, snapFull)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("/live/%d", (w*31+i)%50)
				resp, err := client.Get(dst.site + p)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), p+" ") {
						err = fmt.Errorf("%s: %d %q", p, resp.StatusCode, b)
					}
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}(w)
	}
	// the clients are running before the import starts
	for requests.Load() < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	before := requests.Load()
	msg := dst.importFile(t, "new", snap)
	during := requests.Load() - before
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed during the import, first: %v", f, requests.Load(), firstFailure.Load())
	}
	if during == 0 {
		t.Fatal("no request ran during the import")
	}
	if !strings.Contains(msg, fmt.Sprintf("imported %d of %d", snapFull.entries(), snapFull.entries())) {
		t.Fatalf("import summary %q", msg)
	}
	t.Logf("%d requests, %d of them during the import", requests.Load(), during)
	fetched := o.hits.Load()
	dst.wantAllHits(t, bodies)
	o.wantHits(t, fetched)
	dst.wantTagPurge(t, "new") // through SQLite's tag index
	o.wantHits(t, fetched+1)
}
