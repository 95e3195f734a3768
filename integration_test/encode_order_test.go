package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Where cache sits relative to encode (issue 13 item 16), measured through
// a real Caddy with `encode gzip` and a compressible origin response.

// encodeBody is a compressible origin body (text, well above encode's
// 512-byte minimum_length).
var encodeBody = strings.Repeat("the quick brown fox jumps over the lazy dog\n", 200)

// startCaddyGlobals is startCaddy with extra global options.
func startCaddyGlobals(t *testing.T, globals, siteBody string) *instance {
	t.Helper()
	in := &instance{t: t, port: freePort(t)}
	in.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.site = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	text := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	skip_install_trust
	grace_period 1s
	%s
}
http://127.0.0.1:%d {
%s
}
`, in.admin, globals, in.port, siteBody)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(text)), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, text)
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

// rawClient neither adds Accept-Encoding nor decompresses: the test sees
// the bytes Caddy sent.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// getRaw sends GET path with Accept-Encoding ae (none when ""), and
// returns the response with its body as sent.
func (in *instance) getRaw(path, ae string, hdr ...string) response {
	in.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, in.site+path, nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		in.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatalf("GET %s: body: %v", path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// gunzip decompresses a gzip body, failing the test when it is not one.
func gunzip(t *testing.T, b string) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader([]byte(b)))
	if err != nil {
		t.Fatalf("body is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(out)
}

type encodeEntry struct {
	Key        string              `json:"key"`
	Size       int64               `json:"size"`
	Vary       map[string]string   `json:"vary"`
	Header     map[string][]string `json:"header"`
	BodyBase64 *string             `json:"body_base64"`
	Body       *string             `json:"body"`
}

// storedEntries returns every response the handler "enc" stores, with
// header and body.
func (in *instance) storedEntries() []encodeEntry {
	in.t.Helper()
	var l struct {
		Entries []encodeEntry `json:"entries"`
	}
	if code := in.api("GET", "/cache/entries?handler=enc", nil, &l); code != 200 {
		in.t.Fatalf("list: %d", code)
	}
	for i, e := range l.Entries {
		var full encodeEntry
		if code := in.api("GET", "/cache/entries/"+url.PathEscape(e.Key)+"?body=1&handler=enc", nil, &full); code != 200 {
			in.t.Fatalf("inspect %q: %d", e.Key, code)
		}
		l.Entries[i] = full
	}
	return l.Entries
}

func encodeOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(encodeBody)))
		io.WriteString(w, encodeBody)
	})
}

func encodeSite(t *testing.T, o *origin) string {
	return fmt.Sprintf("\tcache {\n\t\tname enc\n\t\tstorage memory {\n\t\t\tname %s\n\t\t}\n\t}\n\tencode gzip\n\treverse_proxy %s", safeName(t), o.addr())
}

// storedBody returns an entry's body as stored.
func storedBody(t *testing.T, e encodeEntry) string {
	t.Helper()
	switch {
	case e.Body != nil:
		return *e.Body
	case e.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*e.BodyBase64)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("entry %q has no body", e.Key)
	return ""
}

func wantEncoding(t *testing.T, r response, enc string) {
	t.Helper()
	if ce := r.header.Get("Content-Encoding"); ce != enc {
		t.Fatalf("Content-Encoding %q, want %q (Cache-Status %q)", ce, enc, r.header.Get("Cache-Status"))
	}
	body := r.body
	if enc == "gzip" {
		body = gunzip(t, r.body)
	}
	if body != encodeBody {
		t.Fatalf("body of %d bytes is not the origin's (%d bytes)", len(body), len(encodeBody))
	}
	if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Accept-Encoding") {
		t.Fatalf("Vary %q: the client must learn that the response varies on Accept-Encoding", r.header.Values("Vary"))
	}
}

// With the default order (cache before encode), encode runs inside the
// cache: the cache stores encode's output, one variant per Accept-Encoding
// value (encode adds Vary: Accept-Encoding, to identity responses too), and
// serves hits as stored, so a hit is never compressed again. Each distinct
// Accept-Encoding value costs one origin fetch and one stored copy, even
// when encode answers two of them alike.
func TestEncodeOrderDefaultStoresEncodedVariants(t *testing.T) {
	o := encodeOrigin(t)
	in := startCaddyGlobals(t, "", encodeSite(t, o))

	first := in.getRaw("/page", "gzip")
	wantEncoding(t, first, "gzip")
	r := in.getRaw("/page", "gzip")
	wantCacheStatus(t, r, "hit")
	wantEncoding(t, r, "gzip")
	if r.body != first.body {
		t.Fatal("the gzip hit is not the stored bytes")
	}
	r = in.getRaw("/page", "")
	wantCacheStatus(t, r, "fwd=vary-miss")
	wantEncoding(t, r, "")
	wantCacheStatus(t, in.getRaw("/page", ""), "hit")
	browser := "gzip, deflate, br, zstd"
	r = in.getRaw("/page", browser)
	wantCacheStatus(t, r, "fwd=vary-miss") // gzip again, but another variant
	wantEncoding(t, r, "gzip")
	r = in.getRaw("/page", "br") // encode has no br: identity, another variant
	wantCacheStatus(t, r, "fwd=vary-miss")
	wantEncoding(t, r, "")
	// the same codings in another order: the same variant (a set)
	wantCacheStatus(t, in.getRaw("/page", "zstd, br, deflate, gzip"), "hit")
	o.wantHits(t, 4)

	// a conditional hit compares the ETag encode wrote
	if r := in.getRaw("/page", "gzip", "If-None-Match", `"v1-gzip"`); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match of the gzip ETag: %d (Cache-Status %q)", r.status, r.header.Get("Cache-Status"))
	}

	entries := in.storedEntries()
	if len(entries) != 4 {
		t.Fatalf("%d stored entries, want 4 variants", len(entries))
	}
	gz := 0
	for _, e := range entries {
		if !strings.Contains(e.Key, "#vary=") || strings.Join(e.Header["Vary"], ",") != "Accept-Encoding" {
			t.Fatalf("entry %q (Vary %q): want a Vary: Accept-Encoding variant", e.Key, e.Header["Vary"])
		}
		body := storedBody(t, e)
		switch ce := strings.Join(e.Header["Content-Encoding"], ","); ce {
		case "gzip":
			gz++
			if gunzip(t, body) != encodeBody || e.Size >= int64(len(encodeBody))/10 {
				t.Fatalf("gzip entry %q: %d bytes stored", e.Key, e.Size)
			}
		case "":
			if body != encodeBody {
				t.Fatalf("identity entry %q: %d bytes stored", e.Key, e.Size)
			}
		default:
			t.Fatalf("entry %q: Content-Encoding %q", e.Key, ce)
		}
	}
	if gz != 2 {
		t.Fatalf("%d gzip entries, want 2 (gzip and the browser's list)", gz)
	}
}

// With `order cache after encode`, the cache runs inside encode: it stores
// the origin's identity response once, without Vary, every client hits it,
// and encode compresses every hit again on its way out.
func TestEncodeOrderCacheAfterEncodeStoresIdentity(t *testing.T) {
	o := encodeOrigin(t)
	in := startCaddyGlobals(t, "order cache after encode", encodeSite(t, o))

	wantEncoding(t, in.getRaw("/page", "gzip"), "gzip")
	for _, ae := range []string{"gzip", "", "gzip, deflate, br, zstd", "br"} {
		r := in.getRaw("/page", ae)
		wantCacheStatus(t, r, "hit")
		want := ""
		if strings.Contains(ae, "gzip") {
			want = "gzip"
		}
		wantEncoding(t, r, want)
	}
	o.wantHits(t, 1)
	if r := in.getRaw("/page", "gzip", "If-None-Match", `"v1-gzip"`); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match of the gzip ETag: %d (Cache-Status %q)", r.status, r.header.Get("Cache-Status"))
	}

	entries := in.storedEntries()
	if len(entries) != 1 {
		t.Fatalf("%d stored entries, want 1", len(entries))
	}
	e := entries[0]
	if strings.Contains(e.Key, "#vary=") || len(e.Header["Vary"]) != 0 || len(e.Header["Content-Encoding"]) != 0 ||
		storedBody(t, e) != encodeBody {
		t.Fatalf("entry %q: Vary %q, Content-Encoding %q, %d bytes; want the origin's identity response, once",
			e.Key, e.Header["Vary"], e.Header["Content-Encoding"], e.Size)
	}
}
