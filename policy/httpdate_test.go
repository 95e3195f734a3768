package policy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	y2099 := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: invalid
	}{
		{"9110 §5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", want},
		{"9110 §5.6.7 rfc850-date", "Sunday, 06-Nov-94 08:49:37 GMT", want},
		{"9110 §5.6.7 asctime-date, space-padded day", "Sun Nov  6 08:49:37 1994", want},
		{"9110 §5.6.7 asctime-date, two-digit day", "Sun Nov 16 08:49:37 1994", want.AddDate(0, 0, 10)},
		{"9110 §5.6.7 rfc850-date two-digit year 50 is 2050", "Thursday, 18-Aug-50 02:01:18 GMT", time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)},
		{"9110 §5.6.7 rfc850-date two-digit year 70 is 1970", "Thursday, 01-Jan-70 00:00:00 GMT", time.Unix(0, 0).UTC()},
		{"9110 §5.6.7 asctime in the suite's form", "Thu Aug  8 02:01:18 2050", time.Date(2050, 8, 8, 2, 1, 18, 0, time.UTC)},
		{"9110 §5.6.7 Wednesday, longest day name", "Wednesday, 09-Nov-94 08:49:37 GMT", want.AddDate(0, 0, 3)},
		{"9110 §5.6.7 leap second", "Thu, 31 Dec 1998 23:59:60 GMT", time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9110 §5.6.7 far future", "Sun, 21 Nov 2286 04:46:39 GMT", time.Date(2286, 11, 21, 4, 46, 39, 0, time.UTC)},
		{"9110 §5.6.7 29 February in a leap year", "Thu, 29 Feb 2024 00:00:00 GMT", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},

		// case of day, month and GMT tolerated
		{"9110 §5.6.7 lower-case names tolerated", "thu, 01 jan 2099 00:00:00 gmt", y2099},
		{"9110 §5.6.7 upper-case day tolerated", "THU, 01 Jan 2099 00:00:00 GMT", y2099},
		{"9110 §5.6.7 upper-case month tolerated", "Thu, 01 JAN 2099 00:00:00 GMT", y2099},
		{"9110 §5.6.7 gMT tolerated", "Thu, 01 Jan 2099 00:00:00 gMT", y2099},
		{"9110 §5.6.7 rfc850 lower case tolerated", "sunday, 06-nov-94 08:49:37 gmt", want},

		// invalid (RFC 9111 §5.3 then treats an Expires as already expired)
		{"9110 §5.6.7 one-digit hour", "Thu, 01 Jan 2099 1:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 one-digit hour in the suite's form", "Thu, 18 Aug 2050 2:01:18 GMT", time.Time{}},
		{"9110 §5.6.7 two spaces between fields", "Thu, 01  Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 two spaces, the suite's form", "Thu, 18  Aug  2050 02:01:18 GMT", time.Time{}},
		{"9110 §5.6.7 two spaces after the comma", "Thu,  01 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 no comma", "Thu 01 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 no comma, suite's 32-bit date", "Tue 19 Jan 2038 14:14:08 GMT", time.Time{}},
		{"9110 §5.6.7 UTC is not GMT", "Thu, 01 Jan 2099 00:00:00 UTC", time.Time{}},
		{"9110 §5.6.7 AEST", "Thu, 18 Aug 2050 02:01:18 AEST", time.Time{}},
		{"9110 §5.6.7 numeric zone", "Thu, 01 Jan 2099 00:00:00 +0000", time.Time{}},
		{"9110 §5.6.7 two-digit year in IMF-fixdate", "Thu, 18 Aug 50 02:01:18 GMT", time.Time{}},
		{"9110 §5.6.7 dashes in IMF-fixdate", "Thu, 18-Aug-2050 02:01:18 GMT", time.Time{}},
		{"9110 §5.6.7 periods in the time", "Thu, 18 Aug 2050 02.01.18 GMT", time.Time{}},
		{"9110 §5.6.7 one-digit day", "Thu, 1 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 hour 24", "Thu, 01 Jan 2099 24:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 minute 60", "Thu, 01 Jan 2099 00:60:00 GMT", time.Time{}},
		{"9110 §5.6.7 second 61", "Thu, 01 Jan 2099 00:00:61 GMT", time.Time{}},
		{"9110 §5.6.7 day 0", "Thu, 00 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 30 February", "Thu, 30 Feb 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 29 February in a common year", "Thu, 29 Feb 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 unknown month", "Thu, 01 Foo 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 unknown day name", "Thx, 01 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 long day name in IMF-fixdate", "Thursday, 01 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 short day name in rfc850", "Sun, 06-Nov-94 08:49:37 GMT", time.Time{}},
		{"9110 §5.6.7 four-digit year in rfc850", "Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"9110 §5.6.7 asctime without the day pad", "Sun Nov 6 08:49:37 1994", time.Time{}},
		{"9110 §5.6.7 asctime with a zone", "Sun Nov  6 08:49:37 1994 GMT", time.Time{}},
		{"9110 §5.6.7 leading space", " Thu, 01 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9110 §5.6.7 trailing text", "Thu, 01 Jan 2099 00:00:00 GMT x", time.Time{}},
		{"9110 §5.6.7 sign in a number", "Thu, +1 Jan 2099 00:00:00 GMT", time.Time{}},
		{"9111 §5.3 Expires: 0", "0", time.Time{}},
		{"9110 §5.6.7 empty", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseHTTPDate(tt.in)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("ParseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
			}
		})
	}
}

// An Expires that is not an HTTP-date means the response is already
// expired (RFC 9111 §5.3), even when Go's lenient parser would read it.
func TestInvalidExpiresIsExpired(t *testing.T) {
	for _, exp := range []string{"Thu, 01 Jan 2099 1:00:00 GMT", "Thu, 01  Jan 2099 00:00:00 GMT"} {
		if _, err := http.ParseTime(exp); err != nil {
			t.Fatalf("http.ParseTime(%q) fails (%v): the test no longer shows the difference", exp, err)
		}
		h := http.Header{"Date": {httpDate(t0)}, "Expires": {exp}}
		got, src := FreshnessLifetime(200, h, Directives{}, t0, nil)
		if got != 0 || src != SourceExpires {
			t.Errorf("9111 §5.3 Expires %q: lifetime %v %s, want 0 expires", exp, got, src)
		}
	}
	h := http.Header{"Date": {httpDate(t0)}, "Expires": {"thu, 01 jan 2099 00:00:00 gmt"}}
	if got, _ := FreshnessLifetime(200, h, Directives{}, t0, nil); got <= 0 {
		t.Errorf("9110 §5.6.7 lower-case Expires: lifetime %v, want it reused", got)
	}
}

// FuzzParseHTTPDate: whatever the input, an accepted date formats back (as
// an IMF-fixdate) to a string that parses to the same instant, and every
// accepted input is one of the three lengths the grammar allows.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Thu, 01 Jan 2099 1:00:00 GMT", "Wednesday, 31-Dec-69 23:59:60 GMT", "thu, 29 feb 2024 00:00:00 gmt", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseHTTPDate(s)
		if !ok {
			if !got.IsZero() {
				t.Fatalf("rejected %q but returned %v", s, got)
			}
			return
		}
		if got.Location() != time.UTC || got.Nanosecond() != 0 {
			t.Fatalf("%q: %v is not whole seconds in UTC", s, got)
		}
		if n := len(s); n != 29 && n != 24 && (n < 30 || n > 33 || !strings.HasSuffix(strings.ToLower(s), " gmt")) {
			t.Fatalf("accepted %q of length %d", s, n)
		}
		if got.Year() < 10000 {
			back, ok := ParseHTTPDate(got.Format(http.TimeFormat))
			if !ok || !back.Equal(got) {
				t.Fatalf("%q -> %v -> %q -> %v %v", s, got, got.Format(http.TimeFormat), back, ok)
			}
		}
	})
}

// rfc850Date formats t as an RFC 9110 §5.6.7 rfc850-date (time.RFC850
// writes the zone as "UTC", which is not one).
func rfc850Date(t time.Time) string { return t.UTC().Format("Monday, 02-Jan-06 15:04:05 GMT") }
