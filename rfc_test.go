package cache

import (
	"net/http"
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
