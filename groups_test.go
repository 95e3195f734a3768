package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseGroups(t *testing.T) {
	long := strings.Repeat("g", maxGroupNameLen)
	many := make([]string, 0, maxGroupsPerResponse+5)
	var manyField []string
	for i := range maxGroupsPerResponse + 5 {
		many = append(many, fmt.Sprintf("g%d", i))
		manyField = append(manyField, fmt.Sprintf("%q", many[i]))
	}
	cases := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"9875 §2 a list of strings", []string{`"a", "b"`}, []string{"a", "b"}},
		{"absent", nil, nil},
		{"empty field", []string{""}, nil},
		{"several field lines are one list", []string{`"a"`, `"b", "c"`}, []string{"a", "b", "c"}},
		{"a token is a valid member, but not a String: ignored", []string{`tok, "a"`}, []string{"a"}},
		{"non-string members ignored", []string{`1, ?1, :aGk=:, ("x" "y"), "a", 2.5`}, []string{"a"}},
		{"parameters ignored", []string{`"a";p=1, "b";q`}, []string{"a", "b"}},
		{"invalid Structured Field: the whole field is ignored", []string{`"a", "unterminated`}, nil},
		{"invalid: trailing comma", []string{`"a",`}, nil},
		{"invalid: non-ASCII in a string", []string{"\"a\", \"\u00e9\""}, nil},
		{"invalid: one bad line spoils the field", []string{`"a"`, `"b" junk`}, nil},
		{"case-sensitive names are distinct", []string{`"News", "news"`}, []string{"News", "news"}},
		{"duplicates once", []string{`"a", "a", "b"`}, []string{"a", "b"}},
		{"empty name ignored", []string{`"", "a"`}, []string{"a"}},
		{"escapes and spaces", []string{`"a \"q\" b"`}, []string{`a "q" b`}},
		{"longest name kept", []string{`"` + long + `"`}, []string{long}},
		{"name over the bound ignored", []string{`"` + long + `g", "a"`}, []string{"a"}},
		{"at most 32 groups", []string{strings.Join(manyField, ", ")}, many[:maxGroupsPerResponse]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseGroups(tc.lines)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("parseGroups(%q) = %q, want %q", tc.lines, got, tc.want)
			}
		})
	}
}

func TestGroupTagsCannotCollideWithSurrogateKeys(t *testing.T) {
	env := newEnv(t, "", nil)
	// A Surrogate-Key that spells a group tag is split at its spaces.
	tags := env.h.tagsOf(http.Header{"Surrogate-Key": {groupTag("http://a.example", "g")}, "Cache-Tag": {"cache-group x,y"}})
	for _, tg := range tags {
		if strings.HasPrefix(tg, groupTagPrefix) {
			t.Fatalf("surrogate key %q is in the group namespace", tg)
		}
	}
	if got := surrogateTags(append(tags, groupTag("http://a.example", "g"))); !slices.Equal(got, tags) {
		t.Fatalf("surrogateTags = %q, want %q", got, tags)
	}
}

func TestOriginOfURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com/a?b": "https://example.com",
		"http://h:8080":           "http://h:8080",
		"http://h:8080?x":         "http://h:8080",
		"no-scheme":               "",
	} {
		if got := originOfURL(in); got != want {
			t.Errorf("originOfURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// groupOrigin answers GET with Cache-Groups from the ?g= parameter
// (comma-separated names), and POST with Cache-Group-Invalidation from
// ?inv=, with the status in ?status= (default 200).
func groupOrigin(w http.ResponseWriter, r *http.Request, n int64) error {
	q := r.URL.Query()
	if r.Method == http.MethodGet {
		if g := q.Get("g"); g != "" {
			var quoted []string
			for s := range strings.SplitSeq(g, ",") {
				quoted = append(quoted, fmt.Sprintf("%q", s))
			}
			w.Header().Set("Cache-Groups", strings.Join(quoted, ", "))
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s%s-%d", r.Host, r.URL.Path, n)
		return nil
	}
	if inv := q.Get("inv"); inv != "" {
		w.Header().Set("Cache-Group-Invalidation", inv)
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		_, _ = fmt.Sscan(s, &status)
	}
	w.WriteHeader(status)
	return nil
}

// hostDo sends a request with the given Host to the test server.
func (e *testEnv) hostDo(method, host, path string) result {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func TestCacheGroupInvalidation(t *testing.T) {
	env := newEnv(t, "", groupOrigin)
	get := func(host, path string) result { return env.hostDo(http.MethodGet, host, path) }
	// a.example: /1 and /2 in "list", /3 in "other"; b.example: /1 in "list"
	for _, p := range []string{"/1?g=list", "/2?g=other,list", "/3?g=other", "/4"} {
		wantStatus(t, get("a.example", p), "stored")
	}
	r := get("b.example", "/1?g=list")
	wantStatus(t, r, "stored")
	if cg := r.header.Get("Cache-Groups"); cg != `"list"` {
		t.Fatalf("Cache-Groups to the client: %q, want it forwarded", cg)
	}
	wantStatus(t, get("a.example", "/1?g=list"), "hit")
	if cg := get("a.example", "/1?g=list").header.Get("Cache-Groups"); cg != `"list"` {
		t.Fatalf("Cache-Groups on a hit: %q", cg)
	}

	// ignored: a safe method's response, an error status, another group's
	// name in another case, an invalid field
	env.hostDo(http.MethodPost, "a.example", "/x?inv=%22list%22&status=500")
	env.hostDo(http.MethodPost, "a.example", "/x?inv=%22List%22")
	env.hostDo(http.MethodPost, "a.example", "/x?inv=%22list")
	for _, p := range []string{"/1?g=list", "/2?g=other,list", "/3?g=other", "/4"} {
		wantStatus(t, get("a.example", p), "hit")
	}

	before := env.hits.Load()
	env.hostDo(http.MethodPost, "a.example", "/x?inv=%22list%22")
	wantStatus(t, get("a.example", "/1?g=list"), "fwd=")
	wantStatus(t, get("a.example", "/2?g=other,list"), "fwd=")
	wantStatus(t, get("a.example", "/3?g=other"), "hit")
	wantStatus(t, get("a.example", "/4"), "hit")
	wantStatus(t, get("b.example", "/1?g=list"), "hit") // another origin
	if got := env.hits.Load() - before; got != 3 {
		t.Fatalf("origin saw %d requests, want 3 (the POST and the two refetches)", got)
	}
}

func TestCacheGroupInvalidationIgnoredOnSafeMethods(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/inv" {
			w.Header().Set("Cache-Group-Invalidation", `"g"`)
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Groups", `"g"`)
		}
		fmt.Fprintf(w, "%d", n)
		return nil
	})
	env.get("/a")
	env.get("/inv")
	env.do(http.MethodHead, "/inv")
	wantStatus(t, env.get("/a"), "hit")
}

func TestPurgeByGroup(t *testing.T) {
	env := newEnv(t, `{"name":"grp"}`, groupOrigin)
	get := func(host, path string) result { return env.hostDo(http.MethodGet, host, path) }
	get("a.example", "/1?g=g")
	get("a.example", "/2?g=h")
	get("b.example", "/1?g=g")
	get("b.example", "/2?g=G")
	port := env.srv.Listener.Addr().String()[strings.LastIndexByte(env.srv.Listener.Addr().String(), ':')+1:]

	req := purgeRequest{Group: "g", Origin: "http://A.example:" + port, DryRun: true}
	if _, err := req.check(); err != nil {
		t.Fatal(err)
	}
	res := env.h.purge(context.Background(), req, nil)
	if res.Removed != 1 || len(res.Keys) != 1 || !strings.Contains(res.Keys[0], "a.example") {
		t.Fatalf("dry run of group g of a.example: %+v", res)
	}
	wantStatus(t, get("a.example", "/1?g=g"), "hit")

	req.DryRun = false
	res = env.h.purge(context.Background(), req, nil)
	if res.Removed != 1 || res.Error != "" {
		t.Fatalf("purge group g of a.example: %+v", res)
	}
	wantStatus(t, get("a.example", "/1?g=g"), "fwd=")
	wantStatus(t, get("b.example", "/1?g=g"), "hit")

	// every origin
	res = env.h.purge(context.Background(), purgeRequest{Group: "g"}, nil)
	if res.Removed != 2 {
		t.Fatalf("purge group g everywhere: %+v", res)
	}
	wantStatus(t, get("b.example", "/1?g=g"), "fwd=")
	wantStatus(t, get("b.example", "/2?g=G"), "hit")
	wantStatus(t, get("a.example", "/2?g=h"), "hit")

	// explain and the entry listing name the groups
	info := env.h.explain(context.Background(), mustExplainRequest(t, "http://b.example:"+port+"/2?g=G"))
	if info.Entry == nil || !slices.Equal(info.Entry.Groups, []string{"G"}) || len(info.Entry.Tags) != 0 {
		t.Fatalf("explain entry: %+v", info.Entry)
	}
}

func mustExplainRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := explainRequest("", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPurgeRequestGroupChecks(t *testing.T) {
	for _, tc := range []struct {
		req  purgeRequest
		want string
	}{
		{purgeRequest{Group: "g", Tag: "t"}, "exactly one"},
		{purgeRequest{Origin: "https://a.example", Tag: "t"}, "only with group"},
		{purgeRequest{Group: "g", Origin: "https://a.example/path"}, "scheme://host"},
		{purgeRequest{Group: "g", Origin: "ftp://a.example"}, "scheme://host"},
		{purgeRequest{Group: strings.Repeat("x", maxGroupNameLen+1)}, "longer than"},
		{purgeRequest{Tag: "cache-group * g"}, "space"},
	} {
		_, err := tc.req.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check(%+v) = %v, want an error with %q", tc.req, err, tc.want)
		}
	}
	if _, err := (&purgeRequest{Group: "g", Origin: "https://a.example:443/"}).check(); err != nil {
		t.Errorf("a valid origin: %v", err)
	}
}

func TestCacheCommandPurgeGroup(t *testing.T) {
	env := opsEnv(t, "", groupOrigin)
	env.get("/1?g=news")
	env.get("/2?g=news,sport")
	env.get("/3?g=sport")
	addr := cliAdmin(t)
	h := "--handler=" + env.name()
	out, err := runCLI(t, addr, "explain", env.srv.URL+"/2?g=news,sport", h)
	if err != nil || !strings.Contains(out, `groups: "news", "sport"`) {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "purge", "--group", "news", "--origin", "http://elsewhere.example", h)
	if err != nil || !strings.Contains(out, "total: removed 0") {
		t.Fatalf("purge --group of another origin: %v\n%s", err, out)
	}
	out, err = runCLI(t, addr, "purge", "--group", "news", "--origin", env.srv.URL, h)
	if err != nil || !strings.Contains(out, "total: removed 2") {
		t.Fatalf("purge --group --origin: %v\n%s", err, out)
	}
	wantStatus(t, env.get("/1?g=news"), "fwd=uri-miss")
	wantStatus(t, env.get("/3?g=sport"), "hit")
	out, err = runCLI(t, addr, "purge", "--group", "sport", h)
	if err != nil || !strings.Contains(out, "total: removed 1") {
		t.Fatalf("purge --group: %v\n%s", err, out)
	}
	if _, err := runCLI(t, addr, "purge", "--origin", env.srv.URL, "--tag", "x", h); err == nil || !strings.Contains(err.Error(), "only with group") {
		t.Fatalf("--origin without --group: %v", err)
	}
	// the admin API answers a bad origin with 400
	var ans map[string]any
	if code := admin(t, http.MethodPost, "/cache/purge", map[string]any{"group": "g", "origin": "nope"}, &ans); code != http.StatusBadRequest {
		t.Fatalf("bad origin: %d %v", code, ans)
	}
}

// A 304 that answers a revalidation updates the stored header (RFC 9111
// §4.3.4), its Cache-Groups included: the entry moves to the new groups.
func TestCacheGroupsUpdatedBy304(t *testing.T) {
	env := newEnv(t, "", func(w http.ResponseWriter, r *http.Request, n int64) error {
		if r.Method == http.MethodPost {
			w.Header().Set("Cache-Group-Invalidation", r.URL.Query().Get("inv"))
			return nil
		}
		w.Header()["Date"] = nil
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Cache-Control", "max-age=10")
		if r.Header.Get("If-None-Match") == `"e"` {
			w.Header().Set("Cache-Groups", `"new"`)
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Cache-Groups", `"old"`)
		fmt.Fprintf(w, "body-%d", n)
		return nil
	})
	env.get("/a")
	env.clock.Advance(20 * time.Second)
	r := env.get("/a")
	wantStatus(t, r, "fwd-status=304")
	if cg := r.header.Get("Cache-Groups"); cg != `"new"` {
		t.Fatalf("Cache-Groups after the 304: %q", cg)
	}
	env.do(http.MethodPost, "/x?inv=%22old%22")
	wantStatus(t, env.get("/a"), "hit")
	env.do(http.MethodPost, "/x?inv=%22new%22")
	wantStatus(t, env.get("/a"), "fwd=uri-miss")
}
