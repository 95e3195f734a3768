package cache

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// RFC 9110 §13.1.3 with RFC 9111 §4.3.2: a client's If-Modified-Since is
// evaluated against a fresh stored response that has no Last-Modified by
// its Date: a 304 from the cache when the date is not earlier than Date, the
// stored 200 when Date is later (the response changed since).
func TestIfModifiedSinceUsesDate(t *testing.T) {
	date := time.Now().UTC().Truncate(time.Second)
	env := newEnv(t, "", fixed("Cache-Control", "max-age=3600", "Date", date.Format(http.TimeFormat)))
	env.get("/")
	for _, tt := range []struct {
		ims  time.Time
		want int
	}{
		{date, http.StatusNotModified},
		{date.Add(time.Hour), http.StatusNotModified},
		{date.Add(-3000 * time.Second), http.StatusOK},
	} {
		r := env.get("/", "If-Modified-Since", tt.ims.Format(http.TimeFormat))
		if r.status != tt.want {
			t.Errorf("If-Modified-Since %s with Date %s: status %d, want %d", tt.ims.Format(http.TimeFormat), date.Format(http.TimeFormat), r.status, tt.want)
		}
	}
	// an If-Modified-Since that is not an HTTP-date (one-digit hour) is ignored
	bad := "Thu, 01 Jan 2099 1:00:00 GMT"
	if r := env.get("/", "If-Modified-Since", bad); r.status != http.StatusOK {
		t.Errorf("If-Modified-Since %q: status %d, want 200 (not an HTTP-date, ignored)", bad, r.status)
	}
	env.wantHits(1)
}

// RFC 9110 §12.5.4 with RFC 9111 §4.1: a stored variant whose
// Content-Language is the client's preferred language serves a request
// whose Accept-Language differs; one that is acceptable but not preferred
// does not. explain says the same.
func TestVaryAcceptLanguageByQValue(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		lang := "de"
		if strings.HasPrefix(r.Header.Get("Accept-Language"), "fr") {
			lang = "fr"
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language, X-Other")
		w.Header().Set("Content-Language", lang)
		_, _ = fmt.Fprintf(w, "%s-%d", lang, n)
		return nil
	})
	wantBody(t, env.get("/", "Accept-Language", "en, de"), "de-1")
	r := env.get("/", "Accept-Language", "fr;q=0.5, de;q=1.0")
	wantBody(t, r, "de-1")
	if !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("Cache-Status %q, want a hit", r.header.Get("Cache-Status"))
	}
	ex := func(lang string, other ...string) explainResult {
		req := httptest.NewRequest(http.MethodGet, env.srv.URL+"/", nil)
		req.Header.Set("Accept-Language", lang)
		if len(other) > 0 {
			req.Header.Set("X-Other", other[0])
		}
		return env.h.explain(context.Background(), req)
	}
	if res := ex("fr;q=0.5, de;q=1.0"); res.Outcome != outcomeHit || res.SelectedBy != "Content-Language" {
		t.Fatalf("explain: %+v, want a hit selected by Content-Language", res)
	}
	// de is acceptable but fr is preferred: the origin may have fr
	wantBody(t, env.get("/", "Accept-Language", "fr, de;q=0.5"), "fr-2")
	if res := ex("it, de;q=0.5"); res.Outcome != outcomeMiss {
		t.Fatalf("explain for a non-preferred language: %+v, want a miss", res)
	}
	// the other selecting field must still match
	wantBody(t, env.get("/", "Accept-Language", "de;q=0.9", "X-Other", "1"), "de-3")
	if res := ex("de;q=0.9", "2"); res.Outcome != outcomeMiss {
		t.Fatalf("explain with another X-Other: %+v, want a miss", res)
	}
	env.wantHits(3)
}

// RFC 9111 §5.1 and §5.3 in the handler: the first member of a list-valued
// Age counts, an invalid Age is ignored, and an Expires that is not an
// HTTP-date (RFC 9110 §5.6.7) means already expired.
func TestAgeAndExpiresParsing(t *testing.T) {
	date := time.Now().UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		hdr    []string
		reused bool
	}{
		{"9111 §5.1 Age 0, 0", []string{"Cache-Control", "max-age=3600", "Age", "0, 0"}, true},
		{"9111 §5.1 two Age: 0 lines", []string{"Cache-Control", "max-age=3600", "Age", "0", "Age", "0"}, true},
		{"9111 §5.1 Age 7200, 0", []string{"Cache-Control", "max-age=3600", "Age", "7200, 0"}, false},
		{"9111 §5.1 Age abc ignored", []string{"Cache-Control", "max-age=3600", "Age", "abc"}, true},
		{"9111 §5.1 Age -1 ignored", []string{"Cache-Control", "max-age=3600", "Age", "-1"}, true},
		{"9111 §5.1 Age 1.5 ignored", []string{"Cache-Control", "max-age=3600", "Age", "1.5"}, true},
		{"9111 §5.3 Expires with a one-digit hour", []string{"Date", date, "Expires", "Thu, 01 Jan 2099 1:00:00 GMT"}, false},
		{"9111 §5.3 Expires with two spaces", []string{"Date", date, "Expires", "Thu, 01  Jan 2099 01:00:00 GMT"}, false},
		{"9110 §5.6.7 Expires in lower case", []string{"Date", date, "Expires", "thu, 01 jan 2099 00:00:00 gmt"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, "", fixed(tt.hdr...))
			env.get("/")
			want := "body-2"
			if tt.reused {
				want = "body-1"
			}
			wantBody(t, env.get("/"), want)
		})
	}
}
