// Package suggest turns a Caddyfile typo into a hint: the known word the
// user probably meant, and the spelling of a duration or size typed with a
// space or an unsupported unit. The root package and every storage backend
// use it, so all of them answer a typo the same way.
package suggest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Suggest returns the word in known closest to word, or "" when none is
// close. Close means, in this order of preference: at most two edits away
// (an adjacent swap counts as one edit) and fewer edits than the shorter
// of the two has letters; a known word of three letters or more that word
// starts or ends with ("storage_backend" → "storage"); the only known word
// that starts or ends with word, when word has four letters or more
// ("size" → "max_size", but "timeout" matches two options and gets no
// hint). Case is ignored. Ties go to the word listed first in known.
func Suggest(word string, known []string) string {
	w := strings.ToLower(word)
	best, bestDist := "", math.MaxInt
	var within []string // known words that contain word at one end
	for _, k := range known {
		kl := strings.ToLower(k)
		if kl == w {
			return "" // not a typo at all
		}
		d := distance(w, kl)
		ok := d <= 2 && d < min(len(w), len(kl))
		if !ok && len(kl) >= 3 && (strings.HasPrefix(w, kl) || strings.HasSuffix(w, kl)) {
			ok = true
		}
		if ok && d < bestDist {
			best, bestDist = k, d
		}
		if len(w) >= 4 && (strings.HasPrefix(kl, w) || strings.HasSuffix(kl, w)) {
			within = append(within, k)
		}
	}
	if best == "" && len(within) == 1 {
		best = within[0]
	}
	return best
}

// DidYouMean returns ` (did you mean "x"?)` for the Suggest result, or ""
// when there is none, ready to append to an error message.
func DidYouMean(word string, known []string) string {
	if s := Suggest(word, known); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// distance is the optimal string alignment distance between a and b:
// Levenshtein (insertions, deletions, substitutions) plus swaps of two
// adjacent bytes, each costing one edit.
func distance(a, b string) int {
	// Three rolling rows: two back (for swaps), previous, current.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// WantSize and WantDuration end the error for a value that is not a size
// or a duration, in place of the parser's own message.
const (
	WantSize     = "want a size such as 16MiB, 512KB or 1048576"
	WantDuration = "want a duration such as 90s, 5m, 2h or 7d"
)

// durationUnits maps the unit words people type to the suffix that
// caddy.ParseDuration accepts.
var durationUnits = map[string]string{
	"ns": "ns", "nsec": "ns", "nanosecond": "ns", "nanoseconds": "ns",
	"us": "us", "µs": "us", "usec": "us", "microsecond": "us", "microseconds": "us",
	"ms": "ms", "msec": "ms", "msecs": "ms", "millisecond": "ms", "milliseconds": "ms",
	"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
	"m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
	"h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
	"d": "d", "day": "d", "days": "d",
	"w": "w", "wk": "w", "week": "w", "weeks": "w",
}

// Duration recognises a duration typed with a space ("5", "min") or with a
// unit word Go does not know ("5min", "2hours", "1week") and returns its
// spelling as one token ("5m", "2h", "7d"), or "" when args are not that.
func Duration(args []string) string {
	var num, unit string
	switch len(args) {
	case 1:
		i := strings.IndexFunc(args[0], func(r rune) bool { return !isNumberRune(r) })
		if i <= 0 {
			return ""
		}
		num, unit = args[0][:i], args[0][i:]
	case 2:
		num, unit = args[0], args[1]
	default:
		return ""
	}
	if !isNumber(num) {
		return ""
	}
	suffix, ok := durationUnits[strings.ToLower(unit)]
	if !ok {
		return ""
	}
	if suffix == "w" { // caddy.ParseDuration stops at days
		n, err := strconv.Atoi(num)
		if err != nil {
			return ""
		}
		num, suffix = strconv.Itoa(7*n), "d"
	}
	fixed := num + suffix
	if len(args) == 1 && fixed == args[0] {
		return "" // already the right spelling: its problem is elsewhere
	}
	return fixed
}

// sizeUnits are the unit words humanize.ParseBytes accepts (case is
// ignored), besides the bare number.
var sizeUnits = map[string]bool{
	"b": true, "byte": true, "bytes": true,
	"k": true, "kb": true, "ki": true, "kib": true,
	"m": true, "mb": true, "mi": true, "mib": true,
	"g": true, "gb": true, "gi": true, "gib": true,
	"t": true, "tb": true, "ti": true, "tib": true,
	"p": true, "pb": true, "pi": true, "pib": true,
	"e": true, "eb": true, "ei": true, "eib": true,
}

// Size recognises a size typed with a space ("10", "MB") and returns it as
// one token ("10MB"), or "" when args are not that.
func Size(args []string) string {
	if len(args) != 2 || !isNumber(args[0]) || !sizeUnits[strings.ToLower(args[1])] {
		return ""
	}
	unit := args[1]
	switch strings.ToLower(unit) {
	case "byte", "bytes":
		unit = "B"
	}
	return args[0] + unit
}

// BadDuration explains, after the option name, why args are not one
// duration: `"5 min": a duration has no space; write 5m`, `"5min": unknown
// unit; write 5m`, `"5": a duration needs a unit, e.g. 5s or 5m`, or
// `"soon": want a duration such as 90s, 5m, 2h or 7d`. It never repeats a
// parser's own message.
func BadDuration(args []string) string {
	raw := strings.Join(args, " ")
	fix := Duration(args)
	switch {
	case fix != "" && len(args) > 1:
		return fmt.Sprintf("%q: a duration has no space; write %s", raw, fix)
	case fix != "":
		return fmt.Sprintf("%q: unknown unit; write %s", raw, fix)
	case len(args) == 1 && isNumber(raw):
		return fmt.Sprintf("%q: a duration needs a unit, e.g. %ss or %sm", raw, raw, raw)
	}
	return fmt.Sprintf("%q: %s", raw, WantDuration)
}

// BadSize explains, after the option name, why args are not one size:
// `"10 MB": a size has no space; write 10MB` or `"lots": want a size such
// as 16MiB, 512KB or 1048576`.
func BadSize(args []string) string {
	raw := strings.Join(args, " ")
	if fix := Size(args); fix != "" {
		return fmt.Sprintf("%q: a size has no space; write %s", raw, fix)
	}
	return fmt.Sprintf("%q: %s", raw, WantSize)
}

func isNumberRune(r rune) bool { return '0' <= r && r <= '9' || r == '.' }

// isNumber reports whether s is digits with at most one '.'.
func isNumber(s string) bool {
	if s == "" || s == "." || strings.Count(s, ".") > 1 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !isNumberRune(r) }) < 0
}
