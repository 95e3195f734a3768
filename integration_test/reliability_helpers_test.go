package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// startCaddyfile loads a whole Caddyfile built by caddyfile(adminAddr, port)
// into the in-process Caddy (a process-wide singleton: no t.Parallel) and
// stops it when the test ends. Unlike startCaddy it lets a test choose the
// global options and site addresses (e.g. a catch-all http://:port site, or
// a log file).
func startCaddyfile(t *testing.T, caddyfile func(admin string, port int) string) *instance {
	t.Helper()
	in := &instance{t: t, port: freePort(t)}
	in.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.site = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	src := caddyfile(in.admin, in.port)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, src)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return in
}

// globalOptions is the global options block every reliability test uses
// (sites listen on loopback only); extra goes inside it (e.g. a log block).
func globalOptions(admin, extra string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n\tpersist_config off\n\tskip_install_trust\n\tgrace_period 1s\n\tdefault_bind 127.0.0.1\n%s\n}\n", admin, extra)
}

// loopbackSite returns a Caddyfile builder for one site,
// http://127.0.0.1:<port>, bound to loopback, whose body is siteBody.
func loopbackSite(extraGlobal, siteBody string) func(admin string, port int) string {
	return func(admin string, port int) string {
		return globalOptions(admin, extraGlobal) + fmt.Sprintf("http://127.0.0.1:%d {\n%s\n}\n", port, siteBody)
	}
}

// reloadSite loads a new config for the same admin endpoint and port
// through the admin API's /load, as `caddy reload` does.
func (in *instance) reloadSite(extraGlobal, siteBody string) {
	in.t.Helper()
	src := loopbackSite(extraGlobal, siteBody)(in.admin, in.port)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		in.t.Fatalf("adapting Caddyfile: %v\n%s", err, src)
	}
	in.loadJSON(cfg)
}

// logFile returns a path for Caddy's log and the global option that sends
// the default log there as JSON at the given level.
func logFile(t *testing.T, level string) (path, option string) {
	path = filepath.Join(t.TempDir(), "caddy.log")
	return path, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel %s\n\t}", path, level)
}

// logLine is one JSON line of Caddy's log.
type logLine struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
}

// readLog returns the lines written by loggers whose name starts with prefix.
func readLog(t *testing.T, path, prefix string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening the log: %v", err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if strings.HasPrefix(l.Logger, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// sumBody returns payload followed by a line with its SHA-256, so that a
// client can tell a damaged body from a good one.
func sumBody(payload string) string {
	s := sha256.Sum256([]byte(payload))
	return payload + "\nsha256=" + hex.EncodeToString(s[:]) + "\n"
}

// checkSum reports whether body is a payload with a matching sumBody line.
func checkSum(body string) bool {
	i := strings.LastIndex(body, "\nsha256=")
	if i < 0 || !strings.HasSuffix(body, "\n") {
		return false
	}
	s := sha256.Sum256([]byte(body[:i]))
	return body[i+len("\nsha256="):len(body)-1] == hex.EncodeToString(s[:])
}

// rawResponse sends a raw HTTP/1.1 request over a fresh connection and
// reads the response (Connection: close is expected in raw).
func rawResponse(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatalf("writing raw request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading raw response to %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}
