package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// The Grafana dashboard and the Prometheus alert rules in dashboards/ use
// only metrics and labels the cache exports: a renamed metric or label (or
// a renamed result) fails here. The expressions are taken apart by a small
// PromQL reader (promRefs), checked against a real scrape of Caddy's
// /metrics after traffic that makes every series appear, a purge included.

// matcher is one label matcher of a selector: name op "value".
type matcher struct{ label, op, value string }

// selector is one metric selector of an expression.
type selector struct {
	metric   string
	matchers []matcher
}

// promRefs is what an expression refers to: its selectors, the labels of
// its grouping clauses (by, without, on, ignoring, group_left,
// group_right), and the functions it calls.
type promRefs struct {
	selectors []selector
	grouping  []string
	funcs     []string
}

var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true,
}

// aggregations may be followed by a grouping clause instead of '('.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// parsePromQL reads the references out of expr. It knows enough PromQL
// for dashboards and rules: selectors with matchers, range and subquery
// brackets, grouping clauses, function calls, numbers, durations, strings
// and Grafana's $variables.
func parsePromQL(expr string) (promRefs, error) {
	var refs promRefs
	s := []rune(expr)
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
	}
	isIdentStart := func(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
	isIdent := func(r rune) bool { return isIdentStart(r) || unicode.IsDigit(r) }
	ident := func() string {
		start := i
		for i < len(s) && isIdent(s[i]) {
			i++
		}
		return string(s[start:i])
	}
	str := func() (string, error) {
		q := s[i]
		i++
		var b strings.Builder
		for i < len(s) && s[i] != q {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteRune(s[i])
			i++
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated string in %q", expr)
		}
		i++
		return b.String(), nil
	}
	// matchers reads {label op "value", ...}; i is at '{'.
	matchers := func() ([]matcher, error) {
		i++
		var out []matcher
		for {
			skipSpace()
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated selector in %q", expr)
			}
			if s[i] == '}' {
				i++
				return out, nil
			}
			if s[i] == ',' {
				i++
				continue
			}
			if !isIdentStart(s[i]) {
				return nil, fmt.Errorf("label name expected at %q", string(s[i:]))
			}
			m := matcher{label: ident()}
			skipSpace()
			for i < len(s) && strings.ContainsRune("=!~", s[i]) {
				m.op += string(s[i])
				i++
			}
			if m.op == "" {
				return nil, fmt.Errorf("matcher operator expected after %q in %q", m.label, expr)
			}
			skipSpace()
			if i >= len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
				return nil, fmt.Errorf("quoted value expected after %s%s in %q", m.label, m.op, expr)
			}
			v, err := str()
			if err != nil {
				return nil, err
			}
			m.value = v
			out = append(out, m)
		}
	}
	for i < len(s) {
		r := s[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '"' || r == '\'' || r == '`':
			if _, err := str(); err != nil {
				return refs, err
			}
		case r == '[':
			// range or subquery: [5m], [$__rate_interval], [1h:5m]
			end := strings.IndexRune(string(s[i:]), ']')
			if end < 0 {
				return refs, fmt.Errorf("unterminated range in %q", expr)
			}
			i += len([]rune(string(s[i:])[:end])) + 1
		case r == '$':
			i++
			ident()
		case unicode.IsDigit(r) || r == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case r == '{':
			// a selector without a metric name
			ms, err := matchers()
			if err != nil {
				return refs, err
			}
			refs.selectors = append(refs.selectors, selector{matchers: ms})
		case isIdentStart(r):
			name := ident()
			skipSpace()
			next := rune(0)
			if i < len(s) {
				next = s[i]
			}
			lower := strings.ToLower(name)
			switch {
			case grouping[lower]:
				if next != '(' {
					continue // group_left without labels
				}
				end := strings.IndexRune(string(s[i:]), ')')
				if end < 0 {
					return refs, fmt.Errorf("unterminated %s clause in %q", name, expr)
				}
				inner := string(s[i:])[1:end]
				i += len([]rune(string(s[i:])[:end])) + 1
				for l := range strings.SplitSeq(inner, ",") {
					if l = strings.TrimSpace(l); l != "" {
						refs.grouping = append(refs.grouping, l)
					}
				}
			case promKeywords[lower]:
			case next == '(' || aggregations[lower]:
				refs.funcs = append(refs.funcs, name)
			case next == '{':
				ms, err := matchers()
				if err != nil {
					return refs, err
				}
				refs.selectors = append(refs.selectors, selector{metric: name, matchers: ms})
			default:
				refs.selectors = append(refs.selectors, selector{metric: name})
			}
		default:
			i++ // operators, parentheses, commas
		}
	}
	return refs, nil
}

// exposition is a scrape: metric name -> label name -> values seen.
type exposition map[string]map[string]map[string]bool

// parseExposition reads Prometheus text format.
func parseExposition(text string) (exposition, error) {
	out := exposition{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, hasLabels := strings.Cut(line, "{")
		if !hasLabels {
			name, _, _ = strings.Cut(line, " ")
		}
		labels := out[name]
		if labels == nil {
			labels = map[string]map[string]bool{}
			out[name] = labels
		}
		if !hasLabels {
			continue
		}
		refs, err := parsePromQL("x{" + rest[:strings.LastIndex(rest, "}")+1])
		if err != nil || len(refs.selectors) != 1 {
			return nil, fmt.Errorf("exposition line %q: %v", line, err)
		}
		for _, m := range refs.selectors[0].matchers {
			if labels[m.label] == nil {
				labels[m.label] = map[string]bool{}
			}
			labels[m.label][m.value] = true
		}
	}
	return out, sc.Err()
}

var simpleAlternatives = regexp.MustCompile(`^[a-zA-Z0-9_]+(\|[a-zA-Z0-9_]+)*$`)

// check returns what expr (from where) names that the scrape lacks: a
// metric, a label of a selector, a label value matched exactly or by a
// plain alternation (a|b), a grouping label or a label in extra (an
// alert's $labels) missing from a metric of the expression.
func (exp exposition) check(where, expr string, extra ...string) []string {
	refs, err := parsePromQL(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var problems []string
	if len(refs.selectors) == 0 {
		problems = append(problems, fmt.Sprintf("%s: no metric in %q", where, expr))
	}
	for _, sel := range refs.selectors {
		labels, ok := exp[sel.metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported", where, sel.metric))
			continue
		}
		for _, m := range sel.matchers {
			values, ok := labels[m.label]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: metric %s has no label %s", where, sel.metric, m.label))
				continue
			}
			if strings.Contains(m.value, "$") {
				continue // a dashboard variable
			}
			var want []string
			switch {
			case m.op == "=" || m.op == "!=":
				want = []string{m.value}
			case simpleAlternatives.MatchString(m.value):
				want = strings.Split(m.value, "|")
			}
			for _, v := range want {
				if !values[v] {
					problems = append(problems, fmt.Sprintf("%s: metric %s has no series with %s=%q", where, sel.metric, m.label, v))
				}
			}
		}
		for _, l := range slices.Concat(refs.grouping, extra) {
			if _, ok := labels[l]; !ok {
				problems = append(problems, fmt.Sprintf("%s: metric %s has no label %s (grouped or used by the expression)", where, sel.metric, l))
			}
		}
	}
	return problems
}

// dashboardExprs returns the PromQL of every panel target and the
// variable queries of the dashboard (the label of a label_values query
// joins the labels its metric must have), keyed by where they are.
func dashboardExprs(t *testing.T, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int            `json:"id"`
			Title      string         `json:"title"`
			Datasource map[string]any `json:"datasource"`
			Targets    []struct {
				Expr       string         `json:"expr"`
				Datasource map[string]any `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid or no panels", path)
	}
	out := map[string][]string{}
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" || v.Name != "datasource" {
				t.Errorf("datasource variable %q query %s, want a prometheus datasource variable named datasource", v.Name, v.Query)
			}
			hasDS = true
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(q.Query)
			if m == nil {
				t.Fatalf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			}
			out["variable "+v.Name] = []string{m[1], m[2]}
		}
	}
	if !hasDS {
		t.Error("the dashboard has no datasource variable (it would not import on another Grafana)")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			if tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q target %d datasource %v, want ${datasource}", p.Title, i, tg.Datasource)
			}
			out[fmt.Sprintf("panel %q target %d", p.Title, i)] = []string{tg.Expr}
		}
	}
	return out
}

// ruleExprs returns the expression of every alert of a rules file and the
// labels its annotations use ($labels.x).
func ruleExprs(t *testing.T, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	labelRef := regexp.MustCompile(`\$labels\.(\w+)`)
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			v := []string{r.Expr}
			for _, a := range r.Annotations {
				for _, m := range labelRef.FindAllStringSubmatch(a, -1) {
					if !slices.Contains(v[1:], m[1]) {
						v = append(v, m[1])
					}
				}
			}
			out["alert "+r.Alert] = v
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", path)
	}
	return out
}

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	root := filepath.Join("..", "dashboards")
	o := opsOrigin(t)
	in := startCaddy(t, opsSiteOn(fmt.Sprintf("storage sqlite %s {\n\t\t\tmax_size 10MiB\n\t\t}\n\t\tmemory off", filepath.Join(t.TempDir(), "c.db")), o, ""))
	in.get("/d1")
	in.get("/d1")
	in.get("/d2")
	in.purge(map[string]any{"url": in.site + "/d2"})
	resp, err := client.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&b)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	exp, err := parseExposition(b.String())
	if err != nil {
		t.Fatal(err)
	}

	exprs := dashboardExprs(t, filepath.Join(root, "caddy-cache.json"))
	for where, v := range ruleExprs(t, filepath.Join(root, "alerts.yml")) {
		exprs[where] = v
	}
	wheres := slices.Sorted(func(yield func(string) bool) {
		for k := range exprs {
			if !yield(k) {
				return
			}
		}
	})
	used := map[string]bool{}
	for _, where := range wheres {
		v := exprs[where]
		for _, p := range exp.check(where, v[0], v[1:]...) {
			t.Error(p)
		}
		refs, _ := parsePromQL(v[0])
		for _, s := range refs.selectors {
			used[s.metric] = true
		}
	}
	// The check can fail: each expression with its first metric renamed
	// does.
	for _, where := range wheres {
		v := exprs[where]
		refs, _ := parsePromQL(v[0])
		first := refs.selectors[0].metric
		renamed := strings.Replace(v[0], first, first+"_renamed", 1)
		if len(exp.check(where, renamed, v[1:]...)) == 0 {
			t.Errorf("%s: renaming %s to %s_renamed went unnoticed", where, first, first)
		}
	}
	// Every metric the cache exports is on the dashboard.
	var missing []string
	for name := range exp {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !strings.HasPrefix(name, "caddy_http_cache_") || used[name] || used[base+"_bucket"] || used[base+"_count"] {
			continue
		}
		missing = append(missing, name)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("exported cache metrics on no panel or rule: %v", missing)
	}
}

// The rules file is valid for Prometheus: promtool (Debian package
// prometheus, installed by scripts/test-deps.sh) checks it.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): run scripts/test-deps.sh (or make test)", err)
	}
	out, err := exec.Command(promtool, "check", "rules", filepath.Join("..", "dashboards", "alerts.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules said:\n%s", out)
	}
}

func TestPromQLReader(t *testing.T) {
	refs, err := parsePromQL(`histogram_quantile(0.99, sum by (backend, op, le) (rate(caddy_x_bucket{backend=~"$backend", op!="get"}[$__rate_interval])))
		/ on (backend) group_left max without (instance) (caddy_y) > 0.5 and caddy_z offset 5m`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range refs.selectors {
		names = append(names, s.metric)
	}
	if want := []string{"caddy_x_bucket", "caddy_y", "caddy_z"}; !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	if want := []string{"backend", "op", "le", "backend", "instance"}; !slices.Equal(refs.grouping, want) {
		t.Errorf("grouping labels %v, want %v", refs.grouping, want)
	}
	if want := []matcher{{"backend", "=~", "$backend"}, {"op", "!=", "get"}}; !slices.Equal(refs.selectors[0].matchers, want) {
		t.Errorf("matchers %v, want %v", refs.selectors[0].matchers, want)
	}
	if want := []string{"histogram_quantile", "sum", "rate", "max"}; !slices.Equal(refs.funcs, want) {
		t.Errorf("functions %v, want %v", refs.funcs, want)
	}
	for _, bad := range []string{`x{a="b"`, `x{a}`, `x{a=b}`, `x{a="b}`, `sum by (a`} {
		if _, err := parsePromQL(bad); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestExpositionCheck(t *testing.T) {
	exp, err := parseExposition(`# HELP caddy_http_cache_requests_total x
# TYPE caddy_http_cache_requests_total counter
caddy_http_cache_requests_total{handler="a",result="hit"} 1
caddy_http_cache_requests_total{handler="a",result="miss"} 2
caddy_http_cache_entries{backend="sqlite",handler="a"} 3
up 1
`)
	if err != nil {
		t.Fatal(err)
	}
	good := `sum by (handler) (rate(caddy_http_cache_requests_total{handler=~"$handler",result=~"hit|miss"}[5m])) / sum by (handler) (caddy_http_cache_entries{})`
	if p := exp.check("good", good); len(p) != 0 {
		t.Fatalf("problems in a correct expression: %v", p)
	}
	for _, c := range []struct{ expr, want string }{
		{`rate(caddy_http_cache_request_total[5m])`, "metric caddy_http_cache_request_total is not exported"},
		{`caddy_http_cache_requests_total{handlr="a"}`, "has no label handlr"},
		{`caddy_http_cache_requests_total{result="hits"}`, `has no series with result="hits"`},
		{`caddy_http_cache_requests_total{result=~"hit|stael"}`, `has no series with result="stael"`},
		{`sum by (backend) (caddy_http_cache_requests_total)`, "has no label backend"},
		{`1 + 2`, "no metric"},
	} {
		p := exp.check("bad", c.expr)
		if len(p) != 1 || !strings.Contains(p[0], c.want) {
			t.Errorf("check(%q) = %q, want one problem saying %q", c.expr, p, c.want)
		}
	}
	if p := exp.check("alert", `caddy_http_cache_entries`, "backend", "instance"); len(p) != 1 || !strings.Contains(p[0], "no label instance") {
		t.Errorf("annotation label check: %q", p)
	}
}
