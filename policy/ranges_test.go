package policy

import "testing"

func TestClassifyRange(t *testing.T) {
	cases := []struct {
		name, v string
		want    RangeUse
	}{
		{"no Range", "", RangeIgnore},
		{"9110 14.2 an unknown range unit is ignored", "items=0-5", RangeIgnore},
		{"9110 14.1.2 a byte range", "bytes=0-5", RangeBytes},
		{"units are case-insensitive", "Bytes=0-5", RangeBytes},
		{"a suffix range", "bytes=-5", RangeBytes},
		{"9110 14.1.2 a zero-length suffix selects nothing", "bytes=-0", RangeUnsatisfiable},
		{"several zero-length suffixes", "bytes=-0, -00", RangeUnsatisfiable},
		{"one satisfiable range among them", "bytes=-0, 0-1", RangeBytes},
		{"no equals sign", "bytes", RangeIgnore},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassifyRange(tc.v); got != tc.want {
				t.Fatalf("ClassifyRange(%q) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}
