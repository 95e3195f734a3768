package policy

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

func TestParseTargeted(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   Directives
		ok     bool
	}{
		{"9213 §2.1 max-age Integer", []string{"max-age=3600"}, Directives{MaxAge: 3600 * sec, HasMaxAge: true, Targeted: true}, true},
		{"9213 §2.1 Booleans", []string{"no-store, must-revalidate, public"}, Directives{NoStore: true, MustRevalidate: true, Public: true, Targeted: true}, true},
		{"9213 §2.1 private", []string{"private"}, Directives{Private: true, Targeted: true}, true},
		{"9213 §2.1 no-cache", []string{"no-cache"}, Directives{NoCache: true, Targeted: true}, true},
		{"9213 §2.1 explicit false Boolean is absent", []string{"no-store=?0, max-age=5"}, Directives{MaxAge: 5 * sec, HasMaxAge: true, Targeted: true}, true},
		{"9213 §2.1 qualified no-cache as a String", []string{`no-cache="set-cookie, x-a"`}, Directives{NoCacheFields: []string{"Set-Cookie", "X-A"}, Targeted: true}, true},
		{"9213 §2.1 empty qualified private is unqualified", []string{`private=""`}, Directives{Private: true, Targeted: true}, true},
		{"9213 §2.1 extension directive ignored", []string{"foobar, max-age=3600"}, Directives{MaxAge: 3600 * sec, HasMaxAge: true, Targeted: true}, true},
		{"9213 §2.1 unknown directive of any type ignored", []string{`foo=(a b), bar="x", max-age=1`}, Directives{MaxAge: sec, HasMaxAge: true, Targeted: true}, true},
		{"9213 §2.1 unknown directive alone still counts", []string{"foo"}, Directives{Targeted: true}, true},
		{"9213 §2.1 parameters ignored", []string{"max-age=60;x=1, public;y"}, Directives{MaxAge: 60 * sec, HasMaxAge: true, Public: true, Targeted: true}, true},
		{"9213 §2.1 several lines form one dictionary", []string{"max-age=60", "s-maxage=30"}, Directives{MaxAge: 60 * sec, HasMaxAge: true, SMaxAge: 30 * sec, HasSMaxAge: true, Targeted: true}, true},
		{"8941 §4.2.2 a repeated key: last wins", []string{"max-age=60, max-age=5"}, Directives{MaxAge: 5 * sec, HasMaxAge: true, Targeted: true}, true},
		{"9111 §1.2.2 max-age 2^31 saturates", []string{"max-age=2147483648"}, Directives{MaxAge: MaxDelta, HasMaxAge: true, Targeted: true}, true},
		{"9111 §1.2.2 max-age 99999999999 saturates", []string{"max-age=99999999999"}, Directives{MaxAge: MaxDelta, HasMaxAge: true, Targeted: true}, true},
		{"9213 §2.1 stale directives", []string{"stale-while-revalidate=30, stale-if-error=60"}, Directives{StaleWhileRevalidate: 30 * sec, HasSWR: true, StaleIfError: 60 * sec, HasSIE: true, Targeted: true}, true},
		{"9213 §2.1 max-age=0", []string{"max-age=0"}, Directives{HasMaxAge: true, Targeted: true}, true},

		// ignored: the cache falls back to Cache-Control
		{"9213 §2.1 unknown bare-item type", []string{"max-age=10000, &&&&&"}, Directives{}, false},
		{"9213 §2.1 max-age as a String", []string{`max-age="10000"`}, Directives{}, false},
		{"9213 §2.1 max-age as a Decimal", []string{"max-age=1.5"}, Directives{}, false},
		{"9213 §2.1 negative max-age", []string{"max-age=-1"}, Directives{}, false},
		{"9213 §2.1 max-age as a Token", []string{"max-age=a3600"}, Directives{}, false},
		{"9213 §2.1 bare max-age is Boolean true, wrong type", []string{"max-age"}, Directives{}, false},
		{"9213 §2.1 no-store as an Integer", []string{"no-store=1"}, Directives{}, false},
		{"9213 §2.1 private as a Token", []string{"private=x"}, Directives{}, false},
		{"9213 §2.1 known directive as an Inner List", []string{"no-cache=(a b)"}, Directives{}, false},
		{"8941 §4.2.2 trailing comma", []string{"max-age=60,"}, Directives{}, false},
		{"8941 §4.2.2 space before =", []string{"max-age =100"}, Directives{}, false},
		{"8941 §4.2.2 space after =", []string{"max-age= 100"}, Directives{}, false},
		{"8941 §3.1.2 upper-case key", []string{"MaX-aGe=3600"}, Directives{}, false},
		{"8941 §4.2.2 one bad line spoils the field", []string{"max-age=60", "&"}, Directives{}, false},
		{"9213 §2.1 empty field", []string{""}, Directives{}, false},
		{"9213 §2.1 no field", nil, Directives{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTargeted(tt.fields)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTargeted(%q) = %+v, %v; want %+v, %v", tt.fields, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// A targeted field that is not valid is ignored and Cache-Control governs
// (RFC 9213 §2.1): the examples of the HTTP cache test suite.
func TestResponseDirectivesInvalidTargeted(t *testing.T) {
	targets := []string{"CDN-Cache-Control"}
	tests := []struct {
		name      string
		h         http.Header
		wantField string
		want      Directives
	}{
		{"9213 §2.1 unknown type falls back to Cache-Control", http.Header{"Cdn-Cache-Control": {"max-age=10000, &&&&&"}, "Cache-Control": {"no-store"}}, "Cache-Control", Directives{NoStore: true}},
		{"9213 §2.1 wrong type falls back to Cache-Control", http.Header{"Cdn-Cache-Control": {`max-age="10000"`}, "Cache-Control": {"no-store"}}, "Cache-Control", Directives{NoStore: true}},
		{"9213 §2.1 space before = falls back", http.Header{"Cdn-Cache-Control": {"max-age =100"}, "Cache-Control": {"max-age=1"}}, "Cache-Control", Directives{MaxAge: sec, HasMaxAge: true}},
		{"9213 §2.1 invalid and no Cache-Control", http.Header{"Cdn-Cache-Control": {"max-age=1.0"}}, "", Directives{}},
		{"9213 §2.2 valid targeted field overrides no-store", http.Header{"Cdn-Cache-Control": {"max-age=10000"}, "Cache-Control": {"no-store"}}, "CDN-Cache-Control", Directives{MaxAge: 10000 * sec, HasMaxAge: true, Targeted: true}},
		{"9213 §2.2 targeted private wins over max-age", http.Header{"Cdn-Cache-Control": {"private"}, "Cache-Control": {"max-age=10000"}}, "CDN-Cache-Control", Directives{Private: true, Targeted: true}},
		{"Edge Architecture Surrogate-Control keeps Cache-Control syntax", http.Header{"Surrogate-Control": {"max-age = 60"}}, "Surrogate-Control", Directives{MaxAge: 60 * sec, HasMaxAge: true, Targeted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, field := ResponseDirectives(tt.h, append(targets, "Surrogate-Control"))
			if field != tt.wantField || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %q; want %+v, %q", got, field, tt.want, tt.wantField)
			}
		})
	}
}

// FuzzParseTargeted: a targeted field that parses gives directives that,
// written back in canonical form (which is a valid Dictionary too), parse
// to the same directives; and a field ParseTargeted accepts is a valid
// Structured Field Dictionary.
func FuzzParseTargeted(f *testing.F) {
	for _, s := range []string{
		"max-age=3600", "no-store, private", `no-cache="a, b"`, "max-age=10000, &&&&&", `max-age="1"`,
		"max-age=99999999999", "foo=(a b);c, max-age=1", "no-store=?0", "", "max-age=-1", "s-maxage=1;a=2",
	} {
		f.Add(s, "")
	}
	f.Add("max-age=1", "public")
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a, b}
		if b == "" {
			lines = lines[:1]
		}
		d, ok := ParseTargeted(lines)
		if !ok {
			if !reflect.DeepEqual(d, Directives{}) {
				t.Fatalf("ignored field %q returned %+v", lines, d)
			}
			return
		}
		if !d.Targeted {
			t.Fatalf("%q: Targeted not set", lines)
		}
		plain := d
		plain.Targeted = false
		checkDirectives(t, plain)
		if _, err := httpsfv.UnmarshalDictionary(lines); err != nil {
			t.Fatalf("accepted %q, not a Dictionary: %v", lines, err)
		}
		s := formatDirectives(d)
		if s == "" {
			return // only unknown directives
		}
		re, ok := ParseTargeted([]string{s})
		if !ok || !reflect.DeepEqual(normFields(re), normFields(d)) {
			t.Fatalf("round trip of %q via %q:\n got %+v %v\nwant %+v", lines, s, re, ok, d)
		}
	})
}

// sfTest is one record of the httpwg structured-field-tests.
type sfTest struct {
	Name       string   `json:"name"`
	Raw        []string `json:"raw"`
	HeaderType string   `json:"header_type"`
	Expected   any      `json:"expected"`
	MustFail   bool     `json:"must_fail"`
	CanFail    bool     `json:"can_fail"`
}

// TestStructuredFieldVectors runs the Structured Fields parser behind
// ParseTargeted against every parsing vector of the HTTP Working Group's
// structured-field-tests (testdata/structured-field-tests): values that
// must fail fail, the others parse to the expected structure.
func TestStructuredFieldVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "structured-field-tests", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test vectors: %v", err)
	}
	total := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var tests []sfTest
		if err := dec.Decode(&tests); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, tt := range tests {
			total++
			t.Run(filepath.Base(file)+"/"+tt.Name, func(t *testing.T) {
				var got any
				var err error
				switch tt.HeaderType {
				case "dictionary":
					var d *httpsfv.Dictionary
					if d, err = httpsfv.UnmarshalDictionary(tt.Raw); err == nil {
						got = sfDict(d)
					}
				case "list":
					var l httpsfv.List
					if l, err = httpsfv.UnmarshalList(tt.Raw); err == nil {
						got = sfList(l)
					}
				case "item":
					var it httpsfv.Item
					if it, err = httpsfv.UnmarshalItem(tt.Raw); err == nil {
						got = sfItem(it)
					}
				default:
					t.Fatalf("unknown header_type %q", tt.HeaderType)
				}
				switch {
				case tt.MustFail:
					if err == nil {
						t.Errorf("%q parsed to %v, must fail", tt.Raw, got)
					}
				case err != nil && tt.CanFail:
				case err != nil:
					t.Errorf("%q: %v", tt.Raw, err)
				default:
					var want any
					switch tt.HeaderType {
					case "dictionary":
						want = expDict(tt.Expected)
					case "list":
						want = expList(tt.Expected)
					default:
						want = expItem(tt.Expected)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%q:\n got %v\nwant %v", tt.Raw, got, want)
					}
				}
			})
		}
	}
	if total < 1000 {
		t.Fatalf("only %d vectors read", total)
	}
}

// The parsed and the expected values are both turned into the JSON shape
// of the test format, with numbers and __type objects as tagged strings.

func sfDict(d *httpsfv.Dictionary) any {
	out := []any{}
	for _, k := range d.Names() {
		m, _ := d.Get(k)
		out = append(out, []any{k, sfMember(m)})
	}
	return out
}

func sfList(l httpsfv.List) any {
	out := []any{}
	for _, m := range l {
		out = append(out, sfMember(m))
	}
	return out
}

func sfMember(m httpsfv.Member) any {
	if il, ok := m.(httpsfv.InnerList); ok {
		items := []any{}
		for _, it := range il.Items {
			items = append(items, sfItem(it))
		}
		return []any{items, sfParams(il.Params)}
	}
	return sfItem(m.(httpsfv.Item))
}

func sfItem(it httpsfv.Item) any { return []any{sfBare(it.Value), sfParams(it.Params)} }

func sfParams(p *httpsfv.Params) any {
	out := []any{}
	if p == nil {
		return out
	}
	for _, k := range p.Names() {
		v, _ := p.Get(k)
		out = append(out, []any{k, sfBare(v)})
	}
	return out
}

func sfBare(v any) any {
	switch v := v.(type) {
	case int64:
		return fmt.Sprintf("integer:%d", v)
	case float64:
		return fmt.Sprintf("decimal:%.3f", v)
	case string:
		return "string:" + v
	case bool:
		return v
	case httpsfv.Token:
		return "token:" + string(v)
	case []byte:
		return "binary:" + base32.StdEncoding.EncodeToString(v)
	case time.Time:
		return fmt.Sprintf("date:%d", v.Unix())
	case httpsfv.DisplayString:
		return "displaystring:" + string(v)
	}
	return fmt.Sprintf("unknown %T", v)
}

// The expected values, decoded with UseNumber, walked by their type.

func expDict(v any) any {
	out := []any{}
	for _, p := range v.([]any) {
		pair := p.([]any)
		out = append(out, []any{pair[0].(string), expMember(pair[1])})
	}
	return out
}

func expList(v any) any {
	out := []any{}
	for _, m := range v.([]any) {
		out = append(out, expMember(m))
	}
	return out
}

// expMember: an Item is [bare, params], an Inner List [[items], params];
// a bare item is never a JSON array.
func expMember(v any) any {
	pair := v.([]any)
	if items, ok := pair[0].([]any); ok {
		out := []any{}
		for _, it := range items {
			out = append(out, expItem(it))
		}
		return []any{out, expParams(pair[1])}
	}
	return expItem(v)
}

func expItem(v any) any {
	pair := v.([]any)
	return []any{expBare(pair[0]), expParams(pair[1])}
}

func expParams(v any) any {
	out := []any{}
	for _, p := range v.([]any) {
		pair := p.([]any)
		out = append(out, []any{pair[0].(string), expBare(pair[1])})
	}
	return out
}

func expBare(v any) any {
	switch v := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			f, _ := v.Float64()
			return fmt.Sprintf("decimal:%.3f", f)
		}
		n, _ := v.Int64()
		return fmt.Sprintf("integer:%d", n)
	case string:
		return "string:" + v
	case bool:
		return v
	case map[string]any:
		val := v["value"]
		switch v["__type"] {
		case "token":
			return "token:" + val.(string)
		case "binary":
			b, _ := base32.StdEncoding.DecodeString(val.(string))
			return "binary:" + base32.StdEncoding.EncodeToString(b)
		case "date":
			n, _ := val.(json.Number).Int64()
			return fmt.Sprintf("date:%d", n)
		case "displaystring":
			return "displaystring:" + val.(string)
		}
	}
	return fmt.Sprintf("unknown %T", v)
}
