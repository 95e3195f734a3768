//go:build unix

// Package conformance runs the HTTP cache test suite (the one behind
// cache-tests.fyi) against Caddy built from ./cmd/caddy with the cache
// handler in front of reverse_proxy, and gates on the known failures.
// See README.md for the knobs.
package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// suiteTimeout bounds one run of the suite (about 20 seconds normally).
const suiteTimeout = 3 * time.Minute

// options are the environment knobs, documented in README.md.
type options struct {
	update   bool   // CONFORMANCE_UPDATE=1: write results.json and summary.md here
	strict   bool   // CONFORMANCE_STRICT=1: listed failures that pass fail the test
	baseline bool   // CONFORMANCE_BASELINE=1: no cache, plain reverse_proxy; no gate
	run      string // CONFORMANCE_RUN: regexp of test ids (plus their dependencies)
	dump     bool   // CONFORMANCE_DUMP=1: print the exchanges of the selected tests
}

func optionsFromEnv(t *testing.T) options {
	t.Helper()
	o := options{
		update:   os.Getenv("CONFORMANCE_UPDATE") == "1",
		strict:   os.Getenv("CONFORMANCE_STRICT") == "1",
		baseline: os.Getenv("CONFORMANCE_BASELINE") == "1",
		run:      os.Getenv("CONFORMANCE_RUN"),
		dump:     os.Getenv("CONFORMANCE_DUMP") == "1",
	}
	if o.update && (o.baseline || o.run != "") {
		t.Fatal("CONFORMANCE_UPDATE=1 records a full run with the cache: unset CONFORMANCE_BASELINE and CONFORMANCE_RUN")
	}
	if o.dump && o.run == "" {
		t.Fatal("CONFORMANCE_DUMP=1 needs CONFORMANCE_RUN to select a few tests")
	}
	return o
}

func TestConformance(t *testing.T) {
	opts := optionsFromEnv(t)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	node, npm := requireNode(t)
	ensureNodeModules(t, npm, here)

	work := t.TempDir()
	caddy := caddyBinary(t, work)
	if !opts.baseline {
		requireCacheModule(t, caddy)
	}

	// The suite's origin server, on loopback only.
	originPort := freePort(t)
	origin := startProcess(t, "origin server", work, filepath.Join(work, "origin.log"),
		cleanEnv(
			"npm_config_protocol=http",
			"npm_config_port="+strconv.Itoa(originPort),
			"npm_config_pidfile="+filepath.Join(work, "origin.pid"),
		),
		node, "--import", filepath.Join(here, "loopback.mjs"),
		filepath.Join(here, "node_modules", "http-cache-tests", "server", "server.mjs"))
	origin.waitListening(t, "127.0.0.1:"+strconv.Itoa(originPort))

	// Caddy, with its data and config directories inside the temp dir.
	port := freePort(t)
	caddyfile := filepath.Join(work, "Caddyfile")
	writeCaddyfile(t, filepath.Join(here, "Caddyfile.tmpl"), caddyfile, port, originPort, !opts.baseline)
	caddyProc := startProcess(t, "caddy", work, filepath.Join(work, "caddy.log"),
		cleanEnv("HOME="+work, "XDG_DATA_HOME="+filepath.Join(work, "data"), "XDG_CONFIG_HOME="+filepath.Join(work, "config")),
		caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	caddyProc.waitListening(t, "127.0.0.1:"+strconv.Itoa(port))

	// The suite itself.
	resultsPath := filepath.Join(work, "results.json")
	testsPath := filepath.Join(work, "tests.json")
	args := []string{
		"run-suite.mjs",
		"--base", "http://127.0.0.1:" + strconv.Itoa(port),
		"--results", resultsPath, "--tests", testsPath,
	}
	if opts.run != "" {
		args = append(args, "--run", opts.run)
	}
	if opts.dump {
		args = append(args, "--dump")
	}
	out, err := runSuite(node, here, args)
	if opts.dump {
		t.Logf("suite output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("running the suite: %v\n%s\ncaddy:\n%s\norigin:\n%s", err, out, caddyProc.logTail(), origin.logTail())
	}
	for _, p := range []*process{caddyProc, origin} {
		if err := p.alive(); err != nil {
			t.Fatalf("during the suite: %v", err)
		}
	}

	run, err := loadRun(resultsPath, testsPath)
	if err != nil {
		t.Fatalf("reading the suite's results: %v", err)
	}
	config := "`cache { storage memory }` in front of `reverse_proxy`"
	if opts.baseline {
		config = "plain `reverse_proxy` (no cache)"
	}
	summary := renderSummary(run, config)

	outDir := filepath.Join(os.TempDir(), "caddy-cache-conformance")
	if opts.update {
		outDir = here
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	results, err := os.ReadFile(resultsPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"results.json": results, "summary.md": []byte(summary)} {
		if err := os.WriteFile(filepath.Join(outDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s (results.json and summary.md in %s)", scoreLine(run), outDir)

	if opts.baseline {
		t.Log("baseline run: no gate")
		return
	}

	f, err := os.Open(filepath.Join(here, "known-failures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	known, err := parseKnownFailures(f)
	f.Close()
	if err != nil {
		t.Fatalf("known-failures.txt: %v", err)
	}
	rep := gate(run, known, opts.run == "")
	// The suite's timing margins are about a second (max-age=2 with 3 s
	// pauses), so a loaded machine can make a test fail once. Tests that did
	// not pass run again, alone (with what they depend on), up to twice;
	// a test counts as passing only if a rerun passes.
	for attempt := 1; attempt <= 2 && len(rep.Unexpected) > 0 && opts.run == ""; attempt++ {
		ids := make([]string, len(rep.Unexpected))
		for i, rec := range rep.Unexpected {
			ids[i] = regexp.QuoteMeta(rec.ID)
		}
		rerunResults := filepath.Join(work, fmt.Sprintf("rerun-%d.json", attempt))
		rerunTests := filepath.Join(work, fmt.Sprintf("rerun-tests-%d.json", attempt))
		out, err := runSuite(node, here, []string{
			"run-suite.mjs",
			"--base", "http://127.0.0.1:" + strconv.Itoa(port),
			"--results", rerunResults, "--tests", rerunTests,
			"--run", "^(" + strings.Join(ids, "|") + ")$",
		})
		if err != nil {
			t.Logf("rerun %d failed to run: %v\n%s", attempt, err, out)
			break
		}
		again, err := loadRun(rerunResults, rerunTests)
		if err != nil {
			t.Fatalf("reading the rerun's results: %v", err)
		}
		outcome := map[string]string{}
		for _, rec := range again.Tests {
			outcome[rec.ID] = rec.Outcome
		}
		var still []testRecord
		for _, rec := range rep.Unexpected {
			if passing(outcome[rec.ID]) {
				t.Logf("%s (%s) failed once (%s), passed when run again: timing under load", rec.ID, rec.Kind, run.detail(rec))
				continue
			}
			still = append(still, rec)
		}
		rep.Unexpected = still
	}
	for _, rec := range rep.Unexpected {
		t.Errorf("%s (%s) %s: %s", rec.ID, rec.Kind, rec.Outcome, run.detail(rec))
	}
	if len(rep.Unexpected) > 0 {
		t.Errorf("%d tests not in known-failures.txt do not pass; see one with CONFORMANCE_RUN='^<id>$' CONFORMANCE_DUMP=1",
			len(rep.Unexpected))
	}
	for _, id := range rep.Unknown {
		t.Errorf("known-failures.txt lists %s, which is not a test of the suite", id)
	}
	for _, id := range rep.NowPassing {
		if opts.strict {
			t.Errorf("%s now passes: remove it from known-failures.txt", id)
		} else {
			t.Logf("%s now passes: remove it from known-failures.txt", id)
		}
	}
}

// runSuite runs node with args in dir, in its own process group, killed
// with the group after suiteTimeout.
func runSuite(node, dir string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("the suite did not finish within %s: %w", suiteTimeout, err)
	}
	return out.Bytes(), err
}

// writeCaddyfile fills in the template.
func writeCaddyfile(t *testing.T, tmpl, dst string, port, originPort int, withCache bool) {
	t.Helper()
	tpl, err := template.ParseFiles(tmpl)
	if err != nil {
		t.Fatalf("Caddyfile template: %v", err)
	}
	var b bytes.Buffer
	err = tpl.Execute(&b, struct {
		Port, OriginPort int
		Cache            bool
	}{port, originPort, withCache})
	if err != nil {
		t.Fatalf("Caddyfile template: %v", err)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
