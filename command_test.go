package cache

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
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

// cliAdmin serves the cache admin routes and returns their address.
func cliAdmin(t *testing.T) string {
	t.Helper()
	adm := httptest.NewServer(adminMux())
	t.Cleanup(adm.Close)
	return strings.TrimPrefix(adm.URL, "http://")
}

// listedKeys returns the KEY column of `caddy cache list` for the rows
// whose key starts with prefix (the key is the last column and runs to the
// end of the line).
func listedKeys(out, prefix string) []string {
	var keys []string
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, prefix); i >= 0 {
			keys = append(keys, strings.TrimSpace(line[i:]))
		}
	}
	return keys
}

func TestCacheCommands(t *testing.T) {
	env := opsEnv(t, "", tagged)
	env.get("/one?k=t1")
	env.get("/two?k=t1")
	env.get("/three")
	env.get("/three")
	addr := cliAdmin(t)
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

// list prints keys that inspect takes back: Vary variants (whose stored
// key holds a NUL) and keys with key header lines.
func TestCacheCommandsInspectListedKeys(t *testing.T) {
	env := opsEnv(t, `{"key": {"headers": ["X-Tenant"]}}`, varyLang)
	env.get("/v", "Accept-Language", "en", "X-Tenant", "a")
	env.get("/v", "Accept-Language", "de", "X-Tenant", "a")
	addr := cliAdmin(t)
	h := "--handler=" + env.name()
	out, err := runCLI(t, addr, "list", h)
	keys := listedKeys(out, env.srv.URL)
	if err != nil || len(keys) != 2 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	langs := map[string]bool{}
	for _, k := range keys {
		out, err := runCLI(t, addr, "inspect", k, "--body", h)
		if err != nil {
			t.Fatalf("inspect %q: %v\n%s", k, err, out)
		}
		if !strings.Contains(k, "#vary=") || !strings.Contains(k, " | x-tenant:a") {
			t.Fatalf("listed key %q: want a variant form and the key header", k)
		}
		var info entryInfo
		if err := json.Unmarshal([]byte(out), &info); err != nil || info.Body == nil {
			t.Fatalf("inspect %q: %v\n%s", k, err, out)
		}
		lang := info.Vary["Accept-Language"]
		if !strings.HasPrefix(*info.Body, lang+"-") || printableKey(info.Key) != k {
			t.Fatalf("inspect %q: key %q, body %q for Accept-Language %q", k, info.Key, *info.Body, lang)
		}
		langs[lang] = true
	}
	if !langs["en"] || !langs["de"] {
		t.Fatalf("inspected variants for %v, want en and de", langs)
	}
}

// expired --dry-run says what expired then removes.
func TestCacheCommandsExpiredDryRun(t *testing.T) {
	env, _ := sweepEnv(t, "t-cli-expired", t.Name(), true)
	env.get("/10")
	env.get("/20")
	env.get("/1000")
	env.clock.Advance(30 * time.Second)
	addr := cliAdmin(t)
	h := "--handler=" + env.name()
	out, err := runCLI(t, addr, "expired", "--dry-run", h)
	if err != nil || !strings.Contains(out, "total: would remove 2") {
		t.Fatalf("expired --dry-run: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "expired", h)
	if err != nil || !strings.Contains(out, "total: removed 2") {
		t.Fatalf("expired: %v\n%s", err, out)
	}
	// a store that cannot count says so
	nc, _ := sweepEnv(t, "t-cli-expired-nc", t.Name()+"-nc", false)
	nc.get("/10")
	nc.clock.Advance(30 * time.Second)
	out, err = runCLI(t, addr, "expired", "--dry-run", "--handler="+nc.name())
	if err != nil || !strings.Contains(out, "cannot count ahead") {
		t.Fatalf("expired --dry-run, uncounted: %v\n%s", err, out)
	}
}

// list --older-than and --status filter on the server (older_than and
// status on GET /cache/entries), by the handler's clock.
func TestCacheCommandsListFilters(t *testing.T) {
	env := opsEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=86400")
		if strings.HasPrefix(r.URL.Path, "/gone") {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = w.Write([]byte("x"))
		return nil
	})
	env.get("/old")
	env.get("/gone-old")
	env.clock.Advance(2 * time.Hour)
	env.get("/new")
	env.get("/gone-new")
	addr := cliAdmin(t)
	h := "--handler=" + env.name()
	u := env.srv.URL
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{u + "/gone-new", u + "/gone-old", u + "/new", u + "/old"}},
		{[]string{"--older-than", "1h"}, []string{u + "/gone-old", u + "/old"}},
		{[]string{"--older-than", "3h"}, nil},
		{[]string{"--status", "404"}, []string{u + "/gone-new", u + "/gone-old"}},
		{[]string{"--status", "200", "--older-than", "90m"}, []string{u + "/old"}},
		{[]string{"--status", "404", "--limit", "1"}, []string{u + "/gone-new"}},
	} {
		out, err := runCLI(t, addr, append([]string{"list", h}, c.args...)...)
		if got := listedKeys(out, u); err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("list %v: %v, keys %q, want %q\n%s", c.args, err, got, c.want, out)
		}
	}
	for _, c := range []struct{ args []string }{
		{[]string{"--older-than", "soon"}},
		{[]string{"--older-than", "-1h"}},
		{[]string{"--status", "99"}},
	} {
		out, err := runCLI(t, addr, append([]string{"list", h}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(strings.TrimPrefix(c.args[0], "--"), "-", "_")) {
			t.Errorf("list %v: %v, want an error naming the filter\n%s", c.args, err, out)
		}
	}
}

// stats --watch prints one compact table per refresh and stops after
// --count.
func TestCacheStatsWatch(t *testing.T) {
	env := opsEnv(t, "", tagged)
	env.get("/w")
	env.get("/w")
	addr := cliAdmin(t)
	out, err := runCLI(t, addr, "stats", "--watch", "--interval", "1ms", "--count", "3", "--handler="+env.name())
	if err != nil {
		t.Fatalf("stats --watch: %v\n%s", err, out)
	}
	if n := strings.Count(out, "caddy cache stats"); n != 3 {
		t.Fatalf("%d refreshes, want 3:\n%s", n, out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("screen control codes written to a non-terminal:\n%q", out)
	}
	tables := strings.Split(out, "caddy cache stats")[1:]
	first := strings.Fields(lineWith(tables[0], env.name()))
	// HANDLER BACKEND ENTRIES SIZE REQ/S HIT/S MISS/S ERR/S HIT% EVICT/S
	if len(first) != 10 || first[2] != "1" || first[4] != "-" || first[8] != "50.0" {
		t.Fatalf("first refresh row %q: want 1 entry, no rates yet, the 50%% hit ratio since start\n%s", first, out)
	}
	last := strings.Fields(lineWith(tables[2], env.name()))
	if len(last) != 10 || last[4] != "0.0" || last[8] != "-" {
		t.Fatalf("last refresh row %q: want no requests in the interval\n%s", last, out)
	}
	for _, bad := range [][]string{{"--interval", "0s"}, {"--count", "-1"}, {"--json"}} {
		if _, err := runCLI(t, addr, append([]string{"stats", "--watch"}, bad...)...); err == nil {
			t.Errorf("stats --watch %v: no error", bad)
		}
	}
	if _, err := runCLI(t, addr, "stats", "--count", "2"); err == nil || !strings.Contains(err.Error(), "--count needs --watch") {
		t.Errorf("stats --count without --watch: %v", err)
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

func TestWatchTableRates(t *testing.T) {
	prev := map[string]handlerStats{"a": {Handler: "a", Hits: 10, Misses: 0, Evictions: 4}}
	cur := []handlerStats{{Handler: "a", Backend: "sqlite", Entries: 7, Bytes: 3 << 20, Hits: 30, Misses: 10, Errors: 0, Evictions: 10, HitRatio: 0.75}}
	var b strings.Builder
	writeWatchTable(&b, cur, prev, 2*time.Second, time.Now(), time.Second)
	row := strings.Fields(lineWith(b.String(), "sqlite"))
	want := []string{"a", "sqlite", "7", "3.0MiB", "15.0", "10.0", "5.0", "0.0", "66.7", "3.0"}
	if strings.Join(row, " ") != strings.Join(want, " ") {
		t.Fatalf("row %q, want %q\n%s", row, want, b.String())
	}
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1536: "1.5KiB", 5 << 30: "5.0GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
