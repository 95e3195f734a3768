package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
)

// memoryHandle opens another handle on the shared memory store called
// name, to inspect what the cache stored.
func memoryHandle(t *testing.T, name string) *memory.Cache {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	m := &memory.Memory{Name: name}
	if err := m.Provision(ctx); err != nil {
		cancel()
		t.Fatalf("memory handle: %v", err)
	}
	t.Cleanup(func() {
		_ = m.Cleanup()
		cancel()
	})
	return m.Shared()
}

// storedKeys lists the keys of a store.
func storedKeys(t *testing.T, l storage.Lister) map[string]*storage.Entry {
	t.Helper()
	keys := map[string]*storage.Entry{}
	if err := l.List(context.Background(), "", func(k string, e *storage.Entry) error {
		keys[k] = e
		return nil
	}); err != nil {
		t.Fatalf("listing the store: %v", err)
	}
	return keys
}

// keyScopeLen is the length of the handler scope that starts every key:
// "c2:" and 8 hex digits and ":".
const keyScopeLen = len("c2:00000000:")

// unscope strips the handler scope from a stored key, leaving the URL the
// key was made for (and its key header lines, Vary suffix...).
func unscope(k string) string {
	if strings.HasPrefix(k, "c2:") && len(k) >= keyScopeLen && k[keyScopeLen-1] == ':' {
		return k[keyScopeLen:]
	}
	return k
}

// lookupURL returns the entry stored under the key whose unscoped form is
// u, or storage.ErrNotFound.
func lookupURL(t *testing.T, mem *memory.Cache, u string) (*storage.Entry, error) {
	t.Helper()
	for k := range storedKeys(t, mem) {
		if unscope(k) == u {
			return mem.Get(context.Background(), k)
		}
	}
	return nil, storage.ErrNotFound
}

// keyTarget is the normal form a key gives a request target (RFC 3986
// §6.2.2): unreserved characters but the dot unescaped, other escapes in
// upper case,
// an empty query dropped. An oracle written apart from the handler's.
func keyTarget(target string) string {
	var b strings.Builder
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c == '%' && i+2 < len(target) {
			if v, err := strconv.ParseUint(target[i+1:i+3], 16, 8); err == nil {
				ch := byte(v)
				if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-_~", ch) >= 0 {
					b.WriteByte(ch)
				} else {
					b.WriteString(strings.ToUpper(target[i : i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return strings.TrimSuffix(b.String(), "?")
}

// echo parses an echo origin's payload: space-separated name=value fields.
func echo(body string) map[string]string {
	m := map[string]string{}
	line, _, _ := strings.Cut(body, "\n")
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// newEchoOrigin answers with a checksummed body that records everything
// about the request it was made for, and reflects X-Forwarded-Host/-Proto
// and method-override headers into it the way many applications do.
// /status/<code> answers with that status and no freshness ("?fresh" adds
// max-age=60); /range serves byte ranges (206).
func newEchoOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		method := r.Method
		for _, h := range []string{"X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"} {
			if v := r.Header.Get(h); v != "" {
				method = v
			}
		}
		reqBody, _ := io.ReadAll(r.Body)
		payload := fmt.Sprintf("host=%s uri=%s method=%s xfh=%s xfp=%s reqbody=%d n=%d link=%s://%s%s",
			r.Host, r.RequestURI, method, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"),
			len(reqBody), n, r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.URL.Path)
		body := sumBody(payload)
		h := w.Header()
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			if r.URL.RawQuery == "fresh" {
				h.Set("Cache-Control", "max-age=60")
			}
			w.WriteHeader(code)
			io.WriteString(w, body)
			return
		case r.URL.Path == "/range":
			h.Set("Cache-Control", "public, max-age=60")
			h.Set("Content-Type", "text/plain")
			http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
			return
		}
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			h.Set("X-Was-Head", "1") // a HEAD answer: no body
			return
		}
		io.WriteString(w, body)
	})
}

// Inputs outside the cache key cannot change what other clients get, and
// no response is stored under another URL's key.
func TestReliabilityPoisoning(t *testing.T) {
	o := newEchoOrigin(t)
	dead := freePort(t) // nothing listens there
	name := t.Name()
	store := func(extra string) string {
		return fmt.Sprintf("cache {\n\t\t\tstorage memory {\n\t\t\t\tname %s\n\t\t\t}\n\t\t\tttl 1m\n\t\t\t%s\n\t\t}", name, extra)
	}
	in := startCaddyfile(t, func(admin string, port int) string {
		return globalOptions(admin, "") + fmt.Sprintf(`http://:%d {
	handle /err/* {
		%s
		error "boom" 500
	}
	handle /dead/* {
		%s
		reverse_proxy 127.0.0.1:%d
	}
	handle /getonly/* {
		%s
		reverse_proxy %s
	}
	handle {
		%s
		reverse_proxy %s
	}
	handle_errors {
		%s
		respond "error page {http.request.uuid}" 200
	}
}
`, port, store(""), store(""), dead, store("methods GET"), o.addr(), store(""), o.addr(), store(""))
	})
	mem := memoryHandle(t, name)
	hostPort := strings.TrimPrefix(in.site, "http://")
	var sent int

	// victim fetches path as an ordinary client and checks that the body
	// was made for exactly this request.
	victim := func(t *testing.T, path string) response {
		t.Helper()
		sent++
		r := in.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, r.status)
		}
		if !checkSum(r.body) {
			t.Fatalf("GET %s: damaged body %q", path, r.body)
		}
		e := echo(r.body)
		want := map[string]string{
			"host": hostPort, "uri": path, "method": "GET", "xfh": hostPort,
			"xfp": "http", "reqbody": "0", "link": "http://" + hostPort + strings.SplitN(path, "?", 2)[0],
		}
		for k, v := range want {
			if e[k] != v {
				t.Fatalf("GET %s got a body made for %s=%q (want %q): %q; Cache-Status %q",
					path, k, e[k], v, r.body, r.header.Get("Cache-Status"))
			}
		}
		return r
	}
	raw := func(t *testing.T, req string) (*http.Response, string) {
		t.Helper()
		sent++
		return rawResponse(t, hostPort, req)
	}

	t.Run("X-Forwarded-Host and -Proto from an untrusted client", func(t *testing.T) {
		r := in.get("/xf", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https")
		sent++
		if e := echo(r.body); e["xfh"] != hostPort || e["xfp"] != "http" {
			t.Fatalf("reverse_proxy passed the client's forwarded headers: %q", r.body)
		}
		wantCacheStatus(t, r, "stored")
		wantCacheStatus(t, victim(t, "/xf"), "hit")
	})

	t.Run("method override headers bypass", func(t *testing.T) {
		for i, h := range []string{"X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"} {
			path := fmt.Sprintf("/override/%d", i)
			r := in.get(path, h, "DELETE")
			sent++
			wantCacheStatus(t, r, `fwd=bypass; detail="method-override"`)
			wantCacheStatus(t, victim(t, path), "uri-miss")
		}
	})

	t.Run("a body on GET bypasses", func(t *testing.T) {
		resp, body := raw(t, "GET /body HTTP/1.1\r\nHost: "+hostPort+"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
		if e := echo(body); e["reqbody"] != "5" {
			t.Fatalf("the origin did not get the body: %q", body)
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, `detail="request-body"`) {
			t.Fatalf("Cache-Status %q, want a request-body bypass", cs)
		}
		_, body = raw(t, "GET /body-chunked HTTP/1.1\r\nHost: "+hostPort+"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		if e := echo(body); e["reqbody"] != "5" {
			t.Fatalf("the origin did not get the chunked body: %q", body)
		}
		wantCacheStatus(t, victim(t, "/body"), "uri-miss")
		wantCacheStatus(t, victim(t, "/body-chunked"), "uri-miss")
	})

	t.Run("absolute-form target and Host", func(t *testing.T) {
		// The target's authority wins over Host (RFC 9112 §3.2.2) for
		// routing, the key and the origin alike.
		_, body := raw(t, "GET http://victim.example/abs HTTP/1.1\r\nHost: "+hostPort+"\r\nConnection: close\r\n\r\n")
		if e := echo(body); e["host"] != "victim.example" {
			t.Fatalf("origin saw Host %q for an absolute-form target", e["host"])
		}
		_, body = raw(t, "GET http://"+hostPort+"/abs2 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
		if e := echo(body); e["host"] != hostPort {
			t.Fatalf("origin saw Host %q for an absolute-form target naming %s", e["host"], hostPort)
		}
		// Mixed case and the default port are the same host.
		raw(t, "GET /abs3 HTTP/1.1\r\nHost: VICTIM.example:80\r\nConnection: close\r\n\r\n")
		wantCacheStatus(t, victim(t, "/abs"), "uri-miss")
		wantCacheStatus(t, victim(t, "/abs2"), "hit")
		// the stored /abs for victim.example is that host's own
		resp, body := raw(t, "GET /abs HTTP/1.1\r\nHost: victim.example\r\nConnection: close\r\n\r\n")
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") || echo(body)["host"] != "victim.example" {
			t.Fatalf("victim.example /abs: Cache-Status %q, body %q", cs, body)
		}
		resp, body = raw(t, "GET /abs3 HTTP/1.1\r\nHost: victim.EXAMPLE\r\nConnection: close\r\n\r\n")
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Fatalf("victim.EXAMPLE /abs3: Cache-Status %q, want the entry of VICTIM.example:80, body %q", cs, body)
		}
	})

	t.Run("path tricks", func(t *testing.T) {
		// (/%6eormal is /normal by RFC 3986 §6.2.2.2: one key, see
		// TestIsolationPathPercentEncodingNormalised)
		tricks := map[string]string{ // raw target -> the URL it must not poison
			"/a/../b":        "/b",
			"/c%2Fd":         "/c/d",
			"//double/x":     "/double/x",
			"/./e":           "/e",
			"/f/%2e%2e/g":    "/g",
			"/h%2F..%2Fi":    "/i",
			"/j;/k":          "/k",
			"/l?x=1#frag":    "/l?x=1",
			"/m/":            "/m",
			"/q?a=1&b=2":     "/q?b=2&a=1",
			"/u\\..\\v":      "/v",
			"/w?utm_source=": "/w",
		}
		for target := range tricks {
			resp, body := raw(t, "GET "+target+" HTTP/1.1\r\nHost: "+hostPort+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode == http.StatusOK && !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
				t.Logf("%s: not stored (%s)", target, resp.Header.Get("Cache-Status"))
			}
			_ = body
		}
		for target, victimPath := range tricks {
			r := victim(t, victimPath)
			if strings.Contains(r.header.Get("Cache-Status"), "hit") {
				t.Errorf("GET %s was a hit after only %s was requested", victimPath, target)
			}
		}
	})

	t.Run("HEAD is never stored as a GET body", func(t *testing.T) {
		// A HEAD miss is fetched from the origin as a GET and stored whole.
		r := do(t, http.MethodHead, in.site+"/head")
		sent++
		if r.header.Get("X-Was-Head") != "" {
			t.Fatalf("the origin answered a HEAD miss as HEAD")
		}
		wantCacheStatus(t, victim(t, "/head"), "hit")
		// A HEAD that cannot be fetched as GET (request no-store, or HEAD
		// not cached) reaches the origin as HEAD and stores nothing.
		r = do(t, http.MethodHead, in.site+"/head-nostore", "Cache-Control", "no-store")
		sent++
		if r.header.Get("X-Was-Head") == "" {
			t.Fatalf("HEAD with no-store did not reach the origin as HEAD")
		}
		wantCacheStatus(t, victim(t, "/head-nostore"), "uri-miss")
		r = do(t, http.MethodHead, in.site+"/getonly/h")
		sent++
		wantCacheStatus(t, r, "bypass")
		wantCacheStatus(t, victim(t, "/getonly/h"), "uri-miss")
	})

	t.Run("206 is never stored as a full response", func(t *testing.T) {
		r := in.get("/range", "Range", "bytes=0-9")
		sent++
		if r.status != http.StatusPartialContent || len(r.body) != 10 {
			t.Fatalf("Range request: %d %q", r.status, r.body)
		}
		wantCacheStatus(t, victim(t, "/range"), "uri-miss")
		// and once the full response is stored, a range is cut from it
		r = in.get("/range", "Range", "bytes=0-9")
		sent++
		if r.status != http.StatusPartialContent || !strings.HasPrefix(r.body, "host=") {
			t.Fatalf("Range on a stored response: %d %q", r.status, r.body)
		}
		wantCacheStatus(t, r, "hit")
	})

	t.Run("error statuses without explicit freshness are not stored even with ttl", func(t *testing.T) {
		for _, code := range []int{500, 502, 503, 504, 403, 429} {
			path := fmt.Sprintf("/status/%d", code)
			first := in.get(path)
			second := in.get(path)
			sent += 2
			if first.status != code || second.status != code {
				t.Fatalf("%s: statuses %d, %d", path, first.status, second.status)
			}
			if strings.Contains(second.header.Get("Cache-Status"), "hit") || echo(first.body)["n"] == echo(second.body)["n"] {
				t.Errorf("%s without freshness was stored (ttl 1m configured): Cache-Status %q", path, second.header.Get("Cache-Status"))
			}
		}
		// with explicit freshness a 503 may be stored (RFC 9111 §3)
		in.get("/status/503?fresh")
		r := in.get("/status/503?fresh")
		sent += 2
		wantCacheStatus(t, r, "hit")
	})

	t.Run("handle_errors pages are never stored", func(t *testing.T) {
		for _, path := range []string{"/err/x", "/dead/x"} {
			first := in.get(path)
			second := in.get(path)
			sent += 2
			if first.status != http.StatusOK || !strings.HasPrefix(first.body, "error page ") {
				t.Fatalf("%s: %d %q, want the handle_errors page", path, first.status, first.body)
			}
			if first.body == second.body || strings.Contains(second.header.Get("Cache-Status"), "hit") {
				t.Errorf("%s: the error page was stored: %q then %q (Cache-Status %q)",
					path, first.body, second.body, second.header.Get("Cache-Status"))
			}
		}
	})

	// Every entry in the store is the origin's answer to a request for
	// exactly the URL of its key.
	entries := storedKeys(t, mem)
	checked := 0
	for k, e := range entries {
		if e.Kind != storage.KindResponse {
			continue
		}
		full, err := mem.Get(context.Background(), k)
		if err != nil {
			continue
		}
		body := string(full.Body)
		if strings.HasPrefix(body, "error page") {
			t.Errorf("an error page is stored under %q", k)
			continue
		}
		if !strings.HasPrefix(body, "host=") {
			t.Errorf("unexpected entry under %q: %q", k, body)
			continue
		}
		ec := echo(body)
		// the key has the host name with the listener's port
		host, _, _ := strings.Cut(strings.ToLower(ec["host"]), ":")
		want := "http://" + host + ":" + strconv.Itoa(in.port) + keyTarget(ec["uri"])
		primary, _, _ := strings.Cut(unscope(k), "\x00")
		if primary != want {
			t.Errorf("entry under %q was made for %s (body %q)", primary, want, body)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("nothing was stored: the checks above proved nothing")
	}
	t.Logf("poisoning: %d requests, %d entries in the store, each made for its own key", sent, checked)
}
