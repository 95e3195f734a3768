package testservers

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ferretReadyTimeout bounds how long the FerretDB wrapper may take to
// report its address.
const ferretReadyTimeout = 60 * time.Second

// FerretDB starts FerretDB (MongoDB wire protocol, SQLite handler) through
// the ferretwrap binary built by scripts/test-deps.sh, on a free 127.0.0.1
// port chosen by the server itself, with its data in the server's temp dir.
// URI is mongodb://127.0.0.1:PORT/. The CACHE_TEST_FERRETWRAP environment
// variable overrides the binary's location. t.Cleanup stops it.
//
// FerretDB does not implement TTL indexes, transactions, change streams or
// the 16 MiB document limit.
func FerretDB(t testing.TB) *Server {
	t.Helper()
	bin := ferretWrapPath(t)
	s := newServer(t, "ferretdb", func(s *Server) error {
		listen := s.Addr
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		stdout := filepath.Join(s.dir, "ferretdb.stdout")
		p, err := startProcess(s.dir, s.logPath, stdout, bin,
			"-listen", listen, "-dir", filepath.Join(s.dir, "data"))
		if err != nil {
			return err
		}
		line, err := waitFirstLine(p, stdout, ferretReadyTimeout)
		if err != nil {
			return killFailed(p, err)
		}
		u, err := url.Parse(line)
		if err != nil || u.Scheme != "mongodb" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
			return killFailed(p, fmt.Errorf("unexpected first stdout line %q (want mongodb://127.0.0.1:PORT/)", line))
		}
		if s.Addr != "" && u.Host != s.Addr {
			return killFailed(p, fmt.Errorf("listening on %s, want %s", u.Host, s.Addr))
		}
		if err := waitDial(p, u.Host, ferretReadyTimeout); err != nil {
			return killFailed(p, err)
		}
		s.Addr, s.URI = u.Host, line
		s.setProc(p)
		return nil
	})
	s.startFirst(t, func() string { return "" })
	return s
}

// ferretWrapPath returns the wrapper binary's path or fails the test.
func ferretWrapPath(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvFerretWrap)
	from := EnvFerretWrap
	if path == "" {
		path = filepath.Join(RepoRoot(t), "integration_test", "servers", "bin", "ferretwrap")
		from = "default location"
	}
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("testservers: FerretDB wrapper binary %s (%s) is missing or not executable: %s", path, from, InstallHint)
	}
	return path
}
