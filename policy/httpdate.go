package policy

import "time"

// ParseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: exactly one
// of
//
//	IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT
//	rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT
//	asctime-date  Sun Nov  6 08:49:37 1994
//
// with single spaces, two-digit hours, minutes and seconds, a day that
// exists in its month, and nothing before or after (callers trim the
// optional whitespace around a field value). Unlike time.Parse and
// http.ParseTime, it rejects a one-digit hour ("1:00:00"), doubled spaces,
// a missing comma, other zones ("UTC") and other date layouts, which RFC
// 9111 §5.3 then treats as an invalid date. Day names, month names and
// "GMT" are matched without regard to case, a tolerance the grammar's
// case-sensitive literals do not require but which a recipient may offer;
// the day name is not checked against the date. A two-digit rfc850 year
// is 20yy below 70 and 19yy from 70 (RFC 9110 §5.6.7 asks for the most
// recent year with those digits that is not more than 50 years ahead; a
// fixed pivot keeps this a pure function). Second 60 (a leap second) is
// accepted and counts as the next minute's first second.
func ParseHTTPDate(s string) (time.Time, bool) {
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == len("Sun Nov  6 08:49:37 1994") && s[3] == ' ':
		return parseAsctime(s)
	}
	return parseRFC850(s)
}

var (
	shortDays = [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	longDays  = [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	months    = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
)

// parseIMFFixdate: day-name "," SP 2DIGIT SP month SP 4DIGIT SP
// time-of-day SP "GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if !oneOf(s[:3], shortDays[:]) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' {
		return time.Time{}, false
	}
	day, ok1 := num(s[5:7])
	mon, ok2 := month(s[8:11])
	year, ok3 := num(s[12:16])
	if !ok1 || !ok2 || !ok3 || !foldEqual(s[26:], "gmt") {
		return time.Time{}, false
	}
	return makeDate(year, mon, day, s[17:25])
}

// parseRFC850: day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP
// time-of-day SP "GMT".
func parseRFC850(s string) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i <= len("wednesday"); i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || !oneOf(s[:comma], longDays[:]) {
		return time.Time{}, false
	}
	r := s[comma+1:]
	if len(r) != len(" 06-Nov-94 08:49:37 GMT") || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || r[19] != ' ' {
		return time.Time{}, false
	}
	day, ok1 := num(r[1:3])
	mon, ok2 := month(r[4:7])
	yy, ok3 := num(r[8:10])
	if !ok1 || !ok2 || !ok3 || !foldEqual(r[20:], "gmt") {
		return time.Time{}, false
	}
	year := 1900 + yy
	if yy < 70 {
		year = 2000 + yy
	}
	return makeDate(year, mon, day, r[11:19])
}

// parseAsctime: day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP
// time-of-day SP 4DIGIT.
func parseAsctime(s string) (time.Time, bool) {
	if !oneOf(s[:3], shortDays[:]) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	mon, ok1 := month(s[4:7])
	d := s[8:10]
	if d[0] == ' ' {
		d = d[1:]
	}
	day, ok2 := num(d)
	year, ok3 := num(s[20:24])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return makeDate(year, mon, day, s[11:19])
}

// makeDate checks the day against the month and the time-of-day
// ("HH:MM:SS", 00:00:00 to 23:59:60) and builds the time in UTC.
func makeDate(year int, mon time.Month, day int, tod string) (time.Time, bool) {
	if tod[2] != ':' || tod[5] != ':' {
		return time.Time{}, false
	}
	hh, ok1 := num(tod[0:2])
	mm, ok2 := num(tod[3:5])
	ss, ok3 := num(tod[6:8])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	if day < 1 || day > time.Date(year, mon+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	return time.Date(year, mon, day, hh, mm, ss, 0, time.UTC), true
}

// num is digits (partial.go) for the short fields of a date.
func num(s string) (int, bool) {
	n, ok := digits(s)
	return int(n), ok
}

func month(s string) (time.Month, bool) {
	for i, m := range months {
		if foldEqual(s, m) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

func oneOf(s string, names []string) bool {
	for _, n := range names {
		if foldEqual(s, n) {
			return true
		}
	}
	return false
}

// foldEqual compares s, in any ASCII case, with the lower-case lower.
func foldEqual(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
