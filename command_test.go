package cache

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// runCLI runs `caddy cache <args>` against an admin endpoint serving only
// the cache routes.
func runCLI(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "cache"}
	setupCacheCommand(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--address", addr))
	err := root.Execute()
	return out.String(), err
}

func TestCacheCommands(t *testing.T) {
	env := opsEnv(t, "", tagged)
	env.get("/one?k=t1")
	env.get("/two?k=t1")
	env.get("/three")
	env.get("/three")
	mux := http.NewServeMux()
	for _, r := range new(AdminAPI).Routes() {
		h := r.Handler
		mux.Handle(r.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.ServeHTTP(w, r) }))
	}
	adm := httptest.NewServer(mux)
	defer adm.Close()
	addr := strings.TrimPrefix(adm.URL, "http://")
	h := "--handler=" + env.name()

	out, err := runCLI(t, addr, "list", h)
	if err != nil || strings.Count(out, env.srv.URL) != 3 || !strings.Contains(out, "HANDLER") || !strings.Contains(out, "t1") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "list", h, "--limit", "2", "--json")
	if err != nil || strings.Count(out, `"key"`) != 2 {
		t.Fatalf("list --limit 2 --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "inspect", env.srv.URL+"/three", "--body", h)
	if err != nil || !strings.Contains(out, `"body": "body-3"`) {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "explain", env.srv.URL+"/three", "-H", "Cache-Control: no-cache", h)
	if err != nil || !strings.Contains(out, "MISS — request no-cache; no validator") {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "stats", h)
	if err != nil || !strings.Contains(out, env.name()) || !strings.Contains(out, "25.0%") {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "purge", "--tag", "t1", "--dry-run", h)
	if err != nil || !strings.Contains(out, "would remove 2") || !strings.Contains(out, env.srv.URL+"/one?k=t1") {
		t.Fatalf("purge --dry-run: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "purge", env.srv.URL+"/three", h)
	if err != nil || !strings.Contains(out, "total: removed 1") {
		t.Fatalf("purge url: %v\n%s", err, out)
	}
	wantStatus(t, env.get("/three"), "fwd=uri-miss")
	out, err = runCLI(t, addr, "expired", h)
	if err != nil || !strings.Contains(out, "total: removed 0") {
		t.Fatalf("expired: %v\n%s", err, out)
	}
	// usage errors name the problem before any request
	if _, err := runCLI(t, addr, "purge", h); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("purge without a selector: %v", err)
	}
	if _, err := runCLI(t, addr, "inspect", env.srv.URL+"/none", h); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("inspect of an absent key: %v", err)
	}
}

// The command and the admin module are registered with Caddy.
func TestCacheCommandRegistered(t *testing.T) {
	if c, ok := caddycmd.Commands()["cache"]; !ok || c.CobraFunc == nil {
		t.Fatal("caddy cache is not registered")
	}
	if _, err := caddy.GetModule("admin.api.cache"); err != nil {
		t.Fatalf("admin.api.cache not registered: %v", err)
	}
}
