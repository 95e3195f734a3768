package policy

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sec = time.Second

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   Directives
	}{
		{"9111 §5.2 no field", nil, Directives{}},
		{"9111 §5.2 empty field", []string{""}, Directives{}},
		{"9110 §5.6.1 empty elements and whitespace", []string{" , ,\tpublic ,, "}, Directives{Public: true}},
		{"9111 §5.2.2.1 max-age", []string{"max-age=60"}, Directives{MaxAge: 60 * sec, HasMaxAge: true}},
		{
			"9111 §5.2 names are case-insensitive",
			[]string{"Max-Age=60, PUBLIC, No-Store"},
			Directives{MaxAge: 60 * sec, HasMaxAge: true, Public: true, NoStore: true},
		},
		{"9111 §5.2 quoted argument accepted", []string{`max-age="60"`}, Directives{MaxAge: 60 * sec, HasMaxAge: true}},
		{"9110 §5.6.4 quoted argument with escapes", []string{`max-age="6\0"`}, Directives{MaxAge: 60 * sec, HasMaxAge: true}},
		{"9110 §5.6.4 comma inside quotes of unknown directive", []string{`foo="a, max-age=5", public`}, Directives{Public: true}},
		{"9110 §5.6.4 escaped quote inside quotes", []string{`foo="a\", no-store", public`}, Directives{Public: true}},
		{
			"9110 §5.3 multiple field lines",
			[]string{"public", "max-age=10", "s-maxage=20"},
			Directives{Public: true, MaxAge: 10 * sec, HasMaxAge: true, SMaxAge: 20 * sec, HasSMaxAge: true},
		},
		{"9111 §5.2 whitespace around = tolerated", []string{"max-age = 30"}, Directives{MaxAge: 30 * sec, HasMaxAge: true}},
		{"9111 §4.2.1 invalid max-age is stale", []string{"max-age=abc"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 negative max-age is stale", []string{"max-age=-5"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 empty max-age is stale", []string{"max-age="}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 bare max-age is stale", []string{"max-age"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 fractional max-age is stale", []string{"max-age=1.5"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 trailing garbage makes max-age stale", []string{"max-age=10 x, public"}, Directives{HasMaxAge: true, Public: true}},
		{"9111 §4.2.1 unterminated quote makes max-age stale", []string{`max-age="10`}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 invalid s-maxage is stale", []string{"s-maxage=1e3"}, Directives{HasSMaxAge: true}},
		{"9111 §4.2.1 conflicting max-age is stale", []string{"max-age=10, max-age=20"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 conflicting max-age across lines is stale", []string{"max-age=10", "max-age=20", "max-age=10"}, Directives{HasMaxAge: true}},
		{"9111 §4.2.1 repeated equal max-age is kept", []string{"max-age=10, max-age=10"}, Directives{MaxAge: 10 * sec, HasMaxAge: true}},
		{"9111 §4.2.1 conflicting s-maxage is stale", []string{"s-maxage=10, s-maxage=0010, s-maxage=11"}, Directives{HasSMaxAge: true}},
		{"9111 §1.2.2 delta-seconds saturate at 2^31", []string{"max-age=99999999999999999999999"}, Directives{MaxAge: MaxDelta, HasMaxAge: true}},
		{"9111 §1.2.2 2^31 exactly", []string{"max-age=2147483648"}, Directives{MaxAge: MaxDelta, HasMaxAge: true}},
		{"9111 §1.2.2 2^31-1 kept", []string{"max-age=2147483647"}, Directives{MaxAge: MaxDelta - sec, HasMaxAge: true}},
		{"9111 §1.2.2 leading zeros", []string{"max-age=007"}, Directives{MaxAge: 7 * sec, HasMaxAge: true}},
		{"9111 §5.2.2.4 unqualified no-cache", []string{"no-cache"}, Directives{NoCache: true}},
		{
			"9111 §5.2.2.4 qualified no-cache keeps NoCache false",
			[]string{`no-cache="set-cookie, x-foo"`},
			Directives{NoCacheFields: []string{"Set-Cookie", "X-Foo"}},
		},
		{
			"9111 §5.2.2.4 qualified no-cache token form",
			[]string{`no-cache=set-cookie`},
			Directives{NoCacheFields: []string{"Set-Cookie"}},
		},
		{
			"9111 §5.2.2.4 qualified and unqualified no-cache",
			[]string{`no-cache="X-A", no-cache`},
			Directives{NoCache: true, NoCacheFields: []string{"X-A"}},
		},
		{
			"9111 §5.2.2.4 qualified no-cache lists merge and dedupe",
			[]string{`no-cache="x-a, X-B"`, `no-cache="X-A,,x-c"`},
			Directives{NoCacheFields: []string{"X-A", "X-B", "X-C"}},
		},
		{"9111 §5.2.2.4 empty no-cache list is unqualified", []string{`no-cache=""`}, Directives{NoCache: true}},
		{"9111 §5.2.2.4 malformed no-cache list is unqualified", []string{`no-cache="a b"`}, Directives{NoCache: true}},
		{"9111 §5.2.2.4 unterminated no-cache list is unqualified", []string{`no-cache="a`}, Directives{NoCache: true}},
		{"9111 §5.2.2.7 unqualified private", []string{"private"}, Directives{Private: true}},
		{"9111 §5.2.2.7 qualified private", []string{`private="Authorization-Info"`}, Directives{PrivateFields: []string{"Authorization-Info"}}},
		{
			"9111 §5.2.2 every boolean response directive",
			[]string{"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, must-understand, no-transform, immutable"},
			Directives{NoStore: true, NoCache: true, Private: true, Public: true, MustRevalidate: true, ProxyRevalidate: true, MustUnderstand: true, NoTransform: true, Immutable: true},
		},
		{"9111 §5.2.1.7 only-if-cached", []string{"only-if-cached"}, Directives{OnlyIfCached: true}},
		{"9111 §5.2.1.3 min-fresh", []string{"min-fresh=30"}, Directives{MinFresh: 30 * sec, HasMinFresh: true}},
		{"9111 §5.2.1.3 invalid min-fresh is absent", []string{"min-fresh=x"}, Directives{}},
		{"9111 §4.2.1 repeated min-fresh keeps the largest", []string{"min-fresh=5, min-fresh=30, min-fresh=10"}, Directives{MinFresh: 30 * sec, HasMinFresh: true}},
		{"9111 §5.2.1.2 max-stale with value", []string{"max-stale=100"}, Directives{MaxStale: 100 * sec, HasMaxStale: true}},
		{"9111 §5.2.1.2 bare max-stale", []string{"max-stale"}, Directives{MaxStale: MaxDelta, HasMaxStale: true, MaxStaleAny: true}},
		{"9111 §5.2.1.2 invalid max-stale is absent", []string{"max-stale=-1"}, Directives{}},
		{"9111 §4.2.1 bare and valued max-stale keeps the value", []string{"max-stale, max-stale=5"}, Directives{MaxStale: 5 * sec, HasMaxStale: true}},
		{"9111 §4.2.1 valued then bare max-stale keeps the value", []string{"max-stale=5, max-stale"}, Directives{MaxStale: 5 * sec, HasMaxStale: true}},
		{"9111 §4.2.1 repeated max-stale keeps the smallest", []string{"max-stale=50, max-stale=5"}, Directives{MaxStale: 5 * sec, HasMaxStale: true}},
		{
			"5861 §3 stale-while-revalidate",
			[]string{"max-age=1, stale-while-revalidate=30"},
			Directives{MaxAge: sec, HasMaxAge: true, StaleWhileRevalidate: 30 * sec, HasSWR: true},
		},
		{"5861 §4 stale-if-error", []string{"stale-if-error=600"}, Directives{StaleIfError: 600 * sec, HasSIE: true}},
		{"5861 §3 invalid stale-while-revalidate is absent", []string{"stale-while-revalidate"}, Directives{}},
		{"5861 §4 repeated stale-if-error keeps the smallest", []string{"stale-if-error=60, stale-if-error=6"}, Directives{StaleIfError: 6 * sec, HasSIE: true}},
		{"9111 §5.2.3 unknown directives ignored", []string{"foo, bar=baz, community=\"UCI\", public"}, Directives{Public: true}},
		{"9111 §5.2 directive without name ignored", []string{"=5, public"}, Directives{Public: true}},
		{"9111 §5.2 garbage after name keeps boolean", []string{`no-store"x"`}, Directives{NoStore: true}},
		{"9110 §5.6.2 semicolons are not separators", []string{"max-age=5;public"}, Directives{HasMaxAge: true}},
		{"9110 §5.5 control characters do not panic", []string{"\x00max-age=\x01, public"}, Directives{Public: true}},
		{"9111 §5.2 long unknown name", []string{"stale-while-revalidate-and-more=5"}, Directives{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCacheControl(tt.fields)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCacheControl(%q)\n got %+v\nwant %+v", tt.fields, got, tt.want)
			}
		})
	}
}

func TestResponseDirectives(t *testing.T) {
	targets := []string{"Acme-Cache-Control", "CDN-Cache-Control"}
	tests := []struct {
		name      string
		h         http.Header
		wantField string
		want      Directives
	}{
		{"9111 §5.2 no field", http.Header{}, "", Directives{}},
		{"9111 §5.2 Cache-Control only", http.Header{"Cache-Control": {"max-age=5"}}, "Cache-Control", Directives{MaxAge: 5 * sec, HasMaxAge: true}},
		{
			"9213 §2.2 targeted field wins over Cache-Control",
			http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"max-age=600"}},
			"CDN-Cache-Control",
			Directives{MaxAge: 600 * sec, HasMaxAge: true, Targeted: true},
		},
		{
			"9213 §2.2 first target in list order wins",
			http.Header{"Acme-Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=600"}},
			"Acme-Cache-Control",
			Directives{MaxAge: sec, HasMaxAge: true, Targeted: true},
		},
		{
			"9213 §2.1 empty targeted field is ignored",
			http.Header{"Acme-Cache-Control": {" , "}, "Cache-Control": {"max-age=9"}},
			"Cache-Control",
			Directives{MaxAge: 9 * sec, HasMaxAge: true},
		},
		{
			"9213 §2.2 unknown directives still select the targeted field",
			http.Header{"Cdn-Cache-Control": {"foo"}, "Cache-Control": {"no-store"}},
			"CDN-Cache-Control",
			Directives{Targeted: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, field := ResponseDirectives(tt.h, targets)
			if field != tt.wantField || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %q; want %+v, %q", got, field, tt.want, tt.wantField)
			}
		})
	}
}

func TestRequestDirectives(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want Directives
	}{
		{"9111 §5.2.1 no field", http.Header{}, Directives{}},
		{"9111 §5.2.1.4 no-cache", http.Header{"Cache-Control": {"no-cache"}}, Directives{NoCache: true}},
		{"9111 §5.4 Pragma no-cache without Cache-Control", http.Header{"Pragma": {"No-Cache"}}, Directives{NoCache: true}},
		{"9111 §5.4 Pragma list with no-cache", http.Header{"Pragma": {"foo, no-cache"}}, Directives{NoCache: true}},
		{
			"9111 §5.4 Pragma ignored with Cache-Control",
			http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"max-age=5"}},
			Directives{MaxAge: 5 * sec, HasMaxAge: true},
		},
		{"9111 §5.4 empty Cache-Control does not hide Pragma", http.Header{"Pragma": {"no-cache"}, "Cache-Control": {""}}, Directives{NoCache: true}},
		{"9111 §5.4 other Pragma ignored", http.Header{"Pragma": {"no-cachex"}}, Directives{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestDirectives(tt.h); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func BenchmarkParseCacheControl(b *testing.B) {
	for _, bc := range []struct {
		name   string
		fields []string
	}{
		{"typical", []string{"public, max-age=3600, stale-while-revalidate=60"}},
		{"mixed-case", []string{"Public, Max-Age=3600, Must-Revalidate"}},
		{"quoted", []string{`max-age="600", foo="a, b", s-maxage=60`}},
		{"qualified-no-cache", []string{`no-cache="Set-Cookie", max-age=60`}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ParseCacheControl(bc.fields)
			}
		})
	}
}

func TestSurrogateControl(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"Edge Architecture: untargeted directives apply", []string{"max-age=60, no-store"}, []string{"max-age=60, no-store"}},
		{"Edge Architecture: directives for another device are dropped", []string{"max-age=60;other, no-store"}, []string{"no-store"}},
		{"Edge Architecture: directives for this device lose the target", []string{"max-age=60;caddy"}, []string{"max-age=60"}},
		{"Edge Architecture: max-age=N+M keeps N", []string{"max-age=60+30"}, []string{"max-age=60"}},
		{"Edge Architecture: nothing left drops the line", []string{"max-age=1;x"}, []string{}},
		{"Edge Architecture: quoted commas stay", []string{`content="a, b", max-age=5`}, []string{`content="a, b", max-age=5`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := SurrogateControl(tc.in, "caddy")
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
