package cache

import (
	"fmt"
	"net/http"
	"testing"
)

// RFC 9110 §12.5.4: among equal q-values the order of Accept-Language
// carries preference, so "en, fr" and "fr, en" are two variants, while
// "en,fr" and "en, fr" (whitespace only) are one.
func TestVaryAcceptLanguageOrder(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s|%d", r.Header.Get("Accept-Language"), n)
		return nil
	})
	wantBody(t, env.get("/l", "Accept-Language", "en, fr"), "en, fr|1")
	r := env.get("/l", "Accept-Language", "fr, en")
	wantStatus(t, r, "fwd=vary-miss")
	wantBody(t, r, "fr, en|2")
	r = env.get("/l", "Accept-Language", "en,fr")
	wantStatus(t, r, "hit")
	wantBody(t, r, "en, fr|1")
	r = env.get("/l", "Accept-Language", "FR ,En")
	wantStatus(t, r, "hit")
	wantBody(t, r, "fr, en|2")
	// the same preferences in another order: one variant (q sorts first)
	wantBody(t, env.get("/l", "Accept-Language", "de;q=0.5, en"), "de;q=0.5, en|3")
	r = env.get("/l", "Accept-Language", "en, de;q=0.5")
	wantStatus(t, r, "hit")
	wantBody(t, r, "de;q=0.5, en|3")
	env.wantHits(3)
}
