package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// RFC 9213 §2.1 through a real Caddy: the targeted fields go on to clients
// by default (so a CDN in front sees them), an invalid CDN-Cache-Control is
// ignored in favour of Cache-Control, Surrogate-Control is removed unless
// forward_targeted is set, and strip_targeted removes them all.
func TestTargetedFieldsThroughCaddy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		switch r.URL.Path {
		case "/invalid":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("CDN-Cache-Control", `max-age="600"`)
		default:
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("CDN-Cache-Control", "max-age=600")
			w.Header().Set("Surrogate-Control", "max-age=600")
		}
		_, _ = fmt.Fprintf(w, "body-%d", n)
	})
	site := func(opts string) string {
		return fmt.Sprintf("cache {\n\t\tstorage memory\n\t\t%s\n\t}\n\treverse_proxy %s", opts, o.addr())
	}

	in := startCaddy(t, site(""))
	for i := range 2 {
		r := in.get("/")
		if r.body != "body-1" {
			t.Fatalf("default, response %d: body %q, want the stored body-1", i+1, r.body)
		}
		if got := r.header.Get("CDN-Cache-Control"); got != "max-age=600" {
			t.Fatalf("default, response %d: CDN-Cache-Control %q, want it forwarded", i+1, got)
		}
		if got := r.header.Get("Surrogate-Control"); got != "" {
			t.Fatalf("default, response %d: Surrogate-Control %q forwarded", i+1, got)
		}
	}
	in.get("/invalid")
	if r := in.get("/invalid"); r.body != "body-3" {
		t.Fatalf("invalid CDN-Cache-Control: body %q, want body-3 (Cache-Control: no-store decides)", r.body)
	}

	in.reload(site("forward_targeted"))
	if r := in.get("/fwd"); r.header.Get("Surrogate-Control") != "max-age=600" || r.header.Get("CDN-Cache-Control") != "max-age=600" {
		t.Fatalf("forward_targeted: Surrogate-Control %q, CDN-Cache-Control %q, want both", r.header.Get("Surrogate-Control"), r.header.Get("CDN-Cache-Control"))
	}

	in.reload(site("strip_targeted"))
	if r := in.get("/strip"); r.header.Get("Surrogate-Control") != "" || r.header.Get("CDN-Cache-Control") != "" {
		t.Fatalf("strip_targeted: Surrogate-Control %q, CDN-Cache-Control %q, want neither", r.header.Get("Surrogate-Control"), r.header.Get("CDN-Cache-Control"))
	}
}
