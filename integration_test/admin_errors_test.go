package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// Errors of the cache admin API go through Caddy's admin endpoint as
// caddy.APIError: the status and the {"error": "..."} body users see, and
// one "request error" line in Caddy's admin.api log for each.
func TestAdminAPIErrorsLoggedByCaddy(t *testing.T) {
	o := opsOrigin(t)
	logPath, logOpt := logFile(t, "INFO")
	in := startCaddyfile(t, loopbackSite(logOpt, opsSite(t, o, "")))
	in.get("/e1")
	cases := []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/cache/entries?status=99", http.StatusBadRequest, `status "99"`},
		{"GET", "/cache/entries?older_than=soon", http.StatusBadRequest, `older_than "soon"`},
		{"GET", "/cache/entries?handler=nope", http.StatusNotFound, `handler "nope": no such cache handler`},
		{"GET", "/cache/nothing-here", http.StatusNotFound, "no such cache API route"},
		{"POST", "/cache/stats", http.StatusMethodNotAllowed, "method not allowed, use GET"},
		{"POST", "/cache/purge", http.StatusBadRequest, "a JSON object is required"},
	}
	for _, c := range cases {
		var ans struct {
			Error string `json:"error"`
		}
		if code := in.api(c.method, c.path, nil, &ans); code != c.status || !strings.Contains(ans.Error, c.msg) {
			t.Errorf("%s %s: %d %q, want %d and an error containing %q", c.method, c.path, code, ans.Error, c.status, c.msg)
		}
	}

	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logged := map[string]int{} // error message -> status_code
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Logger string `json:"logger"`
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Error  string `json:"error"`
			Status int    `json:"status_code"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Logger == "admin.api" && l.Msg == "request error" && l.Level == "error" {
			logged[l.Error] = l.Status
		}
	}
	for _, c := range cases {
		found := false
		for msg, status := range logged {
			if strings.Contains(msg, c.msg) && status == c.status {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s: no admin.api request error line with status %d and %q; logged: %s", c.method, c.path, c.status, c.msg, fmt.Sprint(logged))
		}
	}
}
