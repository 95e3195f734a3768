package policy

import (
	"net/http"
	"net/textproto"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// formatDirectives writes d back as a Cache-Control value in the canonical
// form; parsing it must give d again.
func formatDirectives(d Directives) string {
	var parts []string
	flag := func(on bool, name string) {
		if on {
			parts = append(parts, name)
		}
	}
	delta := func(on bool, name string, v time.Duration) {
		if on {
			parts = append(parts, name+"="+strconv.FormatInt(int64(v/time.Second), 10))
		}
	}
	flag(d.NoStore, "no-store")
	flag(d.NoCache, "no-cache")
	if len(d.NoCacheFields) > 0 {
		parts = append(parts, `no-cache="`+strings.Join(d.NoCacheFields, ", ")+`"`)
	}
	flag(d.Private, "private")
	if len(d.PrivateFields) > 0 {
		parts = append(parts, `private="`+strings.Join(d.PrivateFields, ", ")+`"`)
	}
	flag(d.Public, "public")
	flag(d.MustRevalidate, "must-revalidate")
	flag(d.ProxyRevalidate, "proxy-revalidate")
	flag(d.MustUnderstand, "must-understand")
	flag(d.NoTransform, "no-transform")
	flag(d.Immutable, "immutable")
	flag(d.OnlyIfCached, "only-if-cached")
	delta(d.HasMaxAge, "max-age", d.MaxAge)
	delta(d.HasSMaxAge, "s-maxage", d.SMaxAge)
	delta(d.HasMinFresh, "min-fresh", d.MinFresh)
	if d.MaxStaleAny {
		parts = append(parts, "max-stale")
	} else {
		delta(d.HasMaxStale, "max-stale", d.MaxStale)
	}
	delta(d.HasSWR, "stale-while-revalidate", d.StaleWhileRevalidate)
	delta(d.HasSIE, "stale-if-error", d.StaleIfError)
	return strings.Join(parts, ", ")
}

func checkDirectives(t *testing.T, d Directives) {
	t.Helper()
	durs := []struct {
		name string
		has  bool
		v    time.Duration
	}{
		{"max-age", d.HasMaxAge, d.MaxAge},
		{"s-maxage", d.HasSMaxAge, d.SMaxAge},
		{"min-fresh", d.HasMinFresh, d.MinFresh},
		{"max-stale", d.HasMaxStale, d.MaxStale},
		{"stale-while-revalidate", d.HasSWR, d.StaleWhileRevalidate},
		{"stale-if-error", d.HasSIE, d.StaleIfError},
	}
	for _, x := range durs {
		if x.v < 0 || x.v > MaxDelta || x.v%time.Second != 0 {
			t.Errorf("%s out of range: %v", x.name, x.v)
		}
		if !x.has && x.v != 0 {
			t.Errorf("%s set without its flag: %v", x.name, x.v)
		}
	}
	if d.MaxStaleAny && (!d.HasMaxStale || d.MaxStale != MaxDelta) {
		t.Errorf("bare max-stale inconsistent: %+v", d)
	}
	for _, fs := range [][]string{d.NoCacheFields, d.PrivateFields} {
		for i, f := range fs {
			if f == "" || !validToken(f) || textproto.CanonicalMIMEHeaderKey(f) != f {
				t.Errorf("field name %q not a canonical token", f)
			}
			if slices.Contains(fs[:i], f) {
				t.Errorf("duplicate field name %q", f)
			}
		}
	}
	if d.Targeted {
		t.Error("ParseCacheControl set Targeted")
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"", "public, max-age=60", `max-age="60"`, `no-cache="Set-Cookie, X-Foo"`, `private=x-a`,
		"max-age=10, max-age=20", "max-age=99999999999999999999", "max-stale", "max-stale=5, max-stale",
		`foo="a\"b, c", s-maxage=1`, `no-cache="a`, "  ,  ,", "MAX-AGE=5;x", "stale-while-revalidate=30, stale-if-error=60",
		"must-understand, no-store", "min-fresh=1, min-fresh=2", "\x00\xff=\"\\", `max-age=\`, `max-age="\`,
	} {
		f.Add(s, "")
	}
	f.Add("max-age=5", "max-age=6")
	f.Add(`no-cache="a,`, `b", public`)
	f.Fuzz(func(t *testing.T, a, b string) {
		d := ParseCacheControl([]string{a, b})
		checkDirectives(t, d)
		if again := ParseCacheControl([]string{a, b}); !reflect.DeepEqual(d, again) {
			t.Fatalf("not deterministic: %+v vs %+v", d, again)
		}
		// The canonical form of the result parses to the same directives.
		s := formatDirectives(d)
		if re := ParseCacheControl([]string{s}); !reflect.DeepEqual(normFields(d), normFields(re)) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", []string{a, b}, s, re, d)
		}
	})
}

// normFields makes nil and empty field lists compare equal.
func normFields(d Directives) Directives {
	if len(d.NoCacheFields) == 0 {
		d.NoCacheFields = nil
	}
	if len(d.PrivateFields) == 0 {
		d.PrivateFields = nil
	}
	return d
}

func FuzzVaryNames(f *testing.F) {
	for _, s := range []string{"", "*", "Accept-Encoding", "accept, ACCEPT,  origin", "a, *, b", " , ,", "x y, \"q\"", "\x00,\xff"} {
		f.Add(s, "")
	}
	f.Add("Accept", "Origin, *")
	f.Fuzz(func(t *testing.T, a, b string) {
		names, star := VaryNames(http.Header{"Vary": {a, b}})
		wantStar := false
		for _, line := range []string{a, b} {
			for _, e := range strings.Split(line, ",") {
				if strings.Trim(e, " \t") == "*" {
					wantStar = true
				}
			}
		}
		if star != wantStar {
			t.Errorf("star = %v, want %v", star, wantStar)
		}
		for i, n := range names {
			if n == "" || n == "*" || strings.ContainsAny(n, ",") || n != strings.Trim(n, " \t") {
				t.Errorf("bad name %q", n)
			}
			if textproto.CanonicalMIMEHeaderKey(n) != n {
				t.Errorf("name %q not canonical", n)
			}
			if slices.Contains(names[:i], n) {
				t.Errorf("duplicate name %q", n)
			}
		}
	})
}

func FuzzNormalizeVaryValue(f *testing.F) {
	for _, s := range []string{"", "gzip, br", "br,gzip", "GZIP ; q = 0.5", `"a,b", c`, "  x  ", "a  b", "a,,b", "\t", `"unterminated, x`} {
		f.Add("Accept-Encoding", s, "")
		f.Add("X-Custom", s, "")
	}
	f.Add("Accept", "text/html", "application/json;q=0.9")
	f.Add("Accept-Language", "en;q=0.5, fr", "de;Q=1.0")
	f.Add("Accept-Charset", "utf-8;q=2", "latin1")
	f.Fuzz(func(t *testing.T, name, a, b string) {
		got := NormalizeVaryValue(name, []string{a, b})
		if got != strings.Trim(got, " \t") {
			t.Errorf("%q not trimmed", got)
		}
		// Adding an empty field line changes nothing.
		if one, more := NormalizeVaryValue(name, []string{a}), NormalizeVaryValue(name, []string{a, ""}); one != more {
			t.Errorf("[%q] -> %q but [%q, \"\"] -> %q", a, one, a, more)
		}
		if strings.Contains(a+b, `"`) {
			return // quote-aware splitting is not idempotent with unbalanced quotes
		}
		if again := NormalizeVaryValue(name, []string{got}); again != got {
			t.Errorf("not idempotent: %q -> %q -> %q", []string{a, b}, got, again)
		}
		if varyFieldOrder(name) == orderSet {
			if swapped := NormalizeVaryValue(name, []string{b, a}); swapped != got {
				t.Errorf("order matters for %s: %q vs %q", name, got, swapped)
			}
		}
	})
}

func FuzzFreshnessLifetime(f *testing.F) {
	date := httpDate(t0)
	f.Add(200, "max-age=60", "", date, "", "", int64(0), int64(2))
	f.Add(200, "", httpDate(t0.Add(time.Hour)), date, "", "10", int64(30), int64(1))
	f.Add(200, "", "0", "", httpDate(t0.Add(-48*time.Hour)), "", int64(100), int64(0))
	f.Add(302, "public", "", date, httpDate(t0.AddDate(-5, 0, 0)), "999999999999", int64(1<<40), int64(-5))
	f.Add(404, "no-cache, s-maxage=1, stale-if-error=5", "garbage", "garbage", "garbage", "-1", int64(0), int64(0))
	f.Add(206, "must-understand, no-store", t0.Format(time.RFC850), t0.Format(time.ANSIC), "", "", int64(5), int64(5))
	f.Fuzz(func(t *testing.T, status int, ccv, expires, datev, lm, age string, ageSecs, delaySecs int64) {
		h := http.Header{}
		for k, v := range map[string]string{"Cache-Control": ccv, "Expires": expires, "Date": datev, "Last-Modified": lm, "Age": age} {
			if v != "" {
				h.Set(k, v)
			}
		}
		d, _ := ResponseDirectives(h, nil)
		life, src := FreshnessLifetime(status, h, d, t0, nil)
		if life < 0 {
			t.Fatalf("negative lifetime %v (%s)", life, src)
		}
		switch src {
		case SourceSMaxAge:
			if !d.HasSMaxAge || life != d.SMaxAge {
				t.Fatalf("s-maxage source with %+v", d)
			}
		case SourceMaxAge:
			if d.HasSMaxAge || !d.HasMaxAge || life != d.MaxAge {
				t.Fatalf("max-age source with %+v", d)
			}
		case SourceExpires:
			if d.HasSMaxAge || d.HasMaxAge || expires == "" {
				t.Fatalf("expires source with %+v, Expires %q", d, expires)
			}
		case SourceHeuristic:
			if life > 24*time.Hour || d.NoCache || expires != "" || d.HasMaxAge || d.HasSMaxAge {
				t.Fatalf("heuristic %v with %+v", life, d)
			}
		case SourceNone:
			if life != 0 {
				t.Fatalf("no source but lifetime %v", life)
			}
		default:
			t.Fatalf("unknown source %q", src)
		}
		reqT := t0.Add(-time.Duration(delaySecs) * time.Second)
		ia := InitialAge(h, reqT, t0)
		if ia < 0 {
			t.Fatalf("negative initial age %v", ia)
		}
		cur := max(addSat(ia, time.Duration(ageSecs)), 0)
		use, reason := Evaluate(cur, life, d, RequestDirectives(h), Defaults{StaleWhileRevalidate: time.Minute})
		if use < UseFresh || use > Revalidate || reason == "" {
			t.Fatalf("Evaluate = %v %q", use, reason)
		}
		if use == UseFresh && cur >= life {
			t.Fatalf("fresh at age %v with lifetime %v", cur, life)
		}
		if use != Revalidate && d.NoCache {
			t.Fatalf("no-cache served without revalidation: %v", use)
		}
		_ = StaleIfError(cur, life, d, Directives{}, Defaults{StaleIfError: time.Hour})
		if k := KeepFor(h, d, Defaults{}, time.Hour); k < 0 {
			t.Fatalf("negative KeepFor %v", k)
		}
		ok, why := Storable(http.Header{}, Directives{}, status, h, d, StoreRules{})
		if ok == (why != "") {
			t.Fatalf("Storable = %v %q", ok, why)
		}
		if ok && (status < 200 || status == 206 || status == 304) {
			t.Fatalf("stored status %d", status)
		}
		_ = StoredHeader(h, d)
		_ = Freshen(h, h)
		_, _ = ConditionalHeaders(h)
		_ = ClientNotModified(http.Header{"If-None-Match": {age}, "If-Modified-Since": {lm}}, h)
	})
}

func FuzzClientNotModified(f *testing.F) {
	f.Add(`"abc"`, `"abc"`, "")
	f.Add(`W/"a", "b"`, `"b"`, "")
	f.Add("*", "", "")
	f.Add("", `"x"`, httpDate(t0))
	f.Add(`"a`, `W/`, "Sun, 06 Nov 1994 08:49:37 GMT")
	f.Fuzz(func(t *testing.T, inm, etag, ims string) {
		stored := http.Header{"Etag": {etag}, "Last-Modified": {httpDate(t0)}}
		req := http.Header{}
		if inm != "" {
			req.Set("If-None-Match", inm)
		}
		if ims != "" {
			req.Set("If-Modified-Since", ims)
		}
		got := ClientNotModified(req, stored)
		// A valid entity-tag always matches itself and its weak form.
		if tag, rest, ok := scanETag(etag); ok && rest == "" {
			if !ClientNotModified(http.Header{"If-None-Match": {etag}}, stored) {
				t.Errorf("%q does not match itself", etag)
			}
			if !ClientNotModified(http.Header{"If-None-Match": {"W/" + tag}}, stored) {
				t.Errorf("W/%s does not weakly match %q", tag, etag)
			}
		}
		if inm == "" && ims == "" && got {
			t.Error("304 without a condition")
		}
	})
}
