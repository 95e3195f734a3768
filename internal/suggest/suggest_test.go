package suggest

import "testing"

var cacheOptions = []string{
	"storage", "memory", "ttl", "cache_control", "request_cache_control",
	"methods", "status", "key", "max_entry_size", "max_variants", "lock_timeout", "storage_timeout",
	"status_header", "name", "db", "url", "uri",
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ word, want string }{
		{"storag", "storage"},
		{"sotrage", "storage"}, // adjacent swap: one edit
		{"Storage", ""},        // the word itself, whatever the case, is no typo
		{"stor", ""},           // starts storage and storage_timeout: no hint
		{"STORAG", "storage"},
		{"tll", "ttl"},
		{"memroy", "memory"},
		{"max_entry", "max_entry_size"},           // the only known word it starts
		{"timeout", ""},                           // ends two known words: no hint
		{"size", "max_entry_size"},                // ends only one
		{"ize", ""},                               // too short to be a fragment
		{"storage_backend", "storage"},            // known word as a prefix
		{"disk_max_entry_size", "max_entry_size"}, // known word as a suffix
		{"request_cachecontrol", "request_cache_control"},
		{"cache_controll", "cache_control"},
		{"xy", ""}, // two edits of a two-letter word rewrite it entirely
		{"dbx", "db"},
		{"zzzzzz", ""},
		{"", ""},
		{"urk", "url"}, // tie between url and uri goes to the first listed
	} {
		if got := Suggest(tc.word, cacheOptions); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := DidYouMean("storag", cacheOptions); got != ` (did you mean "storage"?)` {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := DidYouMean("zzzz", cacheOptions); got != "" {
		t.Errorf("DidYouMean = %q, want empty", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"a", "", 1},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"abc", "acb", 1},
		{"ttl", "tll", 1},
		{"storage", "storag", 1},
	} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := distance(tc.b, tc.a); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"5", "min"}, "5m"},
		{[]string{"5", "m"}, "5m"},
		{[]string{"90", "sec"}, "90s"},
		{[]string{"2", "Hours"}, "2h"},
		{[]string{"1", "day"}, "1d"},
		{[]string{"1.5", "h"}, "1.5h"},
		{[]string{"2", "weeks"}, "14d"},
		{[]string{"250", "ms"}, "250ms"},
		{[]string{"5min"}, "5m"},
		{[]string{"2hours"}, "2h"},
		{[]string{"1week"}, "7d"},
		{[]string{"5m"}, ""}, // already right
		{[]string{"5"}, ""},
		{[]string{"soon"}, ""},
		{[]string{"/x/*", "min"}, ""},
		{[]string{"5", "apples"}, ""},
		{[]string{"5", "min", "x"}, ""},
		{[]string{"1.5", "weeks"}, ""},
		{nil, ""},
	} {
		if got := Duration(tc.args); got != tc.want {
			t.Errorf("Duration(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestBadDuration(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"5", "min"}, `"5 min": a duration has no space; write 5m`},
		{[]string{"5min"}, `"5min": unknown unit; write 5m`},
		{[]string{"5"}, `"5": a duration needs a unit, e.g. 5s or 5m`},
		{[]string{"soon"}, `"soon": want a duration such as 90s, 5m, 2h or 7d`},
	} {
		if got := BadDuration(tc.args); got != tc.want {
			t.Errorf("BadDuration(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"10", "MB"}, "10MB"},
		{[]string{"64", "mib"}, "64mib"},
		{[]string{"512", "bytes"}, "512B"},
		{[]string{"1.5", "GiB"}, "1.5GiB"},
		{[]string{"10MB"}, ""},
		{[]string{"ten", "MB"}, ""},
		{[]string{"10", "apples"}, ""},
	} {
		if got := Size(tc.args); got != tc.want {
			t.Errorf("Size(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got, want := BadSize([]string{"10", "MB"}), `"10 MB": a size has no space; write 10MB`; got != want {
		t.Errorf("BadSize = %q, want %q", got, want)
	}
	if got, want := BadSize([]string{"abc"}), `"abc": want a size such as 16MiB, 512KB or 1048576`; got != want {
		t.Errorf("BadSize = %q, want %q", got, want)
	}
}
