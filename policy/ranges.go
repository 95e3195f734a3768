package policy

import "strings"

// RangeUse says how a cache answers a request's Range from a stored 200.
type RangeUse int

const (
	// RangeIgnore: no Range, or a range unit other than bytes, which a
	// recipient ignores (RFC 9110 §14.2): send the whole response.
	RangeIgnore RangeUse = iota
	// RangeBytes: a byte range request to cut from the stored body (206,
	// or 416 when no range can be satisfied).
	RangeBytes
	// RangeUnsatisfiable: every range is a zero-length suffix ("-0"),
	// which selects nothing (RFC 9110 §14.1.2): 416.
	RangeUnsatisfiable
)

// ClassifyRange reads a Range field value.
func ClassifyRange(v string) RangeUse {
	unit, set, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return RangeIgnore
	}
	empty := true
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		if !strings.HasPrefix(spec, "-") || strings.TrimLeft(spec[1:], "0") != "" || len(spec) == 1 {
			empty = false
		}
	}
	if empty {
		return RangeUnsatisfiable
	}
	return RangeBytes
}
