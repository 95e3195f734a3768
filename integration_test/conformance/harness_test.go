//go:build unix

package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// suiteVersion is the pinned version of the http-cache-tests package; it
// must match package.json and package-lock.json.
const suiteVersion = "0.4.5"

// lockStamp records, inside node_modules, the hash of the package-lock.json
// that node_modules was installed from, so a changed lock file triggers a
// fresh `npm ci`.
const lockStamp = ".conformance-lock.sha256"

// requireNode returns the paths of node and npm, failing the test with
// install instructions when either is missing or node is older than 20.
func requireNode(t *testing.T) (node, npm string) {
	t.Helper()
	const install = "the HTTP cache test suite needs Node.js 20 or newer with npm on PATH " +
		"(install it from your distribution's nodejs and npm packages or from nodejs.org)"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: %s", install)
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm not found: %s", install)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v: %s", err, install)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil || major < 20 {
		t.Fatalf("node %s is too old: %s", v, install)
	}
	return node, npm
}

// ensureNodeModules runs `npm ci` in dir when node_modules is missing or was
// installed from a different package-lock.json. It is a no-op otherwise.
func ensureNodeModules(t *testing.T, npm, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("reading package-lock.json: %v", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", lockStamp)
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		if suiteInstalled(dir) == nil {
			return
		}
	}
	t.Logf("installing the test suite: npm ci in %s", dir)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := suiteInstalled(dir); err != nil {
		t.Fatalf("after npm ci: %v", err)
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		t.Fatalf("writing %s: %v", stamp, err)
	}
}

// suiteInstalled checks that node_modules holds the pinned suite version.
func suiteInstalled(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "http-cache-tests", "package.json"))
	if err != nil {
		return fmt.Errorf("http-cache-tests is not installed: %w", err)
	}
	if !bytes.Contains(raw, []byte(`"version": "`+suiteVersion+`"`)) {
		return fmt.Errorf("node_modules holds another http-cache-tests version than %s", suiteVersion)
	}
	return nil
}

// cleanEnv is the test's environment without the npm_config_* and
// npm_package_config_* variables the suite reads its options from, so a
// surrounding `npm run` cannot leak options into the processes we start.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k := strings.ToLower(kv)
		if strings.HasPrefix(k, "npm_config_") || strings.HasPrefix(k, "npm_package_config_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// repoRoot is the directory of the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod)
}

// caddyBinary returns the Caddy to test: $CONFORMANCE_CADDY when set,
// otherwise ./cmd/caddy built into dir.
func caddyBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("CONFORMANCE_CADDY"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("CONFORMANCE_CADDY: %v", err)
		}
		return bin
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = repoRoot(t)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	t.Logf("built ./cmd/caddy in %s", time.Since(start).Round(time.Second))
	return bin
}

// requireCacheModule fails unless the binary includes the cache handler and
// the memory storage.
func requireCacheModule(t *testing.T, caddy string) {
	t.Helper()
	out, err := exec.Command(caddy, "list-modules").Output()
	if err != nil {
		t.Fatalf("%s list-modules: %v", caddy, err)
	}
	for _, mod := range []string{"http.handlers.cache", "http.handlers.cache.storage.memory"} {
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(line) == mod {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s does not include module %s", caddy, mod)
		}
	}
}

// freePort returns a TCP port on the loopback address that was free a
// moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a server started in its own process group, stopped by the
// test's cleanup.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// startProcess starts a long-running server with output to logPath and
// registers its stop with t.Cleanup.
func startProcess(t *testing.T, name, dir, logPath string, env []string, bin string, args ...string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: creating log: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL if it has not exited
// within ten seconds.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns the last lines of the process's output.
func (p *process) logTail() string {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.log, err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// waitListening waits until addr accepts TCP connections, failing the test
// if the process exits first or 60 seconds pass.
func (p *process) waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.name, addr, p.err, p.logTail())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not listening on %s after 60s: %v\n%s", p.name, addr, err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errExited reports that a process has already exited.
var errExited = errors.New("process exited")

// alive returns errExited, with the output, if the process has exited.
func (p *process) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s: %w (%v)\n%s", p.name, errExited, p.err, p.logTail())
	default:
		return nil
	}
}
