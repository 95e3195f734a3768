package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests that need Caddy as its own process (restarts, two instances) use a
// binary built from ./cmd/caddy into the ignored integration_test/servers/bin.

var (
	buildOnce sync.Once
	buildErr  error
	caddyBin  string
)

func caddyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			buildErr = err
			return
		}
		caddyBin = filepath.Join(root, "integration_test", "servers", "bin", "caddy")
		cmd := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return caddyBin
}

// lockedBuffer is the output of a child process, safe to read while the
// process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caddyProcess is Caddy running as a child process.
type caddyProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *lockedBuffer
	dir  string // its data/config home
	file string // its Caddyfile
}

// startCaddyProcess runs `caddy run` with caddyfile; home is the directory
// used as XDG data and config home (Caddy's data directory lives there), so
// a restart with the same home finds the same default storage.
func startCaddyProcess(t *testing.T, caddyfile, home string, waitAddr string) *caddyProcess {
	t.Helper()
	bin := caddyBinary(t)
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{t: t, log: new(lockedBuffer), dir: home, file: file}
	p.cmd = exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "HOME="+home)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", waitAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		if p.cmd.ProcessState != nil || time.Now().After(deadline) {
			p.stop()
			t.Fatalf("caddy did not listen on %s: %v\n%s", waitAddr, err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process (SIGTERM, then SIGKILL) and waits for it.
// kill ends the process at once (SIGKILL), as a crash would: nothing of
// it runs any more, deferred work included.
func (p *caddyProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	cmd := p.cmd
	p.cmd = nil
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

func (p *caddyProcess) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	cmd := p.cmd
	p.cmd = nil
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if strings.Contains(p.log.String(), "panic:") {
		p.t.Errorf("caddy panicked:\n%s", p.log.String())
	}
}

// siteCaddyfile is a minimal Caddyfile: one site on port with body inside.
func siteCaddyfile(port int, body string) string {
	return siteCaddyfileOn("127.0.0.1", port, body)
}

// siteCaddyfileOn is siteCaddyfile with the site bound to another loopback
// address: two instances on 127.0.0.1 and 127.0.0.2 can listen on one port,
// as two machines behind a load balancer do.
func siteCaddyfileOn(bind string, port int, body string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	skip_install_trust
}
http://:%d {
	bind %s
%s
}
`, port, bind, body)
}
