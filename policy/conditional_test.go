package policy

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

func TestClientNotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	stored := http.Header{"Etag": {`"abc"`}, "Last-Modified": {httpDate(lm)}, "Date": {httpDate(t0)}}
	weakStored := http.Header{"Etag": {`W/"abc"`}}
	tests := []struct {
		name   string
		req    http.Header
		stored http.Header
		want   bool
	}{
		{"9110 §13.1.2 no conditional", http.Header{}, stored, false},
		{"9110 §13.1.2 If-None-Match strong tag matches", http.Header{"If-None-Match": {`"abc"`}}, stored, true},
		{"9110 §13.1.2 If-None-Match weak comparison W/ on request", http.Header{"If-None-Match": {`W/"abc"`}}, stored, true},
		{"9110 §13.1.2 If-None-Match weak comparison W/ on stored", http.Header{"If-None-Match": {`"abc"`}}, weakStored, true},
		{"9110 §13.1.2 If-None-Match different tag", http.Header{"If-None-Match": {`"abd"`}}, stored, false},
		{"9110 §13.1.2 If-None-Match list", http.Header{"If-None-Match": {`"x", W/"y" ,"abc"`}}, stored, true},
		{"9110 §13.1.2 If-None-Match list across lines", http.Header{"If-None-Match": {`"x"`, `"abc"`}}, stored, true},
		{"9110 §8.8.3 comma inside an entity-tag", http.Header{"If-None-Match": {`"a,bc", "x"`}}, http.Header{"Etag": {`"a,bc"`}}, true},
		{"9110 §13.1.2 If-None-Match star", http.Header{"If-None-Match": {"*"}}, http.Header{}, true},
		{"9110 §13.1.2 If-None-Match with no stored ETag", http.Header{"If-None-Match": {`"abc"`}}, http.Header{"Last-Modified": {httpDate(lm)}}, false},
		{"9110 §8.8.3 unquoted tag never matches", http.Header{"If-None-Match": {`abc`}}, http.Header{"Etag": {`abc`}}, false},
		{"9110 §8.8.3 malformed tag ignored, match after it on next line", http.Header{"If-None-Match": {`abc`, `"abc"`}}, stored, true},
		{"9110 §8.8.3 stored tag with trailing junk never matches", http.Header{"If-None-Match": {`"abc"`}}, http.Header{"Etag": {`"abc" x`}}, false},
		{"9110 §8.8.3 case-sensitive opaque tags", http.Header{"If-None-Match": {`"ABC"`}}, stored, false},
		{"9110 §13.1.3 If-Modified-Since equal", http.Header{"If-Modified-Since": {httpDate(lm)}}, stored, true},
		{"9110 §13.1.3 If-Modified-Since later", http.Header{"If-Modified-Since": {httpDate(lm.Add(time.Minute))}}, stored, true},
		{"9110 §13.1.3 If-Modified-Since earlier", http.Header{"If-Modified-Since": {httpDate(lm.Add(-sec))}}, stored, false},
		{"9110 §13.1.3 second precision", http.Header{"If-Modified-Since": {httpDate(lm)}}, http.Header{"Last-Modified": {httpDate(lm.Add(500 * time.Millisecond))}}, true},
		{"9110 §13.1.3 invalid If-Modified-Since ignored", http.Header{"If-Modified-Since": {"yesterday"}}, stored, false},
		{"9110 §13.1.3 several If-Modified-Since lines ignored", http.Header{"If-Modified-Since": {httpDate(lm), httpDate(lm)}}, stored, false},
		{"9110 §13.1.3 RFC 850 date accepted", http.Header{"If-Modified-Since": {rfc850Date(lm)}}, stored, true},
		{"9110 §13.1.3 asctime date accepted", http.Header{"If-Modified-Since": {lm.Format(time.ANSIC)}}, stored, true},
		{"9111 §4.3.2 Date used without Last-Modified", http.Header{"If-Modified-Since": {httpDate(t0)}}, http.Header{"Date": {httpDate(t0)}}, true},
		{"9111 §4.3.2 Date used without Last-Modified, earlier", http.Header{"If-Modified-Since": {httpDate(lm)}}, http.Header{"Date": {httpDate(t0)}}, false},
		{"9111 §4.3.2 no Last-Modified nor Date", http.Header{"If-Modified-Since": {httpDate(t0)}}, http.Header{}, false},
		{"9110 §13.2.2 If-None-Match takes precedence over If-Modified-Since", http.Header{"If-None-Match": {`"zzz"`}, "If-Modified-Since": {httpDate(t0)}}, stored, false},
		{"9110 §13.2.2 empty If-None-Match still takes precedence", http.Header{"If-None-Match": {""}, "If-Modified-Since": {httpDate(t0)}}, stored, false},
		{"9111 §4.3.2 If-Match is not evaluated by a cache", http.Header{"If-Match": {`"abc"`}}, stored, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientNotModified(tt.req, tt.stored); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConditionalHeaders(t *testing.T) {
	tests := []struct {
		name     string
		stored   http.Header
		inm, ims string
	}{
		{"9111 §4.3.1 both validators", http.Header{"Etag": {` W/"v1" `}, "Last-Modified": {httpDate(t0)}}, `W/"v1"`, httpDate(t0)},
		{"9111 §4.3.1 no validators", http.Header{}, "", ""},
		{"9111 §4.3.1 invalid Last-Modified not sent", http.Header{"Last-Modified": {"soon"}}, "", ""},
		{"9111 §4.3.1 Last-Modified kept verbatim", http.Header{"Last-Modified": {rfc850Date(t0)}}, "", rfc850Date(t0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inm, ims := ConditionalHeaders(tt.stored)
			if inm != tt.inm || ims != tt.ims {
				t.Errorf("got %q %q, want %q %q", inm, ims, tt.inm, tt.ims)
			}
		})
	}
}

func TestStoredHeader(t *testing.T) {
	h := http.Header{
		"Content-Type":              {"text/plain"},
		"Connection":                {"keep-alive, X-Hop"},
		"X-Hop":                     {"1"},
		"Keep-Alive":                {"timeout=5"},
		"Proxy-Connection":          {"x"},
		"Te":                        {"trailers"},
		"Trailer":                   {"X-T"},
		"Transfer-Encoding":         {"chunked"},
		"Upgrade":                   {"h2c"},
		"Proxy-Authenticate":        {"Basic"},
		"Proxy-Authentication-Info": {"x"},
		"Age":                       {"5"},
		"Set-Cookie":                {"a=b"},
		"X-User":                    {"bob"},
		"Etag":                      {`"v"`},
		"Vary":                      {"Accept", "Origin"},
		"x-lower":                   {"kept"},
	}
	t.Run("9111 §3.1 hop-by-hop, Age and qualified fields removed", func(t *testing.T) {
		got := StoredHeader(h, cc(`no-cache="Set-Cookie", private="x-user"`))
		want := http.Header{
			"Content-Type": {"text/plain"},
			"Etag":         {`"v"`},
			"Vary":         {"Accept", "Origin"},
			"X-Lower":      {"kept"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})
	t.Run("9111 §3.1 copy is independent and len == cap", func(t *testing.T) {
		got := StoredHeader(h, Directives{})
		for k, v := range got {
			if len(v) != cap(v) {
				t.Errorf("%s: len %d cap %d", k, len(v), cap(v))
			}
		}
		vary := got["Vary"]
		_ = append(vary, "Extra")
		if got["Etag"][0] != `"v"` || len(got["Vary"]) != 2 {
			t.Error("append to a copied slice wrote into another field")
		}
		got["Content-Type"][0] = "changed"
		if h["Content-Type"][0] != "text/plain" {
			t.Error("copy shares values with the input")
		}
	})
}

func TestFreshen(t *testing.T) {
	stored := http.Header{
		"Content-Type":     {"text/html"},
		"Content-Length":   {"10"},
		"Content-Encoding": {"gzip"},
		"Etag":             {`"v1"`},
		"Date":             {httpDate(t0)},
		"Cache-Control":    {"max-age=10"},
		"X-Old":            {"old"},
	}
	before := stored.Clone()
	fresh := http.Header{
		"Content-Length":    {"0"},
		"Content-Encoding":  {"br"},
		"Content-Range":     {"bytes 0-1/2"},
		"Transfer-Encoding": {"chunked"},
		"Connection":        {"X-Hop"},
		"X-Hop":             {"h"},
		"Keep-Alive":        {"1"},
		"Age":               {"3"},
		"Set-Cookie":        {"s=1"},
		"X-Secret":          {"s"},
		"Date":              {httpDate(t0.Add(time.Minute))},
		"Cache-Control":     {`max-age=60, private="X-Secret"`},
		"etag":              {`"v2"`},
		"Content-Md5":       {"bm90IHRoZSBzdG9yZWQgYm9keQ=="},
		"X-New":             {"new", "two"},
	}
	got := Freshen(stored, fresh)
	// 9111 §4.3.4: a 304 with another strong ETag selects nothing to update;
	// ETag and Content-MD5 describe the stored body and stay as stored.
	if got.Get("Etag") != `"v1"` {
		t.Fatalf("ETag %q, want the stored \"v1\"", got.Get("Etag"))
	}
	if got.Get("Content-Md5") != "" {
		t.Fatalf("Content-MD5 taken from the 304")
	}
	want := http.Header{
		"Content-Type":     {"text/html"},
		"Content-Length":   {"10"},
		"Content-Encoding": {"gzip"},
		"Etag":             {`"v1"`},
		"Date":             {httpDate(t0.Add(time.Minute))},
		"Cache-Control":    {`max-age=60, private="X-Secret"`},
		"X-Old":            {"old"},
		"X-New":            {"new", "two"},
	}
	t.Run("9111 §3.2 fields replaced except the excepted ones", func(t *testing.T) {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})
	t.Run("9111 §3.2 stored is not modified", func(t *testing.T) {
		if !reflect.DeepEqual(stored, before) {
			t.Errorf("stored changed: %v", stored)
		}
	})
	t.Run("9111 §3.2 result slices have len == cap", func(t *testing.T) {
		for k, v := range got {
			if len(v) != cap(v) {
				t.Errorf("%s: len %d cap %d", k, len(v), cap(v))
			}
		}
	})
	t.Run("9111 §4.3.4 stored Set-Cookie kept, not taken from the 304", func(t *testing.T) {
		g := Freshen(http.Header{"Set-Cookie": {"shared=1"}}, http.Header{"Set-Cookie": {"mine=2"}})
		if !reflect.DeepEqual(g, http.Header{"Set-Cookie": {"shared=1"}}) {
			t.Errorf("got %v", g)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestInvalidationTargets(t *testing.T) {
	tests := []struct {
		name string
		req  string
		h    http.Header
		want []string
	}{
		{"9111 §4.4 target URI only", "https://example.com/a?x=1", http.Header{}, []string{"https://example.com/a?x=1"}},
		{"9111 §4.4 relative Location resolved", "https://example.com/a/b", http.Header{"Location": {"c"}}, []string{"https://example.com/a/b", "https://example.com/a/c"}},
		{"9111 §4.4 absolute-path Content-Location", "https://example.com/a/b", http.Header{"Content-Location": {"/z"}}, []string{"https://example.com/a/b", "https://example.com/z"}},
		{"9111 §4.4 both, in order", "http://example.com/p", http.Header{"Location": {"/l"}, "Content-Location": {"/c"}}, []string{"http://example.com/p", "http://example.com/l", "http://example.com/c"}},
		{"9111 §4.4 host compared case-insensitively", "https://Example.COM/a", http.Header{"Location": {"https://example.com/b"}}, []string{"https://Example.COM/a", "https://example.com/b"}},
		{"9111 §4.4 default https port ignored", "https://example.com/a", http.Header{"Location": {"https://example.com:443/b"}}, []string{"https://example.com/a", "https://example.com:443/b"}},
		{"9111 §4.4 default http port ignored", "http://example.com:80/a", http.Header{"Location": {"http://example.com/b"}}, []string{"http://example.com:80/a", "http://example.com/b"}},
		{"9111 §4.4 other port is another origin", "http://example.com/a", http.Header{"Location": {"http://example.com:8080/b"}}, []string{"http://example.com/a"}},
		{"9111 §4.4 other host left out", "https://example.com/a", http.Header{"Location": {"https://evil.example/b"}}, []string{"https://example.com/a"}},
		{"9111 §4.4 other scheme left out", "https://example.com/a", http.Header{"Content-Location": {"http://example.com/b"}}, []string{"https://example.com/a"}},
		{"9111 §4.4 port 443 under http is another origin", "http://example.com/a", http.Header{"Location": {"http://example.com:443/b"}}, []string{"http://example.com/a"}},
		{"9111 §4.4 scheme-relative other host left out", "https://example.com/a", http.Header{"Location": {"//evil.example/b"}}, []string{"https://example.com/a"}},
		{"9111 §4.4 duplicates and fragments removed", "https://example.com/a#top", http.Header{"Location": {"/a#x"}, "Content-Location": {"https://example.com/a"}}, []string{"https://example.com/a"}},
		{"9111 §4.4 unparsable Location ignored", "https://example.com/a", http.Header{"Location": {"http://[::1"}}, []string{"https://example.com/a"}},
		{"9111 §4.4 empty Location ignored", "https://example.com/a", http.Header{"Location": {" "}}, []string{"https://example.com/a"}},
		{"9111 §4.4 relative target keeps relative references only", "/a/b?q", http.Header{"Location": {"c"}, "Content-Location": {"https://example.com/d"}}, []string{"/a/b?q", "/a/c"}},
		{"9111 §4.4 scheme compared case-insensitively", "https://example.com/a", http.Header{"Location": {"HTTPS://example.com/b"}}, []string{"https://example.com/a", "https://example.com/b"}},
		{"9111 §4.4 IPv6 host with default port", "http://[::1]/a", http.Header{"Location": {"http://[::1]:80/b"}}, []string{"http://[::1]/a", "http://[::1]:80/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustURL(t, tt.req)
			orig := *req
			got := InvalidationTargets(req, tt.h)
			var gs []string
			for _, u := range got {
				gs = append(gs, u.String())
			}
			if !reflect.DeepEqual(gs, tt.want) {
				t.Errorf("got %q, want %q", gs, tt.want)
			}
			if *req != orig {
				t.Error("request URL was modified")
			}
		})
	}
	t.Run("9111 §4.4 nil URL", func(t *testing.T) {
		if got := InvalidationTargets(nil, http.Header{"Location": {"/x"}}); got != nil {
			t.Errorf("got %v", got)
		}
	})
}

func TestIsUnsafe(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": false, "HEAD": false, "OPTIONS": false, "TRACE": false,
		"POST": true, "PUT": true, "DELETE": true, "PATCH": true, "CONNECT": true, "PROPFIND": true,
		"get": true, "": true,
	} {
		t.Run("9110 §9.2.1 "+m, func(t *testing.T) {
			if got := IsUnsafe(m); got != want {
				t.Errorf("IsUnsafe(%q) = %v, want %v", m, got, want)
			}
		})
	}
}
