package cache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin module admin.api.cache: routes under /cache/ on
// Caddy's admin endpoint (never on a site) to inspect and purge what every
// live cache handler stores. Handlers are identified by their name (the
// handler's name option, or a generated one shown in every response);
// every route takes an optional handler=<name> (query) or "handler" (body)
// to address one of them. Errors are caddy.APIError values, which Caddy's
// admin endpoint logs and answers as JSON {"error": "..."}: 400 for bad
// input, 404 for an unknown key, handler or route, 405 for a wrong method,
// 500 when a store fails.
//
//	GET  /cache/entries?prefix=&host=&tag=&older_than=&status=&limit=&cursor=&handler=
//	     {"entries": [entry...], "next_cursor": "..."}; older_than=<duration>
//	     keeps responses at least that old (current age), status=<code>
//	     those stored with that status; entries are sorted by
//	     handler then key; limit defaults to 100 (at most 10000); pass
//	     next_cursor back as cursor for the next page (with one handler in
//	     scope, the last key returned works as a cursor too); host matches
//	     the key's host exactly (with its port when not the default);
//	     index=1 also lists Vary index entries.
//	GET  /cache/entries/<url-escaped key>[?body=1]
//	     the key escaped as one path segment (encodeURIComponent,
//	     url.PathEscape): "/" as %2F, the newline of key headers as %0A;
//	     one entry with its header (and body: "body" when it is UTF-8,
//	     else "body_base64"). A Vary variant's key is shown, and taken,
//	     as <primary key>#vary=<32 hex digits> (see displayKey).
//	POST /cache/purge  {"url"|"prefix"|"host"|"tag"|"group": "...", "all": true, "origin": "...", "dry_run": bool, "handler": "..."}
//	     (origin only with group: scheme://host[:port]; see groups.go)
//	     {"dry_run": bool, "removed": n, "results": [{"handler", "backend", "removed", "keys", "error"}]}
//	POST /cache/expired {"stale": bool, "dry_run": bool, "handler": "..."}
//	     removes entries past their expiry (with stale, also those past
//	     their freshness); same answer as purge, where a dry run's result
//	     has "uncounted": true when the store sweeps expired entries
//	     itself but cannot count them (the real run removes those too).
//	GET  /cache/explain?url=...&method=GET&header=Name:Value...
//	     {"url", "method", "results": [{"handler", "backend", "key",
//	     "outcome": "hit|stale|revalidate|miss|bypass|error", "reason", "entry"}]}
//	GET  /cache/stats
//	     {"handlers": [{"handler", "backend", "entries", "bytes", "evictions",
//	     "hits", "stale", "revalidated", "misses", "bypass", "errors", "hit_ratio"}]}
//	GET  /cache/snapshot, POST /cache/snapshot
//	     export and import a handler's entries (see snapshot.go)
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.cache",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the /cache/ route.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/cache/", Handler: caddy.AdminHandlerFunc(a.serve)},
		{Pattern: "/cache/snapshot", Handler: caddy.AdminHandlerFunc(a.snapshot)}, // snapshot.go
	}
}

// Limits of the admin API.
const (
	defaultListLimit = 100
	maxListLimit     = 10000
	maxAdminBody     = 1 << 20
)

// apiError returns an error answered with status: a caddy.APIError, which
// Caddy's admin endpoint logs and writes as {"error": "..."}.
func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return apiError(http.StatusBadRequest, format, args...)
}

func notFound(format string, args ...any) error {
	return apiError(http.StatusNotFound, format, args...)
}

// serve dispatches /cache/ requests. Errors go back to Caddy's admin
// endpoint as caddy.APIError (it logs them and answers {"error": "..."}):
// with the status of an APIError inside, keeping the outer message (which
// names the handler or the step), else 500.
func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	return asAPIError(a.route(w, r))
}

// asAPIError returns err as a caddy.APIError value (nil stays nil).
func asAPIError(err error) error {
	if err == nil {
		return nil
	}
	if _, direct := err.(caddy.APIError); direct { //nolint:errorlint // Caddy's handleError asserts the type directly
		return err
	}
	if ae, ok := errors.AsType[caddy.APIError](err); ok {
		return caddy.APIError{HTTPStatus: ae.HTTPStatus, Err: err}
	}
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
}

func (a *AdminAPI) route(w http.ResponseWriter, r *http.Request) error {
	p := r.URL.EscapedPath()
	method := func(m string) error {
		if r.Method != m {
			w.Header().Set("Allow", m)
			return apiError(http.StatusMethodNotAllowed, "%s %s: method not allowed, use %s", r.Method, p, m)
		}
		return nil
	}
	var err error
	switch {
	case p == "/cache/entries":
		if err = method(http.MethodGet); err == nil {
			err = a.list(w, r)
		}
	case strings.HasPrefix(p, "/cache/entries/"):
		if err = method(http.MethodGet); err == nil {
			err = a.inspect(w, r, strings.TrimPrefix(p, "/cache/entries/"))
		}
	case p == "/cache/purge":
		if err = method(http.MethodPost); err == nil {
			err = a.purge(w, r)
		}
	case p == "/cache/expired":
		if err = method(http.MethodPost); err == nil {
			err = a.expired(w, r)
		}
	case p == "/cache/explain":
		if err = method(http.MethodGet); err == nil {
			err = a.explain(w, r)
		}
	case p == "/cache/stats":
		if err = method(http.MethodGet); err == nil {
			err = a.stats(w, r)
		}
	default:
		err = notFound("%s: no such cache API route (entries, entries/<key>, purge, expired, explain, stats)", p)
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// scope returns the handlers a request addresses: the one named, or all.
func scope(name string) ([]*Handler, error) {
	if name == "" {
		return liveHandlers(), nil
	}
	if h := handlerNamed(name); h != nil {
		return []*Handler{h}, nil
	}
	var names []string
	for _, h := range liveHandlers() {
		names = append(names, h.ops.name)
	}
	return nil, notFound("handler %q: no such cache handler (live: %s)", name, strings.Join(names, ", "))
}

// decodeBody reads a JSON request body strictly into v; an empty body is
// allowed when emptyOK.
func decodeBody(r *http.Request, v any, emptyOK bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return badRequest("reading body: %v", err)
	}
	if len(body) > maxAdminBody {
		return badRequest("body larger than %d bytes", maxAdminBody)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if emptyOK {
			return nil
		}
		return badRequest("body: a JSON object is required")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: more than one JSON value")
	}
	return nil
}

// entryInfo is an entry as the admin API shows it.
type entryInfo struct {
	Handler string `json:"handler"`
	Backend string `json:"backend"`
	Key     string `json:"key"`
	URL     string `json:"url"`
	// KeyHeaders are the request header values the key includes.
	KeyHeaders map[string]string `json:"key_headers,omitempty"`
	// Kind is "response" or "vary-index".
	Kind   string `json:"kind"`
	Status int    `json:"status,omitempty"`
	// Size is the body size in bytes.
	Size     int64     `json:"size"`
	StoredAt time.Time `json:"stored_at,omitzero"`
	// FreshUntil is when the response becomes stale.
	FreshUntil time.Time `json:"fresh_until,omitzero"`
	// Expires is when the store forgets the entry.
	Expires time.Time `json:"expires,omitzero"`
	// Age is the current age in seconds.
	Age   int64 `json:"age"`
	Fresh bool  `json:"fresh"`
	// Tags are the surrogate keys.
	Tags []string `json:"tags,omitempty"`
	// Groups are the cache groups (RFC 9875) of the response's origin it
	// belongs to.
	Groups []string `json:"groups,omitempty"`
	// Vary holds the selecting request header values of a variant.
	Vary map[string]string `json:"vary,omitempty"`
	// VaryNames and Variants describe a Vary index.
	VaryNames []string `json:"vary_names,omitempty"`
	Variants  []string `json:"variants,omitempty"`
	// Ranges lists the stored parts of a partial entry (status 206),
	// e.g. "bytes 0-99/1000".
	Ranges     []string    `json:"ranges,omitempty"`
	Header     http.Header `json:"header,omitempty"`
	Body       *string     `json:"body,omitempty"`
	BodyBase64 *string     `json:"body_base64,omitempty"`
}

func (h *Handler) entryInfo(key string, e *storage.Entry, now time.Time) entryInfo {
	info := entryInfo{
		Handler: h.ops.name, Backend: h.backendName, Key: displayKey(unscoped(key)), URL: e.URL,
		KeyHeaders: keyHeaders(key), Kind: "response", Status: e.Status,
		Size: e.BodySize, Expires: e.Expires, Tags: surrogateTags(e.Tags), Groups: entryGroups(e.Tags), Vary: e.VaryRequest,
	}
	if e.Body != nil {
		info.Size = int64(len(e.Body))
	}
	if info.URL == "" {
		info.URL = urlOfKey(key)
	}
	if e.Kind == storage.KindVary {
		info.Kind, info.Status, info.VaryNames, info.Vary = "vary-index", 0, e.Vary, nil
		info.Variants = displayKeys(unscopedKeys(e.Variants))
		return info
	}
	if e.Status == http.StatusPartialContent {
		info.Ranges = e.Header["Content-Range"]
	}
	info.StoredAt = e.ResponseTime
	info.FreshUntil = e.ResponseTime.Add(e.Lifetime - e.InitialAge)
	age := currentAge(e, now)
	info.Age = int64(age / time.Second)
	info.Fresh = age < e.Lifetime
	return info
}

// keyHeaders returns the request header values a key includes.
func keyHeaders(key string) map[string]string {
	if i := strings.Index(key, "\x00vary:"); i >= 0 {
		key = key[:i]
	}
	i := strings.IndexByte(key, '\n')
	if i < 0 {
		return nil
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(key[i+1:], "\n") {
		name, val, _ := strings.Cut(line, ":")
		out[name] = val
	}
	return out
}

// Variant keys end in "\x00vary:" and 32 hex digits (variantKey). A NUL
// cannot be passed on a command line, typed or pasted from a terminal, so
// every key the admin API and the CLI show has that suffix written
// "#vary=" and the same digits, and every key they take may be written
// either way. Clients do not send fragments, so "#" appears in a URL key
// only when a client sends a raw "#" in the query (invalid in a request
// target, RFC 9112 §3.2, but accepted by Go's server): such a primary key
// ending in "#vary=" and 32 hex digits is shown as it is, and on input the
// variant is looked up before it (storedKeys).
const (
	rawVariantSep     = "\x00vary:"
	displayVariantSep = "#vary="
)

// displayKey returns the printable form of an unscoped key: a variant's
// "\x00vary:" suffix written "#vary=". Other keys are returned as they are.
func displayKey(k string) string {
	i := len(k) - variantSuffixLen
	if i >= 0 && k[i:i+len(rawVariantSep)] == rawVariantSep {
		return k[:i] + displayVariantSep + k[i+len(rawVariantSep):]
	}
	return k
}

// displayKeys applies displayKey to each key, in place.
func displayKeys(keys []string) []string {
	for i, k := range keys {
		keys[i] = displayKey(k)
	}
	return keys
}

// storedKeys returns the unscoped stored keys an admin key can name, the
// likelier first: for a key in the printable variant form, the variant key
// and then the key as given; else the key as given.
func storedKeys(k string) []string {
	n := len(displayVariantSep) + 32
	i := len(k) - n
	if i < 0 || k[i:i+len(displayVariantSep)] != displayVariantSep || !isLowerHex(k[len(k)-32:]) ||
		strings.IndexByte(k, 0) >= 0 {
		return []string{k}
	}
	return []string{k[:i] + rawVariantSep + k[len(k)-32:], k}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; ('0' > c || c > '9') && ('a' > c || c > 'f') {
			return false
		}
	}
	return true
}

// hostOfKey returns the host part of a key.
func hostOfKey(key string) string {
	_, after, ok := strings.Cut(key, "://")
	if !ok {
		return ""
	}
	rest := after
	if j := strings.IndexAny(rest, "/?\n\x00"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// listItem is an entry found by a listing, before sorting.
type listItem struct {
	key  string
	meta *storage.Entry
}

// list answers GET /cache/entries.
func (a *AdminAPI) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	hs, err := scope(q.Get("handler"))
	if err != nil {
		return err
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxListLimit {
			return badRequest("limit %q: want a number from 1 to %d", v, maxListLimit)
		}
		limit = n
	}
	prefix := q.Get("prefix")
	if prefix != "" {
		prefix = normalizePrefix(prefix)
	}
	host := strings.ToLower(q.Get("host"))
	tag := q.Get("tag")
	index := q.Get("index") == "1" || q.Get("index") == "true"
	older, status, err := listFilters(q)
	if err != nil {
		return err
	}

	// cursor: opaque (handler NUL stored key, base64url) or, with one
	// handler in scope, a key as shown
	var curHandler, curKey string
	if c := q.Get("cursor"); c != "" {
		if strings.Contains(c, "://") {
			if len(hs) != 1 {
				return badRequest("cursor: a key as cursor needs exactly one handler in scope (add handler=<name>)")
			}
			curHandler, curKey = hs[0].ops.name, storedKeys(c)[0]
		} else {
			raw, err := base64.RawURLEncoding.DecodeString(c)
			name, key, ok := strings.Cut(string(raw), "\x00")
			if err != nil || !ok {
				return badRequest("cursor %q: not a cursor from a previous page", c)
			}
			curHandler, curKey = name, key
		}
	}

	var out []entryInfo
	next, lastKey := "", ""
	for i, h := range hs {
		now := h.now()
		if h.ops.name < curHandler {
			continue
		}
		after := ""
		if h.ops.name == curHandler {
			after = h.scope + curKey
		}
		need := limit - len(out)
		if h.ops.lister == nil {
			continue
		}
		items, more, err := h.listSorted(r.Context(), h.scope+prefix, after, need, func(k string, e *storage.Entry) bool {
			if e.Kind == storage.KindVary && !index {
				return false
			}
			if host != "" && hostOfKey(k) != host {
				return false
			}
			if (older > 0 || status != 0) && e.Kind == storage.KindVary {
				return false // an index has no status or age
			}
			if status != 0 && e.Status != status {
				return false
			}
			if older > 0 && currentAge(e, now) < older {
				return false
			}
			return tag == "" || slices.Contains(e.Tags, tag)
		})
		if err != nil {
			return fmt.Errorf("handler %s: %w", h.ops.name, err)
		}
		for _, it := range items {
			out = append(out, h.entryInfo(it.key, it.meta, now))
			lastKey = unscoped(it.key)
		}
		if len(out) >= limit {
			if more || i < len(hs)-1 {
				next = base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].Handler + "\x00" + lastKey))
			}
			break
		}
	}
	if out == nil {
		out = []entryInfo{}
	}
	writeJSON(w, http.StatusOK, struct {
		Entries    []entryInfo `json:"entries"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}{out, next})
	return nil
}

// listFilters reads the older_than (a duration: entries at least that old)
// and status (an HTTP status code) filters of GET /cache/entries.
func listFilters(q url.Values) (older time.Duration, status int, err error) {
	if v := q.Get("older_than"); v != "" {
		older, err = caddy.ParseDuration(v)
		if err != nil || older <= 0 {
			return 0, 0, badRequest("older_than %q: want a positive duration such as 90s, 1h or 2d", v)
		}
	}
	if v := q.Get("status"); v != "" {
		status, err = strconv.Atoi(v)
		if err != nil || status < 100 || status > 599 {
			return 0, 0, badRequest("status %q: want an HTTP status code from 100 to 599", v)
		}
	}
	return older, status, nil
}

// listSorted returns the n smallest keys greater than after (with prefix,
// accepted by keep) and whether there were more: from a store that lists in
// key order, by reading from after on until one more than n is accepted;
// else by walking every entry and keeping the n smallest.
func (h *Handler) listSorted(ctx context.Context, prefix, after string, n int, keep func(string, *storage.Entry) bool) ([]listItem, bool, error) {
	var items []listItem
	if ol, ok := optional[storage.OrderedLister](h.ops.raw); ok {
		more := false
		err := ol.ListFrom(ctx, prefix, after, func(k string, meta *storage.Entry) error {
			if k <= after || !keep(k, meta) {
				return nil
			}
			if len(items) == n {
				more = true
				return storage.ErrStop
			}
			items = append(items, listItem{k, meta})
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("listing entries: %w", err)
		}
		return items, more, nil
	}
	total := 0
	trim := func() {
		slices.SortFunc(items, func(a, b listItem) int { return strings.Compare(a.key, b.key) })
		if len(items) > n {
			items = items[:n]
		}
	}
	err := h.ops.lister.List(ctx, prefix, func(k string, meta *storage.Entry) error {
		if k <= after || !keep(k, meta) {
			return nil
		}
		total++
		items = append(items, listItem{k, meta})
		if len(items) >= 2*n+16 {
			trim()
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("listing entries: %w", err)
	}
	trim()
	return items, total > len(items), nil
}

// inspect answers GET /cache/entries/<key>.
func (a *AdminAPI) inspect(w http.ResponseWriter, r *http.Request, escaped string) error {
	key, err := url.PathUnescape(escaped)
	if err != nil || key == "" {
		return badRequest("key %q: want the URL-escaped cache key after /cache/entries/", escaped)
	}
	q := r.URL.Query()
	hs, err := scope(q.Get("handler"))
	if err != nil {
		return err
	}
	withBody := q.Get("body") == "1" || q.Get("body") == "true"
	for _, h := range hs {
		for _, k := range storedKeys(key) {
			e, err := h.load(r.Context(), h.scope+k)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("handler %s: reading %q: %w", h.ops.name, displayKey(k), err)
			}
			info := h.entryInfo(h.scope+k, e, time.Now())
			info.Header = e.Header
			if withBody && e.Kind == storage.KindResponse {
				if utf8.Valid(e.Body) {
					s := string(e.Body)
					info.Body = &s
				} else {
					s := base64.StdEncoding.EncodeToString(e.Body)
					info.BodyBase64 = &s
				}
			}
			writeJSON(w, http.StatusOK, info)
			return nil
		}
	}
	return notFound("key %q: not in the cache", displayKey(key))
}

// purgeAnswer is the answer of purge and expired.
type purgeAnswer struct {
	DryRun  bool          `json:"dry_run"`
	Removed int           `json:"removed"`
	Results []purgeResult `json:"results"`
}

func writePurgeAnswer(w http.ResponseWriter, dry bool, results []purgeResult) {
	ans := purgeAnswer{DryRun: dry, Results: results}
	status := http.StatusOK
	for _, res := range results {
		ans.Removed += res.Removed
		if res.Error != "" {
			status = http.StatusInternalServerError
		}
	}
	if ans.Results == nil {
		ans.Results = []purgeResult{}
	}
	if status != http.StatusOK {
		// The answer carries every handler's result, so it is written
		// here rather than returned as a caddy.APIError; log it as Caddy
		// logs those.
		for _, res := range results {
			if res.Error != "" {
				caddy.Log().Named("admin.api").Error("request error",
					zap.String("handler", res.Handler), zap.String("backend", res.Backend),
					zap.String("error", res.Error), zap.Int("status_code", status))
			}
		}
	}
	writeJSON(w, status, ans)
}

// purge answers POST /cache/purge.
func (a *AdminAPI) purge(w http.ResponseWriter, r *http.Request) error {
	var req purgeRequest
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	u, err := req.check()
	if err != nil {
		return badRequest("%v", err)
	}
	hs, err := scope(req.Handler)
	if err != nil {
		return err
	}
	var results []purgeResult
	for _, h := range hs {
		res := h.purge(r.Context(), req, u)
		displayKeys(res.Keys)
		results = append(results, res)
	}
	writePurgeAnswer(w, req.DryRun, results)
	return nil
}

// expiredRequest is the body of POST /cache/expired.
type expiredRequest struct {
	// Stale also removes responses that are past their freshness but
	// still kept for revalidation or stale serving.
	Stale   bool   `json:"stale,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
	Handler string `json:"handler,omitempty"`
}

// expiredResult is one handler's part of the answer of POST
// /cache/expired.
type expiredResult struct {
	purgeResult
	// Uncounted is set on a dry run when the store removes expired entries
	// in a sweep of its own (storage.Expirer) but cannot count them
	// without removing them (no CountExpired): the real run removes those
	// too, beyond Removed.
	Uncounted bool `json:"uncounted,omitempty"`
}

// expiredCounter is implemented by stores with a storage.Expirer that can
// count what DeleteExpired would remove now, without removing anything.
// The dry run of POST /cache/expired needs it: a Lister never shows an
// expired entry, so walking the entries cannot find what the sweep
// removes.
type expiredCounter interface {
	// CountExpired returns how many entries DeleteExpired would remove
	// now.
	CountExpired(ctx context.Context) (int64, error)
}

// expired answers POST /cache/expired.
func (a *AdminAPI) expired(w http.ResponseWriter, r *http.Request) error {
	var req expiredRequest
	if err := decodeBody(r, &req, true); err != nil {
		return err
	}
	hs, err := scope(req.Handler)
	if err != nil {
		return err
	}
	ans := struct {
		DryRun  bool            `json:"dry_run"`
		Removed int             `json:"removed"`
		Results []expiredResult `json:"results"`
	}{DryRun: req.DryRun, Results: []expiredResult{}}
	status := http.StatusOK
	// A store's sweep removes the expired entries of every handler on it:
	// run (or count) it once per store, as the first handler on it finds
	// them all and the next ones none.
	swept := map[string]bool{}
	for _, h := range hs {
		res := h.removeExpired(r.Context(), req.Stale, req.DryRun, !swept[h.storageID])
		swept[h.storageID] = true
		ans.Removed += res.Removed
		if res.Error != "" {
			status = http.StatusInternalServerError
		}
		ans.Results = append(ans.Results, res)
	}
	writeJSON(w, status, ans)
	return nil
}

// removeExpired removes h's entries past their expiry (and with stale,
// past their freshness), or with dry counts them: through the store's own
// sweep when it has one and sweep is set (the sweep covers every handler
// on the store), and by walking h's entries when the store can list them.
func (h *Handler) removeExpired(ctx context.Context, stale, dry, sweep bool) expiredResult {
	res := expiredResult{purgeResult: purgeResult{Handler: h.ops.name, Backend: h.backendName}}
	var errs []string
	if ex, ok := optional[storage.Expirer](h.ops.raw); ok && sweep {
		var n int64
		var err error
		c, counts := optional[expiredCounter](h.ops.raw)
		switch {
		case !dry:
			n, err = ex.DeleteExpired(ctx)
		case counts:
			n, err = c.CountExpired(ctx)
		default:
			res.Uncounted = true
		}
		res.Removed += int(n)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if h.ops.lister != nil {
		now := h.now()
		var ks keySet
		err := h.walkKeys(ctx, []string{h.scope}, func(_ string, e *storage.Entry) bool {
			if e.Expired(now) {
				return true
			}
			return stale && e.Kind == storage.KindResponse && currentAge(e, now) >= e.Lifetime
		}, &ks)
		if err == nil && !dry {
			err = h.deleteKeys(ctx, &ks)
			h.announce(invalidation{Keys: append(slices.Clone(ks.responses), ks.others...)})
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
		res.Removed += len(ks.responses)
		res.Keys = displayKeys(unscopedKeys(ks.responses))
		slices.Sort(res.Keys)
		if len(res.Keys) > maxReportedKeys {
			res.Keys, res.KeysTruncated = res.Keys[:maxReportedKeys], true
		}
	}
	res.Error = strings.Join(errs, "; ")
	return res
}

// explain answers GET /cache/explain.
func (a *AdminAPI) explain(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req, err := explainQuery(q)
	if err != nil {
		return badRequest("%v", err)
	}
	hs, err := scope(q.Get("handler"))
	if err != nil {
		return err
	}
	results := []explainResult{}
	for _, h := range hs {
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.StorageTimeout))
		// the request explained did not arrive on a listener: its
		// authority is the URL's, not the admin endpoint's
		rctx := context.WithValue(ctx, http.LocalAddrContextKey, nil)
		res := h.explain(ctx, req.WithContext(rctx))
		res.Key, res.VariantKey = displayKey(res.Key), displayKey(res.VariantKey)
		results = append(results, res)
		cancel()
	}
	writeJSON(w, http.StatusOK, struct {
		URL     string          `json:"url"`
		Method  string          `json:"method"`
		Results []explainResult `json:"results"`
	}{req.URL.String(), req.Method, results})
	return nil
}

// handlerStats is one handler in GET /cache/stats.
type handlerStats struct {
	Handler string `json:"handler"`
	Backend string `json:"backend"`
	// Entries, Bytes and Evictions come from the store (shared by every
	// handler that uses the same store).
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Evictions int64 `json:"evictions"`
	// Request counts since the process started (they survive reloads).
	Hits        int64 `json:"hits"`
	Stale       int64 `json:"stale"`
	Revalidated int64 `json:"revalidated"`
	Misses      int64 `json:"misses"`
	Bypass      int64 `json:"bypass"`
	Errors      int64 `json:"errors"`
	// HitRatio is (hits + stale) / (hits + stale + revalidated + misses +
	// errors); bypassed requests do not count. 0 without requests.
	HitRatio float64 `json:"hit_ratio"`
	Error    string  `json:"error,omitempty"`
}

// stats answers GET /cache/stats.
func (a *AdminAPI) stats(w http.ResponseWriter, r *http.Request) error {
	hs, err := scope(r.URL.Query().Get("handler"))
	if err != nil {
		return err
	}
	out := []handlerStats{}
	for _, h := range hs {
		out = append(out, h.stats(r.Context()))
	}
	writeJSON(w, http.StatusOK, struct {
		Handlers []handlerStats `json:"handlers"`
	}{out})
	return nil
}

func (h *Handler) stats(ctx context.Context) handlerStats {
	s := handlerStats{Handler: h.ops.name, Backend: h.backendName}
	c := h.ops.metrics.counts()
	s.Hits, s.Stale, s.Revalidated = int64(c[resultHit]), int64(c[resultStale]), int64(c[resultRevalidated])
	s.Misses, s.Bypass, s.Errors = int64(c[resultMiss]), int64(c[resultBypass]), int64(c[resultError])
	if d := s.Hits + s.Stale + s.Revalidated + s.Misses + s.Errors; d > 0 {
		s.HitRatio = float64(s.Hits+s.Stale) / float64(d)
	}
	switch {
	case h.ops.statser != nil:
		st, err := h.storeStats(ctx)
		if err != nil {
			s.Error = "reading store stats: " + err.Error()
		}
		s.Entries, s.Bytes, s.Evictions = st.Entries, st.Bytes, st.Evictions
	case h.ops.lister != nil:
		err := h.ops.lister.List(ctx, "", func(k string, e *storage.Entry) error {
			if strings.HasPrefix(k, syncPrefix) {
				return nil // an invalidation record, not a response
			}
			s.Entries++
			s.Bytes += e.BodySize
			return nil
		})
		if err != nil {
			s.Error = "counting entries: " + err.Error()
		}
	}
	return s
}

// Interface guards.
var (
	_ caddy.Module      = (*AdminAPI)(nil)
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)
