package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddycache/caddy-cache"
)

// instance is an in-process Caddy loaded from a Caddyfile, with its admin
// endpoint and one site on free loopback ports.
type instance struct {
	t     *testing.T
	admin string // host:port
	site  string // http://127.0.0.1:port
	port  int
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCaddy loads a config whose site block is siteBody, in front of
// nothing in particular: siteBody usually ends with reverse_proxy.
// Caddy is a process-wide singleton: tests using it must not run in
// parallel.
func startCaddy(t *testing.T, siteBody string) *instance {
	t.Helper()
	in := &instance{t: t, port: freePort(t)}
	in.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.site = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	cfg := in.adapt(siteBody)
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

func (in *instance) adapt(siteBody string) []byte {
	in.t.Helper()
	caddyfile := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	skip_install_trust
	grace_period 1s
}
http://127.0.0.1:%d {
%s
}
`, in.admin, in.port, siteBody)
	cfg, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		in.t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warns {
		in.t.Logf("adapt warning: %s", w.String())
	}
	return cfg
}

// reload posts a new config to the admin endpoint's /load, as `caddy
// reload` does.
func (in *instance) reload(siteBody string) {
	in.t.Helper()
	in.loadJSON(in.adapt(siteBody))
}

func (in *instance) loadJSON(cfg []byte) {
	in.t.Helper()
	resp, err := http.Post("http://"+in.admin+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		in.t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		in.t.Fatalf("POST /load: %d %s", resp.StatusCode, b)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{Timeout: 10 * time.Second}

func (in *instance) get(path string, hdr ...string) response {
	in.t.Helper()
	return do(in.t, http.MethodGet, in.site+path, hdr...)
}

func do(t testing.TB, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil && method == http.MethodGet && strings.Contains(err.Error(), "connection reset by peer") {
		// A connection queued on the old listener at the instant of a
		// reload can be reset by the kernel (see the README's Reliability
		// section): a GET may be sent again.
		resp, err = client.Do(req)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func wantCacheStatus(t testing.TB, r response, sub string) {
	t.Helper()
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, sub) {
		t.Fatalf("Cache-Status %q, want it to contain %q (body %q)", cs, sub, r.body)
	}
}

// origin is a real HTTP origin on loopback that counts its requests.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

func newOrigin(t testing.TB, h func(w http.ResponseWriter, r *http.Request, n int64)) *origin {
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, o.hits.Add(1))
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) addr() string { return strings.TrimPrefix(o.URL, "http://") }

func (o *origin) wantHits(t testing.TB, n int64) {
	t.Helper()
	if got := o.hits.Load(); got != n {
		t.Fatalf("origin saw %d requests, want %d", got, n)
	}
}
