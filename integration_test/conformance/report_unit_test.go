package conformance

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseKnownFailures(t *testing.T) {
	known, err := parseKnownFailures(strings.NewReader(`
# comment
freshness-max-age-stale  # we keep serving it
  vary-2   #  not normalised   
`))
	if err != nil {
		t.Fatal(err)
	}
	want := knownFailures{"freshness-max-age-stale": "we keep serving it", "vary-2": "not normalised"}
	if !reflect.DeepEqual(known, want) {
		t.Fatalf("got %v, want %v", known, want)
	}

	for _, bad := range []struct{ in, errPart string }{
		{"a-test\n", "missing the reason"},
		{"a-test #   \n", "missing the reason"},
		{"a-test b-test # two ids\n", "want one test id"},
		{"a-test # one\na-test # two\n", "listed twice"},
	} {
		_, err := parseKnownFailures(strings.NewReader(bad.in))
		if err == nil || !strings.Contains(err.Error(), bad.errPart) {
			t.Errorf("%q: got error %v, want one containing %q", bad.in, err, bad.errPart)
		}
	}
}

func TestResultUnmarshal(t *testing.T) {
	var got map[string]result
	err := json.Unmarshal([]byte(`{"a": true, "b": ["Assertion", "no"], "c": ["FetchError", "timeout"]}`), &got)
	if err != nil {
		t.Fatal(err)
	}
	if !got["a"].OK || got["b"].OK || got["b"].Message != "no" {
		t.Fatalf("got %+v", got)
	}
	if got["a"].harnessError() || got["b"].harnessError() || !got["c"].harnessError() {
		t.Fatalf("harnessError wrong: %+v", got)
	}
	for _, bad := range []string{`false`, `["x"]`, `3`} {
		var r result
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func testRun() *suiteRun {
	return &suiteRun{
		Tests: []testRecord{
			{ID: "r-pass", Kind: "required", Outcome: "pass"},
			{ID: "r-fail", Kind: "required", Outcome: "fail"},
			{ID: "r-dep", Kind: "required", Outcome: "dependency_fail", DependsOn: []string{"r-pass", "r-fail"}},
			{ID: "o-pass", Kind: "optimal", Outcome: "pass"},
			{ID: "o-fail", Kind: "optimal", Outcome: "optional_fail"},
			{ID: "c-yes", Kind: "check", Outcome: "yes"},
			{ID: "c-no", Kind: "check", Outcome: "no"},
		},
		Results: map[string]result{
			"r-pass": {OK: true},
			"r-fail": {Name: "Assertion", Message: `Response body is "x", not "0f1e2d3c-1111-4222-8333-444455556666"`},
			"r-dep":  {OK: true},
			"o-pass": {OK: true},
			"o-fail": {Name: "FetchError", Message: "network timeout"},
			"c-yes":  {OK: true},
			"c-no":   {Name: "Assertion", Message: "no"},
		},
	}
}

func TestGate(t *testing.T) {
	run := testRun()
	known := knownFailures{"r-fail": "x", "o-fail": "x", "c-no": "x", "o-pass": "fixed", "gone": "renamed"}
	rep := gate(run, known, true)
	var unexpected []string
	for _, rec := range rep.Unexpected {
		unexpected = append(unexpected, rec.ID)
	}
	if !reflect.DeepEqual(unexpected, []string{"r-dep"}) {
		t.Errorf("unexpected = %v, want [r-dep]", unexpected)
	}
	if !reflect.DeepEqual(rep.NowPassing, []string{"o-pass"}) {
		t.Errorf("now passing = %v, want [o-pass]", rep.NowPassing)
	}
	if !reflect.DeepEqual(rep.Unknown, []string{"gone"}) {
		t.Errorf("unknown = %v, want [gone]", rep.Unknown)
	}
	if rep := gate(run, known, false); rep.Unknown != nil {
		t.Errorf("partial run: unknown = %v, want none", rep.Unknown)
	}
}

func TestSummary(t *testing.T) {
	run := testRun()
	if got, want := scoreLine(run), "required: 1/3, optional: 1/2, check: 1/2"; got != want {
		t.Fatalf("score line %q, want %q", got, want)
	}
	md := renderSummary(run, "cache")
	for _, want := range []string{
		"required: 1/3, optional: 1/2, check: 1/2",
		"| required | 3 | 1 | 1 | 0 | 0 | 1 | 0 | 0 |",
		"| optimal | 2 | 1 | 1 | 0 | 0 | 0 | 0 | 1 |",
		"| `r-dep` | required | dependency_fail | depends on r-fail |",
		`not "<uuid>"`,
		"harness error: FetchError: network timeout",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}
