package conformance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// testRecord is one test as written by run-suite.mjs.
type testRecord struct {
	ID        string   `json:"id"`
	Suite     string   `json:"suite"`
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // required, optimal or check
	DependsOn []string `json:"depends_on"`
	Outcome   string   `json:"outcome"` // see outcomes
}

// Outcomes, as the suite's display code classifies a result
// (lib/display.mjs determineTestResult, with dependencies honoured):
//
//   - pass: the test passed (required and optimal tests).
//   - yes / no: a check test; informational, neither is a failure.
//   - fail: a required test's assertion failed.
//   - optional_fail: an optimal test's assertion failed.
//   - setup_fail: an assertion marked as setup failed (the cache did
//     something the test needs in order to measure what it is about,
//     e.g. a PUT was refused or a request was not made conditional).
//   - retry: the origin saw the same request twice (the cache retried).
//   - dependency_fail: a test in depends_on did not pass or say yes, so
//     this result is not meaningful, whatever it was.
//   - harness_fail: never produced by this suite version (its check is
//     dead code); a thrown error that is neither an assertion nor a setup
//     error (a fetch error: connection reset, timeout) is counted as a
//     fail/optional_fail/no instead. harnessError below finds those.
//   - untested: no result.
const (
	outcomePass = "pass"
	outcomeYes  = "yes"
)

// passing reports whether the outcome counts as passing for the gate and
// the score: pass, or yes for a check test.
func passing(outcome string) bool { return outcome == outcomePass || outcome == outcomeYes }

// result is one entry of the suite's results JSON: true, or
// [error name, message].
type result struct {
	OK      bool
	Name    string // Assertion, Setup, or a thrown error's name (FetchError, TypeError, ...)
	Message string
}

// UnmarshalJSON accepts true or a two-element array of strings.
func (r *result) UnmarshalJSON(b []byte) error {
	var ok bool
	if err := json.Unmarshal(b, &ok); err == nil {
		if !ok {
			return fmt.Errorf("result false: want true or [name, message]")
		}
		r.OK = true
		return nil
	}
	var pair []string
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("result %s: want true or [name, message]", b)
	}
	r.Name, r.Message = pair[0], pair[1]
	return nil
}

// harnessError reports whether the test failed by a thrown error other
// than the suite's assertion and setup errors, i.e. the exchange itself
// broke (timeout, connection reset, unparsable response).
func (r result) harnessError() bool {
	return !r.OK && r.Name != "Assertion" && r.Name != "Setup"
}

// suiteRun is the outcome of one run of the suite.
type suiteRun struct {
	Tests   []testRecord      // in suite order
	Results map[string]result // by test id
}

// loadRun reads the two files run-suite.mjs writes.
func loadRun(resultsPath, testsPath string) (*suiteRun, error) {
	run := &suiteRun{}
	raw, err := os.ReadFile(testsPath)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &run.Tests); err != nil {
		return nil, fmt.Errorf("%s: %w", testsPath, err)
	}
	raw, err = os.ReadFile(resultsPath)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &run.Results); err != nil {
		return nil, fmt.Errorf("%s: %w", resultsPath, err)
	}
	for _, rec := range run.Tests {
		if rec.Kind != "required" && rec.Kind != "optimal" && rec.Kind != "check" {
			return nil, fmt.Errorf("test %s: unknown kind %q", rec.ID, rec.Kind)
		}
	}
	return run, nil
}

// knownFailures maps a test id to the reason it does not pass.
type knownFailures map[string]string

// parseKnownFailures reads lines of the form `test-id  # reason`. Blank
// lines and lines starting with # are comments. Every entry needs a reason;
// an id may appear once.
func parseKnownFailures(r io.Reader) (knownFailures, error) {
	known := knownFailures{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, found := strings.Cut(line, "#")
		id, reason = strings.TrimSpace(id), strings.TrimSpace(reason)
		if strings.ContainsAny(id, " \t") {
			return nil, fmt.Errorf("line %d: %q: want one test id, then # and a reason", n, id)
		}
		if !found || reason == "" {
			return nil, fmt.Errorf("line %d: %s: missing the reason (`id  # why it fails`)", n, id)
		}
		if _, dup := known[id]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", n, id)
		}
		known[id] = reason
	}
	return known, sc.Err()
}

// gateReport is what the gate found.
type gateReport struct {
	Unexpected []testRecord // not passing and not listed
	NowPassing []string     // listed but passing: the list can shrink
	Unknown    []string     // listed but not a test of the suite (full runs only)
}

// gate compares a run with the known failures. fullRun says whether every
// test of the suite ran, so listed ids that did not run are stale.
func gate(run *suiteRun, known knownFailures, fullRun bool) gateReport {
	var rep gateReport
	ran := map[string]bool{}
	for _, rec := range run.Tests {
		ran[rec.ID] = true
		_, listed := known[rec.ID]
		switch {
		case !passing(rec.Outcome) && !listed:
			rep.Unexpected = append(rep.Unexpected, rec)
		case passing(rec.Outcome) && listed:
			rep.NowPassing = append(rep.NowPassing, rec.ID)
		}
	}
	if fullRun {
		for id := range known {
			if !ran[id] {
				rep.Unknown = append(rep.Unknown, id)
			}
		}
		slices.Sort(rep.Unknown)
	}
	return rep
}

// score is passed of total for one kind of test.
type score struct{ Passed, Total int }

// scores counts passing tests per kind.
func scores(run *suiteRun) map[string]score {
	s := map[string]score{}
	for _, rec := range run.Tests {
		sc := s[rec.Kind]
		sc.Total++
		if passing(rec.Outcome) {
			sc.Passed++
		}
		s[rec.Kind] = sc
	}
	return s
}

// scoreLine is the one-line summary: required, optional (the suite's
// "optimal") and check tests passed of total.
func scoreLine(run *suiteRun) string {
	s := scores(run)
	return fmt.Sprintf("required: %d/%d, optional: %d/%d, check: %d/%d",
		s["required"].Passed, s["required"].Total,
		s["optimal"].Passed, s["optimal"].Total,
		s["check"].Passed, s["check"].Total)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// detail explains why a record does not pass, in one line.
func (run *suiteRun) detail(rec testRecord) string {
	res := run.Results[rec.ID]
	if rec.Outcome == "dependency_fail" {
		var failed []string
		byID := map[string]testRecord{}
		for _, r := range run.Tests {
			byID[r.ID] = r
		}
		for _, dep := range rec.DependsOn {
			if !passing(byID[dep].Outcome) {
				failed = append(failed, dep)
			}
		}
		return "depends on " + strings.Join(failed, ", ")
	}
	msg := uuidRE.ReplaceAllString(res.Message, "<uuid>")
	if res.harnessError() {
		return "harness error: " + res.Name + ": " + msg
	}
	return msg
}

// kindOrder sorts kinds as the summary lists them.
var kindOrder = map[string]int{"required": 0, "optimal": 1, "check": 2}

// renderSummary writes summary.md: the score line, counts per outcome and
// the tests that do not pass with the reason the suite gave.
//
// config describes the configuration under test, in Markdown.
func renderSummary(run *suiteRun, config string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HTTP cache test suite results\n\n")
	fmt.Fprintf(&b, "The suite behind cache-tests.fyi (`http-cache-tests` %s, plus the CDN-Cache-Control\n"+
		"tests of its repository, `cdn-cache-control.mjs`), run against Caddy with\n"+
		"%s.\n\n"+
		"`optional` counts the suite's \"optimal\" tests; `check` tests are informational\n"+
		"(passing means \"yes\"). A test whose dependency does not pass does not pass either.\n"+
		"Regenerate with `CONFORMANCE_UPDATE=1 go test -run TestConformance ./integration_test/conformance/`.\n\n",
		suiteVersion, config)
	fmt.Fprintf(&b, "%s\n\n", scoreLine(run))

	outcomes := map[string]map[string]int{}
	harness := map[string]int{}
	for _, rec := range run.Tests {
		if outcomes[rec.Kind] == nil {
			outcomes[rec.Kind] = map[string]int{}
		}
		outcomes[rec.Kind][rec.Outcome]++
		if rec.Outcome != "dependency_fail" && run.Results[rec.ID].harnessError() {
			harness[rec.Kind]++
		}
	}
	b.WriteString("| kind | total | pass/yes | fail | no | setup fail | dependency fail | retry | harness error |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, kind := range []string{"required", "optimal", "check"} {
		o := outcomes[kind]
		total := 0
		for _, n := range o {
			total += n
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d |\n", kind, total,
			o["pass"]+o["yes"], o["fail"]+o["optional_fail"], o["no"], o["setup_fail"],
			o["dependency_fail"], o["retry"], harness[kind])
	}

	var failing []testRecord
	for _, rec := range run.Tests {
		if !passing(rec.Outcome) {
			failing = append(failing, rec)
		}
	}
	sort.SliceStable(failing, func(i, j int) bool {
		if kindOrder[failing[i].Kind] != kindOrder[failing[j].Kind] {
			return kindOrder[failing[i].Kind] < kindOrder[failing[j].Kind]
		}
		return failing[i].ID < failing[j].ID
	})
	fmt.Fprintf(&b, "\n## Not passing (%d)\n\n", len(failing))
	b.WriteString("| test | kind | outcome | detail |\n| --- | --- | --- | --- |\n")
	for _, rec := range failing {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", rec.ID, rec.Kind, rec.Outcome, mdCell(run.detail(rec)))
	}
	return b.String()
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
