package policy

import (
	"net/http"
	"reflect"
	"testing"
)

func TestVaryNames(t *testing.T) {
	tests := []struct {
		name  string
		h     http.Header
		names []string
		star  bool
	}{
		{"9110 §12.5.5 no Vary", http.Header{}, nil, false},
		{"9110 §12.5.5 single name canonicalised", http.Header{"Vary": {"accept-encoding"}}, []string{"Accept-Encoding"}, false},
		{
			"9110 §12.5.5 list across lines, in order, deduplicated",
			http.Header{"Vary": {"Accept-Encoding, ACCEPT-LANGUAGE", " accept-encoding ,Origin,,"}},
			[]string{"Accept-Encoding", "Accept-Language", "Origin"},
			false,
		},
		{"9110 §12.5.5 Vary: * alone", http.Header{"Vary": {"*"}}, nil, true},
		{"9110 §12.5.5 Vary: * among names", http.Header{"Vary": {"Accept", "Origin, * "}}, []string{"Accept", "Origin"}, true},
		{"9110 §5.6.1 empty Vary", http.Header{"Vary": {"", " , "}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, star := VaryNames(tt.h)
			if !reflect.DeepEqual(names, tt.names) || star != tt.star {
				t.Errorf("got %q %v, want %q %v", names, star, tt.names, tt.star)
			}
		})
	}
}

func TestNormalizeVaryValue(t *testing.T) {
	tests := []struct {
		name   string
		field  string
		values []string
		want   string
	}{
		{"9111 §4.1 absent header", "Accept-Encoding", nil, ""},
		{"9111 §4.1 empty header matches absent", "Accept-Encoding", []string{""}, ""},
		{"9111 §4.1 blank header matches absent", "X-Foo", []string{" , "}, ""},
		{"9111 §4.1 plain value unchanged", "X-Foo", []string{"abc"}, "abc"},
		{"9111 §4.1 case kept for other fields", "User-Agent", []string{"Mozilla/5.0 (X11; Linux)"}, "Mozilla/5.0 (X11; Linux)"},
		{"9111 §4.1 whitespace at the ends removed", "X-Foo", []string{"  abc\t"}, "abc"},
		{"9111 §4.1 lines combined with comma space", "X-Foo", []string{"a", " b ,c"}, "a, b, c"},
		{"9111 §4.1 order kept for other fields", "X-Foo", []string{"b, a"}, "b, a"},
		{"9111 §4.1 commas inside quotes do not split", "X-Foo", []string{`"a,b" ,  c`}, `"a,b", c`},
		{"9111 §4.1 Accept-Encoding sorted", "Accept-Encoding", []string{"gzip, br"}, "br, gzip"},
		{"9111 §4.1 Accept-Encoding lower-cased", "accept-encoding", []string{"GZip,BR"}, "br, gzip"},
		{"9111 §4.1 Accept-Encoding across lines", "Accept-Encoding", []string{"gzip", "br,,deflate"}, "br, deflate, gzip"},
		{"9111 §4.1 Accept-Encoding parameters whitespace", "Accept-Encoding", []string{"gzip ; q = 1.0, br;q=0.5"}, "br;q=0.5, gzip;q=1.0"},
		{"9111 §4.1 Accept media ranges", "Accept", []string{"Text/HTML,  application/json ;  q=0.9"}, "text/html, application/json;q=0.9"},
		{"9111 §4.1 Accept-Language", "Accept-Language", []string{"en-US, fr;q=0.5"}, "en-us, fr;q=0.5"},
		{"9111 §4.1 Accept-Charset", "Accept-Charset", []string{"UTF-8"}, "utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeVaryValue(tt.field, tt.values); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("9111 §4.1 reordered Accept-Encoding selects the same variant", func(t *testing.T) {
		a := NormalizeVaryValue("Accept-Encoding", []string{"gzip, deflate, br"})
		b := NormalizeVaryValue("Accept-Encoding", []string{"br", "DEFLATE ,gzip"})
		if a != b {
			t.Errorf("%q != %q", a, b)
		}
	})
	t.Run("9111 §4.1 different Accept-Encoding does not match", func(t *testing.T) {
		a := NormalizeVaryValue("Accept-Encoding", []string{"gzip"})
		b := NormalizeVaryValue("Accept-Encoding", []string{"gzip, br"})
		if a == b {
			t.Errorf("both %q", a)
		}
	})
	t.Run("9111 §4.1 absent does not match present", func(t *testing.T) {
		if NormalizeVaryValue("X-Foo", nil) == NormalizeVaryValue("X-Foo", []string{"x"}) {
			t.Error("absent matched a value")
		}
	})
}

// Order carries preference among equal quality values in Accept-Language,
// Accept and Accept-Charset, so only whitespace and case are normalised and
// the elements are ordered by q-value with a stable sort; Accept-Encoding
// stays a set.
func TestNormalizeVaryValueOrder(t *testing.T) {
	tests := []struct {
		name   string
		field  string
		values []string
		want   string
	}{
		{"9110 §12.5.4 Accept-Language order kept among equal q", "Accept-Language", []string{"fr, en"}, "fr, en"},
		{"9110 §12.5.4 Accept-Language order kept, other order", "Accept-Language", []string{"en, fr"}, "en, fr"},
		{"9110 §12.5.4 Accept-Language whitespace and case only", "Accept-Language", []string{" FR ,en-GB ;  q=1"}, "fr, en-gb;q=1"},
		{"9110 §12.5.4 Accept-Language across field lines keeps line order", "Accept-Language", []string{"fr", "en"}, "fr, en"},
		{"9110 §12.4.2 higher q first", "Accept-Language", []string{"en;q=0.5, fr"}, "fr, en;q=0.5"},
		{"9110 §12.4.2 stable among equal q", "Accept-Language", []string{"de;q=0.5, en, es;q=0.5, fr"}, "en, fr, de;q=0.5, es;q=0.5"},
		{"9110 §12.4.2 missing q is 1, q=1.000 too", "Accept-Language", []string{"fr;q=1.000, en"}, "fr;q=1.000, en"},
		{"9110 §12.4.2 q=0 last", "Accept-Language", []string{"*;q=0, fr;q=0.001"}, "fr;q=0.001, *;q=0"},
		{"9110 §12.4.2 Q is case-insensitive", "Accept-Language", []string{"en;Q=0.2, fr;q=0.9"}, "fr;q=0.9, en;q=0.2"},
		{"9110 §12.4.2 invalid q: order kept as sent", "Accept-Language", []string{"en;q=2, fr;q=0.5, de"}, "en;q=2, fr;q=0.5, de"},
		{"9110 §12.4.2 invalid q: more than 3 decimals", "Accept-Language", []string{"en;q=0.1234, fr"}, "en;q=0.1234, fr"},
		{"9110 §12.5.1 Accept order kept among equal q", "Accept", []string{"text/html, application/json"}, "text/html, application/json"},
		{"9110 §12.5.1 Accept q sorts, parameters before q stay", "Accept", []string{"text/html;level=1;q=0.5, application/json"}, "application/json, text/html;level=1;q=0.5"},
		{"9110 §12.5.2 Accept-Charset order kept among equal q", "Accept-Charset", []string{"UTF-8, iso-8859-1"}, "utf-8, iso-8859-1"},
		{"9110 §12.5.3 Accept-Encoding stays a set", "Accept-Encoding", []string{"gzip, br"}, "br, gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeVaryValue(tt.field, tt.values); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	same := func(t *testing.T, field string, a, b []string, want bool) {
		t.Helper()
		na, nb := NormalizeVaryValue(field, a), NormalizeVaryValue(field, b)
		if (na == nb) != want {
			t.Errorf("%s %q -> %q and %q -> %q: same=%v, want %v", field, a, na, b, nb, na == nb, want)
		}
	}
	t.Run("9110 §12.5.4 en, fr and fr, en are different variants", func(t *testing.T) {
		same(t, "Accept-Language", []string{"en, fr"}, []string{"fr, en"}, false)
	})
	t.Run("9110 §12.5.4 en,fr and en, fr are one variant", func(t *testing.T) {
		same(t, "Accept-Language", []string{"en,fr"}, []string{"en, fr"}, true)
		same(t, "Accept-Language", []string{"EN ,Fr"}, []string{"en, fr"}, true)
	})
	t.Run("9110 §12.4.2 same preferences written in another order are one variant", func(t *testing.T) {
		same(t, "Accept-Language", []string{"en;q=0.5, fr"}, []string{"fr, en;q=0.5"}, true)
	})
	t.Run("9110 §12.5.1 Accept order among equal q selects another variant", func(t *testing.T) {
		same(t, "Accept", []string{"text/html, application/json"}, []string{"application/json, text/html"}, false)
	})
	t.Run("9110 §12.5.3 Accept-Encoding order does not matter", func(t *testing.T) {
		same(t, "Accept-Encoding", []string{"gzip, br"}, []string{"br, gzip"}, true)
	})
}

func BenchmarkNormalizeVaryValue(b *testing.B) {
	b.ReportAllocs()
	v := []string{"gzip, deflate, br"}
	for b.Loop() {
		NormalizeVaryValue("Accept-Encoding", v)
	}
}
