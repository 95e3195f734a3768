package policy

import "testing"

func TestPreferredLanguage(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"9110 §12.5.4 single range", []string{"de"}, "de"},
		{"9110 §12.5.4 highest qvalue wins", []string{"fr;q=0.5, de;q=1.0"}, "de"},
		{"9110 §12.5.4 no q is q=1", []string{"fr;q=0.5, de"}, "de"},
		{"9110 §12.5.4 first among equal qvalues", []string{"en, de"}, "en"},
		{"9110 §12.5.4 lower-cased", []string{"DE-CH"}, "de-ch"},
		{"9110 §12.5.4 several lines", []string{"fr;q=0.5", "de;q=0.8"}, "de"},
		{"9110 §12.4.2 whitespace around ;", []string{"fr ; q=0.3, en ;q=0.2"}, "fr"},
		{"9110 §12.4.2 q=0 is not acceptable", []string{"de;q=0"}, ""},
		{"9110 §12.5.4 * is the origin's choice", []string{"*, de;q=0.5"}, ""},
		{"9110 §12.5.4 * below a range", []string{"de, *;q=0.5"}, "de"},
		{"9110 §12.4.2 invalid qvalue", []string{"de;q=2"}, ""},
		{"9110 §12.4.2 other parameter", []string{"de;x=1"}, ""},
		{"4647 §2.1 not a language range", []string{"d3"}, ""},
		{"4647 §2.1 subtag too long", []string{"de-abcdefghi"}, ""},
		{"9110 §12.5.4 absent", nil, ""},
		{"9110 §12.5.4 empty", []string{" , "}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PreferredLanguage(tt.in); got != tt.want {
				t.Errorf("PreferredLanguage(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLanguageMatches(t *testing.T) {
	tests := []struct {
		rng, tag string
		want     bool
	}{
		{"de", "de", true},
		{"de", "DE", true},
		{"de", "de-CH", true},
		{"de-ch", "de-CH", true},
		{"de-ch", "de", false},
		{"de", "dee", false},
		{"en", "de", false},
		{"*", "fr", true},
	}
	for _, tt := range tests {
		if got := LanguageMatches(tt.rng, tt.tag); got != tt.want {
			t.Errorf("4647 §3.3.1 basic filtering: LanguageMatches(%q, %q) = %v, want %v", tt.rng, tt.tag, got, tt.want)
		}
	}
}

func TestLanguageSelects(t *testing.T) {
	tests := []struct {
		name    string
		accept  []string
		content []string
		want    bool
	}{
		{"9110 §12.5.4 the suite's example: de preferred by qvalue", []string{"fr;q=0.5, de;q=1.0"}, []string{"de"}, true},
		{"9110 §12.5.4 preferred range matches a longer tag", []string{"de, en;q=0.1"}, []string{"de-CH"}, true},
		{"9110 §12.5.4 stored language acceptable but not preferred", []string{"fr, de;q=0.5"}, []string{"de"}, false},
		{"9110 §12.5.4 first of equal qvalues preferred", []string{"en, de"}, []string{"de"}, false},
		{"9110 §12.5.4 more specific range than the tag", []string{"de-at"}, []string{"de"}, false},
		{"9110 §8.5 several languages", []string{"de"}, []string{"de, en"}, false},
		{"9110 §8.5 two Content-Language lines", []string{"de"}, []string{"de", "en"}, false},
		{"9110 §8.5 no Content-Language", []string{"de"}, nil, false},
		{"9110 §12.5.4 no Accept-Language", nil, []string{"de"}, false},
		{"9110 §12.5.4 *", []string{"*"}, []string{"de"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LanguageSelects(tt.accept, tt.content); got != tt.want {
				t.Errorf("LanguageSelects(%q, %q) = %v, want %v", tt.accept, tt.content, got, tt.want)
			}
		})
	}
}
