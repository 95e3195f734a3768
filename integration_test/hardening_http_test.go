package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// hardeningSite is a Caddy in front of origin with a memory store of its own.
func hardeningSite(t *testing.T, o *origin, extra string) *instance {
	t.Helper()
	return startCaddyfile(t, loopbackSite("", fmt.Sprintf("\tcache {\n\t\tstorage memory {\n\t\t\tname %s\n\t\t}\n%s\n\t}\n\treverse_proxy %s",
		strings.ReplaceAll(t.Name(), "/", "_"), extra, o.addr())))
}

// RFC 9111 §4.3.4 through a real Caddy: a 304 that says private removes
// the entry, and the next client (another cookie) is not served it; a
// 304's Set-Cookie reaches the client that triggered it.
func TestHardening304PrivateAndSetCookie(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("ETag", `"v1"`)
			if r.URL.Path == "/private" {
				w.Header().Set("Cache-Control", "private, max-age=60")
			} else {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Set-Cookie", "session=rotated")
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "body %d", n)
	})
	in := hardeningSite(t, o, "")
	for _, p := range []string{"/private", "/rotate"} {
		wantCacheStatus(t, in.get(p), "stored")
	}
	// no-cache makes the request revalidate now, without waiting
	r := in.get("/private", "Cookie", "user=a", "Cache-Control", "no-cache")
	wantCacheStatus(t, r, "fwd-status=304")
	if cs := r.header.Get("Cache-Status"); strings.Contains(cs, "stored") {
		t.Fatalf("a 304 with private was stored: %q", cs)
	}
	other := in.get("/private", "Cookie", "user=b")
	if strings.Contains(other.header.Get("Cache-Status"), "hit") {
		t.Fatalf("another client got the private response as a hit: %q", other.header.Get("Cache-Status"))
	}
	r = in.get("/rotate", "Cache-Control", "no-cache")
	if got := r.header.Get("Set-Cookie"); got != "session=rotated" {
		t.Fatalf("the 304's Set-Cookie did not reach its client: %q (Cache-Status %q)", got, r.header.Get("Cache-Status"))
	}
	hit := in.get("/rotate")
	wantCacheStatus(t, hit, "hit")
	if got := hit.header.Get("Set-Cookie"); got != "" {
		t.Fatalf("the 304's Set-Cookie was stored and served to another client: %q", got)
	}
}

// Web cache deception through a real Caddy: with ttl *.css 1h,
// GET /account;x.css with the victim's cookie is not stored for others.
func TestHardeningWebCacheDeception(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if strings.HasPrefix(r.URL.Path, "/account") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "account of %s", r.Header.Get("Cookie"))
			return
		}
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, "body{}")
	})
	in := hardeningSite(t, o, "\t\tttl *.css 1h")
	victim := in.get("/account;x.css", "Cookie", "session=victim")
	if !strings.Contains(victim.body, "victim") {
		t.Fatalf("victim got %q", victim.body)
	}
	r := in.get("/account;x.css")
	if strings.Contains(r.body, "victim") {
		t.Fatalf("a cookie-less client got the victim's page: %q (Cache-Status %q)", r.body, r.header.Get("Cache-Status"))
	}
	in.get("/site.css")
	wantCacheStatus(t, in.get("/site.css"), "hit")
}
