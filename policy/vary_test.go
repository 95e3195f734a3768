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
		{"9110 §12.5.5 list across lines, in order, deduplicated", http.Header{"Vary": {"Accept-Encoding, ACCEPT-LANGUAGE", " accept-encoding ,Origin,,"}},
			[]string{"Accept-Encoding", "Accept-Language", "Origin"}, false},
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
		{"9111 §4.1 Accept media ranges", "Accept", []string{"Text/HTML,  application/json ;  q=0.9"}, "application/json;q=0.9, text/html"},
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

func BenchmarkNormalizeVaryValue(b *testing.B) {
	b.ReportAllocs()
	v := []string{"gzip, deflate, br"}
	for b.Loop() {
		NormalizeVaryValue("Accept-Encoding", v)
	}
}
