package policy

import (
	"net/http"
	"testing"
	"time"
)

func TestStaleIfError(t *testing.T) {
	tests := []struct {
		name      string
		age, life time.Duration
		resp, req string
		d         Defaults
		want      bool
	}{
		{"5861 §4 within response stale-if-error", 70 * sec, 10 * sec, "stale-if-error=60", "", Defaults{}, true},
		{"5861 §4 past response stale-if-error", 71 * sec, 10 * sec, "stale-if-error=60", "", Defaults{}, false},
		{"5861 §4 response window overrides larger default", 100 * sec, 10 * sec, "stale-if-error=60", "", Defaults{StaleIfError: time.Hour}, false},
		{"5861 §4 request stale-if-error when response has none", 70 * sec, 10 * sec, "", "stale-if-error=60", Defaults{}, true},
		{"5861 §4 request window past", 71 * sec, 10 * sec, "", "stale-if-error=60", Defaults{StaleIfError: time.Hour}, false},
		{"5861 §4 default window", 70 * sec, 10 * sec, "", "", Defaults{StaleIfError: time.Minute}, true},
		{"5861 §4 no window at all", 11 * sec, 10 * sec, "", "", Defaults{}, false},
		{"5861 §4 fresh response may always be served", 5 * sec, 10 * sec, "", "", Defaults{}, true},
		{"9111 §4.2.4 must-revalidate forbids stale-if-error", 11 * sec, 10 * sec, "must-revalidate, stale-if-error=60", "", Defaults{}, false},
		{"9111 §5.2.2.8 proxy-revalidate forbids stale-if-error", 11 * sec, 10 * sec, "proxy-revalidate", "", Defaults{StaleIfError: time.Hour}, false},
		{"9111 §5.2.2.10 s-maxage forbids stale-if-error", 11 * sec, 10 * sec, "s-maxage=10, stale-if-error=60", "", Defaults{}, false},
		{"9111 §4.2.4 no-cache forbids stale-if-error", 11 * sec, 10 * sec, "no-cache, stale-if-error=60", "", Defaults{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StaleIfError(tt.age, tt.life, cc(tt.resp), cc(tt.req), tt.d); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeepFor(t *testing.T) {
	withETag := http.Header{"Etag": {`"x"`}}
	withLM := http.Header{"Last-Modified": {httpDate(t0)}}
	tests := []struct {
		name  string
		h     http.Header
		cc    string
		d     Defaults
		reval time.Duration
		want  time.Duration
	}{
		{"5861 §3 response stale-while-revalidate", http.Header{}, "stale-while-revalidate=30", Defaults{}, time.Hour, 30 * sec},
		{"5861 §4 response stale-if-error larger", http.Header{}, "stale-while-revalidate=30, stale-if-error=90", Defaults{}, 0, 90 * sec},
		{"5861 §3 defaults when the response says nothing", http.Header{}, "", Defaults{StaleWhileRevalidate: 5 * sec, StaleIfError: 7 * sec}, 0, 7 * sec},
		{"5861 §3 response overrides defaults", http.Header{}, "stale-while-revalidate=1, stale-if-error=2", Defaults{StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour}, 0, 2 * sec},
		{"9111 §4.3.1 validator ETag keeps for revalidation", withETag, "", Defaults{}, time.Hour, time.Hour},
		{"9111 §4.3.1 validator Last-Modified keeps for revalidation", withLM, "", Defaults{StaleIfError: time.Minute}, time.Hour, time.Hour},
		{"9111 §4.3.1 no validator ignores revalidate", http.Header{}, "", Defaults{}, time.Hour, 0},
		{"9111 §5.2.2.2 must-revalidate drops stale windows", http.Header{}, "must-revalidate, stale-if-error=60", Defaults{}, time.Hour, 0},
		{"9111 §5.2.2.2 must-revalidate keeps validator time", withETag, "must-revalidate, stale-if-error=60", Defaults{}, time.Hour, time.Hour},
		{"9111 §5.2.2.10 s-maxage drops stale windows", http.Header{}, "s-maxage=5", Defaults{StaleWhileRevalidate: time.Hour}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KeepFor(tt.h, cc(tt.cc), tt.d, tt.reval); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
