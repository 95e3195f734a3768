package policy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestFreshnessLifetime(t *testing.T) {
	only200 := func(s int) bool { return s == 200 }
	tests := []struct {
		name      string
		status    int
		h         http.Header
		cc        string
		cacheable func(int) bool
		want      time.Duration
		src       Source
	}{
		{"9111 §4.2.1 s-maxage overrides max-age for shared caches", 200, http.Header{}, "max-age=10, s-maxage=20", nil, 20 * sec, SourceSMaxAge},
		{"9111 §4.2.1 s-maxage=0 overrides max-age", 200, http.Header{}, "max-age=10, s-maxage=0", nil, 0, SourceSMaxAge},
		{"9111 §4.2.1 max-age overrides Expires", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {httpDate(t0.Add(time.Hour))}}, "max-age=10", nil, 10 * sec, SourceMaxAge},
		{"9111 §4.2.1 invalid max-age is stale even with Expires", 200, http.Header{"Expires": {httpDate(t0.Add(time.Hour))}}, "max-age=x", nil, 0, SourceMaxAge},
		{"9111 §4.2.1 Expires minus Date", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {httpDate(t0.Add(90 * sec))}}, "", nil, 90 * sec, SourceExpires},
		{"9111 §4.2.1 Expires minus response time without Date", 200, http.Header{"Expires": {httpDate(t0.Add(30 * sec))}}, "", nil, 30 * sec, SourceExpires},
		{"9111 §4.2.1 Expires minus response time with invalid Date", 200, http.Header{"Date": {"yesterday"}, "Expires": {httpDate(t0.Add(30 * sec))}}, "", nil, 30 * sec, SourceExpires},
		{"9111 §5.3 invalid Expires 0 means already expired", 200, http.Header{"Expires": {"0"}, "Last-Modified": {httpDate(t0.Add(-100 * time.Hour))}}, "", nil, 0, SourceExpires},
		{"9111 §5.3 Expires in the past is 0", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {httpDate(t0.Add(-time.Hour))}}, "", nil, 0, SourceExpires},
		{"9111 §5.3 Expires in RFC 850 format", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {rfc850Date(t0.Add(time.Minute))}}, "", nil, time.Minute, SourceExpires},
		{"9111 §5.3 Expires in asctime format", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {t0.Add(time.Minute).Format(time.ANSIC)}}, "", nil, time.Minute, SourceExpires},
		{"9111 §4.2.1 differing Expires lines are stale", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {httpDate(t0.Add(time.Hour)), httpDate(t0.Add(2 * time.Hour))}}, "", nil, 0, SourceExpires},
		{"9111 §4.2.1 Expires wins over heuristic and no-cache", 200, http.Header{"Date": {httpDate(t0)}, "Expires": {httpDate(t0.Add(time.Minute))}, "Last-Modified": {httpDate(t0.Add(-100 * time.Hour))}}, "no-cache", nil, time.Minute, SourceExpires},
		{"9111 §4.2.2 heuristic 10% of Date minus Last-Modified", 200, http.Header{"Date": {httpDate(t0)}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, "", nil, time.Hour, SourceHeuristic},
		{"9111 §4.2.2 heuristic from response time without Date", 200, http.Header{"Last-Modified": {httpDate(t0.Add(-100 * sec))}}, "", nil, 10 * sec, SourceHeuristic},
		{"9111 §4.2.2 heuristic capped at 24h", 200, http.Header{"Date": {httpDate(t0)}, "Last-Modified": {httpDate(t0.AddDate(-3, 0, 0))}}, "", nil, 24 * time.Hour, SourceHeuristic},
		{"9111 §4.2.2 Last-Modified in the future gives 0", 200, http.Header{"Date": {httpDate(t0)}, "Last-Modified": {httpDate(t0.Add(time.Hour))}}, "", nil, 0, SourceHeuristic},
		{"9111 §4.2.2 no heuristic without Last-Modified", 200, http.Header{"Date": {httpDate(t0)}}, "", nil, 0, SourceNone},
		{"9111 §4.2.2 no heuristic with invalid Last-Modified", 200, http.Header{"Last-Modified": {"last week"}}, "", nil, 0, SourceNone},
		{"9111 §4.2.2 no heuristic with no-cache", 200, http.Header{"Last-Modified": {httpDate(t0.Add(-time.Hour))}}, "no-cache", nil, 0, SourceNone},
		{"9110 §15.1 no heuristic for status 302", 302, http.Header{"Last-Modified": {httpDate(t0.Add(-time.Hour))}}, "", nil, 0, SourceNone},
		{"9110 §15.1 heuristic for 404 by default", 404, http.Header{"Last-Modified": {httpDate(t0.Add(-time.Hour))}}, "", nil, 6 * time.Minute, SourceHeuristic},
		{"9110 §15.1 custom cacheable set", 404, http.Header{"Last-Modified": {httpDate(t0.Add(-time.Hour))}}, "", only200, 0, SourceNone},
		{"9111 §5.2.2.9 public makes any status heuristically cacheable", 302, http.Header{"Last-Modified": {httpDate(t0.Add(-time.Hour))}}, "public", nil, 6 * time.Minute, SourceHeuristic},
		{"9213 §2.2 targeted field ignores Expires", 200, http.Header{"Expires": {httpDate(t0.Add(time.Hour))}}, "targeted", nil, 0, SourceNone},
		{"9111 §4.2.1 nothing applies", 200, http.Header{}, "", nil, 0, SourceNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cc Directives
			if tt.cc == "targeted" {
				cc.Targeted = true
			} else {
				cc = ParseCacheControl([]string{tt.cc})
			}
			got, src := FreshnessLifetime(tt.status, tt.h, cc, t0, tt.cacheable)
			if got != tt.want || src != tt.src {
				t.Errorf("got %v %s, want %v %s", got, src, tt.want, tt.src)
			}
		})
	}
}

func TestInitialAge(t *testing.T) {
	req, resp := t0.Add(-2*sec), t0
	tests := []struct {
		name  string
		h     http.Header
		reqT  time.Time
		respT time.Time
		want  time.Duration
	}{
		{"9111 §4.2.3 no Age no Date is response_delay", http.Header{}, req, resp, 2 * sec},
		{"9111 §4.2.3 corrected_age_value = age_value + response_delay", http.Header{"Age": {"100"}, "Date": {httpDate(t0)}}, req, resp, 102 * sec},
		{"9111 §4.2.3 apparent_age wins when larger", http.Header{"Age": {"10"}, "Date": {httpDate(t0.Add(-60 * sec))}}, req, resp, 60 * sec},
		{"9111 §4.2.3 apparent_age is never negative", http.Header{"Date": {httpDate(t0.Add(time.Hour))}}, req, resp, 2 * sec},
		// RFC 9111 §5.1: a list-valued Age counts by its first member; an
		// Age that is not a non-negative integer is ignored (as if absent:
		// only response_delay, 2s, counts).
		{"9111 §5.1 Age 0, 0 is its first member", http.Header{"Age": {"0, 0"}}, req, resp, 2 * sec},
		{"9111 §5.1 two Age: 0 lines are the first", http.Header{"Age": {"0", "0"}}, req, resp, 2 * sec},
		{"9111 §5.1 Age 7200, 0: first member old", http.Header{"Age": {"7200, 0"}}, req, resp, 7202 * sec},
		{"9111 §5.1 Age 0, 7200: first member fresh", http.Header{"Age": {"0,7200"}}, req, resp, 2 * sec},
		{"9111 §5.1 two Age lines 5 and 7: first", http.Header{"Age": {"5", "7"}}, req, resp, 7 * sec},
		{"9111 §5.1 two Age lines 7200 and 0: first", http.Header{"Age": {"7200", "0"}}, req, resp, 7202 * sec},
		{"9111 §5.1 Age abc is ignored", http.Header{"Age": {"abc"}}, req, resp, 2 * sec},
		{"9111 §5.1 Age -1 is ignored", http.Header{"Age": {"-1"}}, req, resp, 2 * sec},
		{"9111 §5.1 Age 1.5 is ignored", http.Header{"Age": {"1.5"}}, req, resp, 2 * sec},
		{"9111 §5.1 Age 7.0 is ignored", http.Header{"Age": {"7.0"}}, req, resp, 2 * sec},
		{"9111 §5.1 Age with a parameter is ignored", http.Header{"Age": {"7;a=b"}}, req, resp, 2 * sec},
		{"9111 §5.1 empty Age is ignored", http.Header{"Age": {""}}, req, resp, 2 * sec},
		{"9111 §5.1 invalid first member: whole field ignored", http.Header{"Age": {"abc, 7200"}}, req, resp, 2 * sec},
		{"9111 §5.1 ignored Age leaves apparent_age", http.Header{"Age": {"abc"}, "Date": {httpDate(t0.Add(-60 * sec))}}, req, resp, 60 * sec},
		{"9111 §5.1 Age with surrounding whitespace is valid", http.Header{"Age": {" 7 "}}, req, resp, 9 * sec},
		{"9111 §1.2.2 Age saturates at 2^31", http.Header{"Age": {"999999999999999999"}}, resp, resp, MaxDelta},
		{"9111 §4.2.3 negative response_delay counts as 0", http.Header{"Age": {"3"}}, resp.Add(time.Minute), resp, 3 * sec},
		{"9111 §4.2.3 invalid Date ignored", http.Header{"Date": {"nope"}}, resp, resp, 0},
		{"9111 §4.2.3 zero times", http.Header{}, time.Time{}, time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InitialAge(tt.h, tt.reqT, tt.respT); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func cc(s string) Directives { return ParseCacheControl([]string{s}) }

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name      string
		age, life time.Duration
		resp, req string
		d         Defaults
		want      Use
		reason    string
	}{
		{"9111 §4.2 fresh", 5 * sec, 10 * sec, "max-age=10", "", Defaults{}, UseFresh, "fresh"},
		{"9111 §4.2 age equal to lifetime is stale", 10 * sec, 10 * sec, "max-age=10", "", Defaults{}, Revalidate, "stale by 0s"},
		{"9111 §4.2.4 stale must be revalidated", 22 * sec, 10 * sec, "max-age=10", "", Defaults{}, Revalidate, "stale by 12s"},
		{"9111 §5.2.2.4 response no-cache revalidates even when fresh", 0, time.Hour, "no-cache", "", Defaults{}, Revalidate, "response no-cache"},
		{"9111 §5.2.2.4 qualified no-cache does not force revalidation", 0, time.Hour, `no-cache="Set-Cookie"`, "", Defaults{}, UseFresh, "fresh"},
		{"9111 §5.2.1.4 request no-cache revalidates", 0, time.Hour, "", "no-cache", Defaults{}, Revalidate, "request no-cache"},
		{"9111 §5.2.1.1 request max-age exceeded", 11 * sec, time.Hour, "", "max-age=10", Defaults{}, Revalidate, "request max-age=10 exceeded"},
		{"9111 §5.2.1.1 request max-age equal is acceptable", 10 * sec, time.Hour, "", "max-age=10", Defaults{}, UseFresh, "fresh"},
		{"9111 §5.2.1.1 request max-age=0 revalidates", sec, time.Hour, "", "max-age=0", Defaults{}, Revalidate, "request max-age=0 exceeded"},
		{"9111 §5.2.1.3 min-fresh not met", 50 * sec, 60 * sec, "", "min-fresh=30", Defaults{}, Revalidate, "min-fresh=30 not met"},
		{"9111 §5.2.1.3 min-fresh met", 30 * sec, 60 * sec, "", "min-fresh=30", Defaults{}, UseFresh, "fresh"},
		{"9111 §5.2.2.2 must-revalidate forbids stale", 20 * sec, 10 * sec, "must-revalidate", "max-stale", Defaults{StaleWhileRevalidate: time.Hour}, Revalidate, "must-revalidate"},
		{"9111 §5.2.2.8 proxy-revalidate forbids stale in a shared cache", 20 * sec, 10 * sec, "proxy-revalidate, stale-while-revalidate=60", "", Defaults{}, Revalidate, "proxy-revalidate"},
		{"9111 §5.2.2.10 s-maxage implies proxy-revalidate", 20 * sec, 10 * sec, "s-maxage=10", "max-stale=100", Defaults{}, Revalidate, "s-maxage"},
		{"9111 §5.2.2.2 must-revalidate allows fresh", 5 * sec, 10 * sec, "must-revalidate", "", Defaults{}, UseFresh, "fresh"},
		{"9111 §5.2.1.2 max-stale covers staleness", 20 * sec, 10 * sec, "", "max-stale=10", Defaults{}, UseStale, "stale by 10s, max-stale"},
		{"9111 §5.2.1.2 max-stale too small", 21 * sec, 10 * sec, "", "max-stale=10", Defaults{}, Revalidate, "stale by 11s"},
		{"9111 §5.2.1.2 bare max-stale accepts any staleness", 1000 * time.Hour, 10 * sec, "", "max-stale", Defaults{}, UseStale, "stale by 3599990s, max-stale"},
		{"5861 §3 within stale-while-revalidate", 40 * sec, 10 * sec, "stale-while-revalidate=30", "", Defaults{}, UseStaleRevalidate, "stale by 30s, stale-while-revalidate"},
		{"5861 §3 past stale-while-revalidate", 41 * sec, 10 * sec, "stale-while-revalidate=30", "", Defaults{}, Revalidate, "stale by 31s"},
		{"5861 §3 default stale-while-revalidate", 40 * sec, 10 * sec, "", "", Defaults{StaleWhileRevalidate: time.Minute}, UseStaleRevalidate, "stale by 30s, stale-while-revalidate"},
		{"5861 §3 response stale-while-revalidate=0 overrides default", 11 * sec, 10 * sec, "stale-while-revalidate=0", "", Defaults{StaleWhileRevalidate: time.Minute}, Revalidate, "stale by 1s"},
		{"9111 §5.2.1.4 request no-cache beats stale-while-revalidate", 11 * sec, 10 * sec, "stale-while-revalidate=60", "no-cache", Defaults{}, Revalidate, "request no-cache"},
		{"9111 §5.2.1.2 max-stale preferred over stale-while-revalidate", 11 * sec, 10 * sec, "stale-while-revalidate=60", "max-stale=60", Defaults{}, UseStale, "stale by 1s, max-stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			use, reason := Evaluate(tt.age, tt.life, cc(tt.resp), cc(tt.req), tt.d)
			if use != tt.want || reason != tt.reason {
				t.Errorf("got %v %q, want %v %q", use, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestUseString(t *testing.T) {
	for u, want := range map[Use]string{UseFresh: "fresh", UseStale: "stale", UseStaleRevalidate: "stale-while-revalidate", Revalidate: "revalidate", Use(99): "unknown"} {
		if got := u.String(); got != want {
			t.Errorf("%d: got %q, want %q", int(u), got, want)
		}
	}
}

func TestStorable(t *testing.T) {
	etag := http.Header{"Etag": {`"v1"`}}
	tests := []struct {
		name   string
		req    http.Header
		status int
		resp   http.Header
		rules  StoreRules
		ok     bool
		reason string
	}{
		{"9111 §3 heuristically cacheable 200", http.Header{}, 200, http.Header{}, StoreRules{}, true, ""},
		{"9111 §3 max-age", http.Header{}, 200, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, true, ""},
		{"9111 §3 status must be final", http.Header{}, 103, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, false, "status 103"},
		{"9111 §3 206 is not stored", http.Header{}, 206, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, false, "status 206"},
		{"9111 §3 304 is not stored", http.Header{}, 304, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, false, "status 304"},
		{"9111 §5.2.1.5 request no-store", http.Header{"Cache-Control": {"no-store"}}, 200, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, false, "request no-store"},
		{"9111 §5.2.2.5 response no-store", http.Header{}, 200, http.Header{"Cache-Control": {"max-age=60, no-store"}}, StoreRules{}, false, "no-store"},
		{"9111 §5.2.2.3 must-understand overrides no-store for an understood status", http.Header{}, 200, http.Header{"Cache-Control": {"must-understand, no-store, max-age=60"}}, StoreRules{}, true, ""},
		{"9111 §5.2.2.3 must-understand with an unknown status", http.Header{}, 299, http.Header{"Cache-Control": {"must-understand, no-store, max-age=60"}}, StoreRules{}, false, "must-understand with status 299"},
		{"9111 §5.2.2.3 must-understand does not override request no-store", http.Header{"Cache-Control": {"no-store"}}, 200, http.Header{"Cache-Control": {"must-understand, no-store"}}, StoreRules{}, false, "request no-store"},
		{"9111 §5.2.2.7 private is not stored by a shared cache", http.Header{}, 200, http.Header{"Cache-Control": {"private, max-age=60"}}, StoreRules{}, false, "private"},
		{"9111 §5.2.2.7 qualified private is stored", http.Header{}, 200, http.Header{"Cache-Control": {`private="X-User", max-age=60`}}, StoreRules{}, true, ""},
		{"9111 §3.5 Authorization without public", http.Header{"Authorization": {"Bearer x"}}, 200, http.Header{"Cache-Control": {"max-age=60"}}, StoreRules{}, false, "Authorization without public"},
		{"9111 §3.5 Authorization with public", http.Header{"Authorization": {"Bearer x"}}, 200, http.Header{"Cache-Control": {"public"}}, StoreRules{}, true, ""},
		{"9111 §3.5 Authorization with s-maxage", http.Header{"Authorization": {"Bearer x"}}, 200, http.Header{"Cache-Control": {"s-maxage=5"}}, StoreRules{}, true, ""},
		{"9111 §3.5 Authorization with must-revalidate", http.Header{"Authorization": {"Bearer x"}}, 200, http.Header{"Cache-Control": {"must-revalidate, max-age=5"}}, StoreRules{}, true, ""},
		{"9111 §4.1 Vary: * is not stored", http.Header{}, 200, http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"Accept, *"}}, StoreRules{}, false, "Vary: *"},
		{"9111 §4.1 Vary: * in a second line", http.Header{}, 200, http.Header{"Vary": {"Accept", " * "}}, StoreRules{}, false, "Vary: *"},
		{"9111 §3 Set-Cookie not stored by default", http.Header{}, 200, http.Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}}, StoreRules{}, false, "Set-Cookie"},
		{"9111 §3 Set-Cookie stored when allowed", http.Header{}, 200, http.Header{"Set-Cookie": {"a=b"}}, StoreRules{StoreSetCookie: true}, true, ""},
		{"9111 §5.2.2.4 Set-Cookie named by no-cache is stripped, so stored", http.Header{}, 200, http.Header{"Cache-Control": {`no-cache="set-cookie"`}, "Set-Cookie": {"a=b"}}, StoreRules{}, true, ""},
		{"9111 §5.2.2.7 Set-Cookie named by private is stripped, so stored", http.Header{}, 200, http.Header{"Cache-Control": {`private="Set-Cookie"`}, "Set-Cookie": {"a=b"}}, StoreRules{}, true, ""},
		{"9111 §3 302 without explicit freshness", http.Header{}, 302, http.Header{}, StoreRules{}, false, "no explicit freshness for status 302"},
		{"9111 §3 302 with Expires", http.Header{}, 302, http.Header{"Expires": {"0"}}, StoreRules{}, true, ""},
		{"9213 §2.2 Expires ignored under a targeted field", http.Header{}, 302, http.Header{"Expires": {httpDate(t0)}, "Cdn-Cache-Control": {"foo"}}, StoreRules{}, false, "no explicit freshness for status 302"},
		{"9111 §3 302 with public", http.Header{}, 302, http.Header{"Cache-Control": {"public"}}, StoreRules{}, true, ""},
		{"9111 §3 302 with s-maxage", http.Header{}, 302, http.Header{"Cache-Control": {"s-maxage=0"}}, StoreRules{}, true, ""},
		{"9111 §3 302 with forced TTL", http.Header{}, 302, http.Header{}, StoreRules{ForcedTTL: true}, true, ""},
		{"9110 §15.1 custom cacheable set admits 302", http.Header{}, 302, http.Header{}, StoreRules{Cacheable: func(s int) bool { return s == 302 }}, true, ""},
		{"9110 §15.1 custom cacheable set rejects 200", http.Header{}, 200, http.Header{}, StoreRules{Cacheable: func(s int) bool { return s == 302 }}, false, "no explicit freshness for status 200"},
		{"9111 §4.3 no-cache with validator is stored for revalidation", http.Header{}, 302, http.Header{"Cache-Control": {"no-cache"}, "Etag": etag["Etag"]}, StoreRules{}, true, ""},
		{"9111 §4.3 no-cache with Last-Modified is stored", http.Header{}, 200, http.Header{"Cache-Control": {"no-cache"}, "Last-Modified": {httpDate(t0)}}, StoreRules{}, true, ""},
		{"9111 §4.3 no-cache without validator is useless", http.Header{}, 200, http.Header{"Cache-Control": {"no-cache, max-age=60"}}, StoreRules{}, false, "no-cache without validator"},
		{"9111 §4.2.1 max-age=0 with validator is stored", http.Header{}, 302, http.Header{"Cache-Control": {"max-age=0"}, "Etag": etag["Etag"]}, StoreRules{}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqCC := RequestDirectives(tt.req)
			respCC, _ := ResponseDirectives(tt.resp, []string{"CDN-Cache-Control"})
			ok, reason := Storable(tt.req, reqCC, tt.status, tt.resp, respCC, tt.rules)
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("got %v %q, want %v %q", ok, reason, tt.ok, tt.reason)
			}
			if !ok && (reason == "" || strings.TrimSpace(reason) != reason) {
				t.Errorf("refusal without a clean reason: %q", reason)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	resp := cc("public, max-age=60, stale-while-revalidate=30")
	var req Directives
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Evaluate(10*sec, 60*sec, resp, req, Defaults{})
		}
	})
	b.Run("stale", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Evaluate(70*sec, 60*sec, resp, req, Defaults{})
		}
	})
}
