package integration

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// caddy cache list --status/--older-than and caddy cache stats --watch,
// run as the caddy binary against a running Caddy's admin endpoint.
func TestOpsCLIListFiltersAndStatsWatch(t *testing.T) {
	bin := caddyBinary(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		if strings.HasPrefix(r.URL.Path, "/gone") {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = w.Write([]byte("x"))
	})
	in := startCaddy(t, opsSite(t, o, ""))
	in.get("/here")
	in.get("/here")
	in.get("/gone")
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(append([]string{"cache"}, args...), "--address", in.admin, "--handler", "ops")...).CombinedOutput()
		if err != nil {
			t.Fatalf("caddy cache %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("list", "--status", "404"); !strings.Contains(out, in.site+"/gone") || strings.Contains(out, in.site+"/here") {
		t.Errorf("list --status 404:\n%s", out)
	}
	if out := cli("list", "--status", "200"); strings.Contains(out, in.site+"/gone") || !strings.Contains(out, in.site+"/here") {
		t.Errorf("list --status 200:\n%s", out)
	}
	if out := cli("list", "--older-than", "1h"); strings.Contains(out, in.site) {
		t.Errorf("list --older-than 1h lists entries stored just now:\n%s", out)
	}
	out := cli("stats", "--watch", "--interval", "10ms", "--count", "2")
	if n := strings.Count(out, "caddy cache stats"); n != 2 || !strings.Contains(out, "HIT/S") {
		t.Fatalf("stats --watch --count 2: %d tables\n%s", n, out)
	}
	row := strings.Fields(lineWith(strings.Split(out, "caddy cache stats")[1], "ops"))
	// HANDLER BACKEND ENTRIES SIZE REQ/S HIT/S MISS/S ERR/S HIT% EVICT/S
	if len(row) != 10 || row[0] != "ops" || row[1] != "memory" || row[2] != "2" || row[8] != "33.3" {
		t.Fatalf("first table row %q: want ops, memory, 2 entries, 1 hit of 3 (33.3%%)\n%s", row, out)
	}
	badOut, err := exec.Command(bin, "cache", "list", "--status", "99", "--address", in.admin).CombinedOutput()
	if err == nil || !strings.Contains(string(badOut), `status \"99\"`) && !strings.Contains(string(badOut), `status "99"`) {
		t.Errorf("list --status 99: %v\n%s", err, badOut)
	}
}

func lineWith(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
