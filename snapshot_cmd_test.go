package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddycache/caddy-cache/storage"
)

// runSnapCLI runs `caddy cache <args>` with stdin, and returns stdout and
// stderr apart: the snapshot goes to one, progress and summary to the
// other.
func runSnapCLI(t *testing.T, addr string, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "cache", SilenceUsage: true, SilenceErrors: true}
	setupCacheCommand(root)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	if stdin != nil {
		root.SetIn(stdin)
	}
	root.SetArgs(append(args, "--address", addr))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestSnapshotCommands(t *testing.T) {
	src := opsEnv(t, ownStore("snapc-src"), langOrigin)
	for _, p := range []string{"/a/1?k=red", "/a/2", "/b/1"} {
		src.get(p)
	}
	src.get("/v", "Accept-Language", "en")
	src.get("/v", "Accept-Language", "de")
	dst := opsEnv(t, ownStore("snapc-dst"), langOrigin)
	addr := snapAdmin(t)

	if _, _, err := runSnapCLI(t, addr, nil, "export"); err == nil || !strings.Contains(err.Error(), "snapc-src") || !strings.Contains(err.Error(), "snapc-dst") {
		t.Fatalf("export without --handler among two: %v", err)
	}
	snap, msg, err := runSnapCLI(t, addr, nil, "export", "--handler", "snapc-src")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, msg)
	}
	if h, n, err := readSnapshot([]byte(snap)); err != nil || n != 6 || h.Handler != "snapc-src" {
		t.Fatalf("exported stream: %d entries, %+v, %v", n, h, err)
	}
	if !strings.Contains(msg, "exported 6 entries") || !strings.Contains(msg, "from handler snapc-src (memory)") {
		t.Fatalf("export summary: %q", msg)
	}
	part, _, err := runSnapCLI(t, addr, nil, "export", "--handler", "snapc-src", "--prefix", src.srv.URL+"/a/")
	if _, n, rerr := readSnapshot([]byte(part)); err != nil || rerr != nil || n != 2 {
		t.Fatalf("export --prefix: %d entries, %v %v", n, err, rerr)
	}

	_, msg, err = runSnapCLI(t, addr, strings.NewReader(snap), "import", "--handler", "snapc-dst")
	if err != nil || !strings.Contains(msg, "imported 6 of 6 entries into handler snapc-dst (memory)") {
		t.Fatalf("import: %v\n%s", err, msg)
	}
	rebind(t, dst, src)
	wantStatus(t, dst.get("/v", "Accept-Language", "de"), "hit")
	wantStatus(t, dst.get("/a/2"), "hit")
	dst.wantHits(0)

	_, msg, err = runSnapCLI(t, addr, strings.NewReader(snap), "import", "--handler", "snapc-dst")
	if err != nil || !strings.Contains(msg, "imported 0 of 6") || !strings.Contains(msg, "6 already stored") {
		t.Fatalf("second import: %v\n%q", err, msg)
	}
	// a damaged snapshot: the good records are imported, the command fails
	// and says where the damage is
	out, msg, err := runSnapCLI(t, addr, strings.NewReader(snap[:len(snap)-3]), "import", "--handler", "snapc-dst", "--json")
	if err == nil || !strings.Contains(err.Error(), "import incomplete") || !strings.Contains(err.Error(), "damaged cache snapshot") ||
		!strings.Contains(msg, "of 6 entries") || !strings.Contains(out, `"rejected_corrupt": 1`) {
		t.Fatalf("damaged import: %v\n%s\n%s", err, msg, out)
	}
	if _, _, err := runSnapCLI(t, addr, strings.NewReader(snap), "import", "--handler", "nope"); err == nil || !strings.Contains(err.Error(), "snapc-dst") {
		t.Fatalf("import into an unknown handler: %v", err)
	}
}

// An export that fails midway writes what it received and fails, saying
// why; the file holds the good records, without a trailer.
func TestSnapshotExportCommandIncomplete(t *testing.T) {
	name := "snapci"
	opsEnv(t, fmt.Sprintf(`{"name": %q, "memory": -1, "storage": {"backend": "snapgen", "n": 2000, "scope": %q, "fail_at": 1000}}`, name, scopeOf(name)), tagged)
	out, _, err := runSnapCLI(t, snapAdmin(t), nil, "export", "--handler", name)
	if err == nil || !strings.Contains(err.Error(), "export incomplete after 1000 entries") || !strings.Contains(err.Error(), errGenFailed.Error()) {
		t.Fatalf("export: %v", err)
	}
	if _, n, err := readSnapshot([]byte(out)); n != 1000 || !errors.Is(err, storage.ErrSnapshotDamaged) {
		t.Fatalf("written: %d entries, %v", n, err)
	}
}

// The progress line comes at most once a second, with rates.
func TestSnapshotProgress(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&buf, "sent")
	p.now = func() time.Time { return now }
	p.start, p.at = now, now
	for i := 1; i <= 10; i++ {
		now = now.Add(300 * time.Millisecond)
		p.update(int64(i*100), int64(i)<<20)
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || lines[0] != "sent 400 entries, 4.0 MiB (333 entries/s, 3.3 MiB/s)" {
		t.Fatalf("progress:\n%s", buf.String())
	}
}
