package cache

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// Values of {http.cache.status}.
const (
	statusHit         = "hit"
	statusMiss        = "miss"
	statusStale       = "stale"
	statusRevalidated = "revalidated"
	statusBypass      = "bypass"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if _, ok := r.Context().Value(caddyhttp.ErrorCtxKey).(error); ok {
		// In handle_errors: an error page must never be stored under the
		// URL that failed, nor a stored page hide the error.
		return h.bypass(w, r, next, "error-handler")
	}
	switch r.Method {
	case http.MethodGet:
		if !h.allowGET {
			return h.bypass(w, r, next, "method")
		}
	case http.MethodHead:
		if !h.allowHEAD {
			return h.bypass(w, r, next, "method")
		}
	default:
		if h.isPurge(r) {
			return h.servePurge(w, r)
		}
		if policy.IsUnsafe(r.Method) {
			return h.serveUnsafe(w, r, next)
		}
		return h.bypass(w, r, next, "method")
	}
	if reason := bypassReason(r); reason != "" {
		return h.bypass(w, r, next, reason)
	}
	key := h.cacheKey(r)
	if len(key) > maxPrimaryKeyLen {
		return h.bypass(w, r, next, "key-too-long")
	}
	x := &exchange{h: h, w: w, r: r, next: next, key: key, reqCC: h.requestDirectives(r)}
	// A handler before the cache (the header directive, which the
	// directive order runs first) wrote Cache-Control into the response
	// already: the origin's value is added to it, not replacing it.
	x.presetCC = len(w.Header()["Cache-Control"]) > 0
	x.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return x.serve()
}

// bypassReason returns why a GET/HEAD request must not use the cache at all.
func bypassReason(r *http.Request) string {
	// canonical keys, looked up directly: this runs on every request
	switch {
	case len(r.Header["Upgrade"]) > 0:
		return "upgrade"
	case r.ContentLength > 0 || len(r.TransferEncoding) > 0:
		return "request-body"
	case len(r.Header["X-Http-Method-Override"]) > 0 || len(r.Header["X-Method-Override"]) > 0 ||
		len(r.Header["X-Http-Method"]) > 0:
		return "method-override"
	case strings.IndexByte(r.RequestURI, '#') >= 0:
		// a raw '#' is not allowed in a request target (RFC 9112 §3.2);
		// keys never hold one, so "#vary=" in the admin API's keys is
		// unambiguous
		return "fragment"
	}
	return ""
}

// bypass passes the request on untouched but for Cache-Status.
func (h *Handler) bypass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, detail string) error {
	h.setCacheStatus(w.Header(), fwdMember("bypass", detail))
	h.count(resultBypass)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.cache.status", statusBypass)
		repl.Set("http.cache.detail", detail)
	}
	return next.ServeHTTP(w, r)
}

// serveUnsafe forwards an unsafe request and, when it succeeds, invalidates
// the stored responses of its target and of same-origin Location and
// Content-Location (RFC 9111 §4.4).
func (h *Handler) serveUnsafe(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rec := &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	h.setCacheStatus(rec.Header(), fwdMember("bypass", "method"))
	h.count(resultBypass)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.cache.status", statusBypass)
		repl.Set("http.cache.detail", "method")
	}
	err := next.ServeHTTP(rec, r)
	status := rec.status
	if status == 0 && err == nil {
		status = http.StatusOK
	}
	if err != nil || status < 200 || status >= 400 {
		return err
	}
	reqURL := h.effectiveURL(r)
	ctx, cancel := h.storageContext(context.WithoutCancel(r.Context()))
	defer cancel()
	for _, u := range policy.InvalidationTargets(reqURL, rec.Header()) {
		var ks keySet
		if err := h.urlKeys(ctx, u, &ks); err == nil {
			_ = h.deleteKeys(ctx, &ks)
			h.announce(invalidation{Keys: append(ks.responses, ks.others...)})
		}
	}
	h.invalidateGroups(ctx, r, rec.Header()) // RFC 9875 §3 (groups.go)
	return nil
}

type statusRecorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 && status >= 200 {
		s.status = status
	}
	s.ResponseWriterWrapper.WriteHeader(status)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(p)
}

// exchange is one cacheable request on its way through the handler.
type exchange struct {
	h    *Handler
	w    http.ResponseWriter
	r    *http.Request
	next caddyhttp.Handler
	repl *caddy.Replacer

	key      string // primary key
	reqCC    policy.Directives
	presetCC bool      // Cache-Control was in the response header before the cache ran
	now      time.Time // when the request arrived

	indexVary  []string    // the selecting names of the URL's Vary index, when the lookup found one
	passHeader http.Header // fields for this client only, never stored (a 304's Set-Cookie)
	flight     *flight     // the flight this request leads, if any
	flightKey  string
	claimCS    string       // our Cache-Status member once a held chunked body is complete
	lock       *clusterLock // the store's lock for the key, when this instance fetches it

	// what the lookup found
	stored    *storage.Entry // usable stored response (maybe stale)
	storedKey string         // its key: key, or a variant key
	fwd       string         // RFC 9211 fwd reason when forwarding
	detail    string

	// set while forwarding
	stale       *storage.Entry // the stored response the request could not use as is
	cond        *storage.Entry // stale, when it has validators: revalidated conditionally
	requestTime time.Time
	pending     *storage.Entry // response being collected for storing

	prep    prepared // prepared data of prepFor (see prepared)
	prepFor *storage.Entry
}

func (x *exchange) serve() error {
	h := x.h
	x.now = h.now()
	if h.hot == nil || h.hotBypassed() || !x.lookupHot() {
		ctx, cancel := h.storageContext(x.r.Context())
		x.lookup(ctx)
		cancel()
	}

	if e := x.stored; e != nil {
		use, why, age := h.reuse(e, x.prepared(e), x.reqCC, x.now)
		switch use {
		case policy.UseFresh:
			return x.serveStored(e, age, statusHit, x.refreshAhead(e, age)) // refresh.go
		case policy.UseStale:
			return x.serveStored(e, age, statusStale, why)
		case policy.UseStaleRevalidate:
			x.revalidateInBackground(e)
			return x.serveStored(e, age, statusStale, "stale-while-revalidate")
		}
		x.fwd, x.detail = "stale", why
		if x.reqCC.NoCache || x.reqCC.HasMaxAge || x.reqCC.HasMinFresh {
			x.fwd = "request"
		}
		x.useStale(e)
	}
	if x.reqCC.OnlyIfCached {
		return x.gatewayTimeout()
	}

	if x.coalescable() {
		// When the URL is known to vary, only requests for the same
		// variant wait for each other.
		fk := x.key
		if len(x.indexVary) > 0 {
			fk = h.variantLookupKey(x.key, x.indexVary, x.r)
		}
		f, leader := h.flights.join(fk)
		variantOf := func(names []string) string { return h.variantLookupKey(x.key, names, x.r) }
		if leader {
			x.flight, x.flightKey = f, fk
			defer h.flights.release(fk, f)
			if h.locker != nil {
				defer x.releaseLock()
				if served, err := x.waitForCluster(h.locker, fk); served {
					return err
				}
			}
		} else if f.wait(x.r.Context(), time.Duration(h.LockTimeout), variantOf) {
			if served, err := x.serveIfStored(); served {
				return err
			}
		}
	}
	return x.forward()
}

// reuse decides what to do with a stored response (with its prepared data
// p) for a request with the directives reqCC at now, and returns the
// response's current age: the one decision ServeHTTP acts on and explain
// reports.
func (h *Handler) reuse(e *storage.Entry, p *prepared, reqCC policy.Directives, now time.Time) (policy.Use, string, time.Duration) {
	age := currentAge(e, now)
	use, why := policy.Evaluate(age, e.Lifetime, h.reuseDirectives(p), reqCC, h.defaults())
	if reqCC.HasMaxAge && reqCC.MaxAge == 0 {
		// max-age=0 asks for validation even of a response aged 0s
		use, why = policy.Revalidate, "request max-age=0"
	}
	return use, why, age
}

// requestDirectives returns the request's cache directives, or none with
// request_cache_control ignore.
func (h *Handler) requestDirectives(r *http.Request) policy.Directives {
	if h.RequestCacheControl == "ignore" {
		return policy.Directives{}
	}
	return policy.RequestDirectives(r.Header)
}

// useStale records the stored response to revalidate (when it has a
// validator) and to fall back on when the origin fails (stale-if-error).
func (x *exchange) useStale(e *storage.Entry) {
	x.stale, x.cond = e, nil
	if policy.HasValidator(e.Header) {
		x.cond = e
	}
}

// revalidateInBackground starts one background request that refreshes the
// entry (RFC 5861 stale-while-revalidate), unless one is already running
// for the key. It runs with its own replacer and a copy of the request's
// variables, detached from the client's connection.
func (x *exchange) revalidateInBackground(e *storage.Entry) {
	x.refreshInBackground(e, "background revalidation", nil)
}

// refreshInBackground is revalidateInBackground with the detail of the
// background exchange and, when slots is not nil, a bound on concurrent
// refreshes: one starts only with a free slot, held until it ends
// (refresh.go). It reports whether one started, and whether it was skipped
// for want of a slot.
func (x *exchange) refreshInBackground(e *storage.Entry, detail string, slots chan struct{}) (started, skipped bool) {
	h := x.h
	fk := x.storedKey // one refresh per variant
	f, leader := h.flights.join(fk)
	if !leader {
		return false, false
	}
	if !takeSlot(slots) {
		h.flights.release(fk, f)
		return false, true
	}
	r := x.r.Clone(context.WithoutCancel(x.r.Context()))
	r.Method = http.MethodGet
	// A full GET with only the fields that select the stored variant (and
	// the key): never the client's Range, conditionals or cache
	// directives, whose answer (206, 304, …) could not refresh the entry.
	r.Header = h.refreshHeader(x.r.Header, e)
	if e.Status == http.StatusPartialContent {
		// stored parts are refreshed for the range they answered
		r.Header["Range"] = x.r.Header["Range"]
	}
	vars := map[string]any{}
	if v, ok := x.r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		maps.Copy(vars, v)
	}
	repl := caddy.NewReplacer()
	srv, _ := x.r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	r = caddyhttp.PrepareRequest(r, repl, nil, srv)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	// the client's target before rewrites, as the key has it
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *originalRequest(x.r)))
	bx := &exchange{
		h: h, w: newBackgroundWriter(), r: r, next: x.next, repl: repl, key: x.key,
		storedKey: x.storedKey, fwd: "stale", detail: detail,
	}
	bx.useStale(e)
	go func() {
		defer releaseSlot(slots)
		defer h.flights.release(fk, f)
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				h.logger.Error("background revalidation panicked", zap.Any("panic", v))
			}
		}()
		if err := bx.forward(); err != nil {
			if ce := h.logger.Check(zapcore.DebugLevel, "background revalidation failed"); ce != nil {
				ce.Write(zap.Error(err))
			}
		}
	}()
	return true, false
}

// refreshHeader is the request header of a background refresh of e: the
// fields that select its variant, the key's headers and cookies, and
// Authorization (a response shared with authorized requests is refreshed
// as the request that found it stale would have fetched it).
func (h *Handler) refreshHeader(client http.Header, e *storage.Entry) http.Header {
	out := make(http.Header)
	keep := func(name string) {
		k := http.CanonicalHeaderKey(name)
		if v, ok := client[k]; ok {
			out[k] = v
		}
	}
	for _, n := range e.Vary {
		if n != rewriteField {
			keep(n)
		}
	}
	if h.Key != nil {
		for _, n := range h.Key.Headers {
			keep(n)
		}
		if len(h.Key.Cookies) > 0 {
			keep("Cookie")
		}
	}
	keep("Authorization")
	return out
}

// backgroundWriter is the ResponseWriter of background requests.
type backgroundWriter struct{ hdr http.Header }

func newBackgroundWriter() *backgroundWriter            { return &backgroundWriter{hdr: http.Header{}} }
func (d *backgroundWriter) Header() http.Header         { return d.hdr }
func (d *backgroundWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *backgroundWriter) WriteHeader(int)             {}

// coalescable reports whether this request may wait for a concurrent fetch of
// the same key instead of going to the origin itself.
func (x *exchange) coalescable() bool {
	if x.h.LockTimeout <= 0 || x.reqCC.NoCache || x.reqCC.NoStore || x.reqCC.HasMaxAge {
		return false
	}
	if x.h.uncacheable.has(x.key, x.now) {
		return false // its last response could not be stored: no point waiting
	}
	return x.r.Header.Get("Range") == ""
}

// lookup finds the stored response for the request, following the Vary
// index when there is one.
func (x *exchange) lookup(ctx context.Context) {
	x.stored, x.storedKey = nil, ""
	e, key, fwd, err := x.find(ctx, false)
	if e == nil {
		x.fwd = fwd
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			x.fwd, x.detail = "miss", "storage-error"
		}
		return
	}
	x.stored, x.storedKey = e, key
}

// lookupHot finds the stored response in the hot tier alone, without the
// storage timeout's timer: the common hit never touches the main store.
func (x *exchange) lookupHot() bool {
	e, key, _, _ := x.find(x.r.Context(), true)
	if e == nil || e.Expired(x.now) {
		return false
	}
	x.stored, x.storedKey = e, key
	return true
}

// find reads the request's primary key and, when it holds a Vary index, the
// variant the request selects, from the hot tier alone or through h.get. It
// returns the usable response and its key, or nil with the RFC 9211 fwd
// reason (uri-miss, vary-miss) and the storage error, if any.
func (x *exchange) find(ctx context.Context, hotOnly bool) (*storage.Entry, string, string, error) {
	get := func(key string) (*storage.Entry, error) {
		if hotOnly {
			return x.h.hot.Get(ctx, key)
		}
		return x.h.get(ctx, key)
	}
	e, err := get(x.key)
	if err != nil {
		return nil, "", "uri-miss", err
	}
	key := x.key
	if e.Kind == storage.KindVary {
		x.indexVary = e.Vary
		idx := e
		key = x.h.variantLookupKey(x.key, e.Vary, x.r)
		if e, err = get(key); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				if le, lk := x.h.languageVariant(idx, x.r, get); le != nil {
					return le, lk, "", nil
				}
			}
			return nil, "", "vary-miss", err
		}
	}
	if e.Kind != storage.KindResponse || !x.h.varyMatches(e, x.r) {
		return nil, "", "vary-miss", nil
	}
	if e.Status == http.StatusPartialContent {
		if why := partialUse(x.r, e); why != "" {
			x.detail = why // forwarded as it came; a 206 answer is combined with the parts (store)
			return nil, "", "partial", nil
		}
	}
	return e, key, "", nil
}

// currentAge is the entry's current age (policy.CurrentAge).
func currentAge(e *storage.Entry, now time.Time) time.Duration {
	return policy.CurrentAge(e.InitialAge, e.ResponseTime, now)
}

// serveStored writes a stored response to the client.
func (x *exchange) serveStored(e *storage.Entry, age time.Duration, status, detail string) error {
	h := x.h
	hdr := x.w.Header()
	spare := x.prepared(e).writeHeader(h, e, hdr, 2)
	ageSec := int64(age / time.Second)
	spare[0] = strconv.FormatInt(ageSec, 10)
	hdr["Age"] = spare[0:1:1]
	ttl := int64((e.Lifetime - age) / time.Second)
	maps.Copy(hdr, x.passHeader)
	m := hitMember(ttl, detail)
	if status == statusRevalidated {
		m = statusMember{fwd: "stale", fwdStatus: http.StatusNotModified, detail: detail}
		if detail == "" {
			// stored again; else detail says why it no longer is
			m.stored = true
			m = m.withTTL(ttl)
		}
	}
	addCacheStatus(hdr, h.member(m), spare[1:])
	x.setPlaceholders(status, detail)

	if e.Status >= 200 && e.Status < 300 && policy.ClientNotModified(x.r.Header, e.Header) {
		for k := range hdr {
			if !policy.NotModifiedField(k) {
				delete(hdr, k)
			}
		}
		x.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	switch rng := x.r.Header.Get("Range"); {
	case e.Status == http.StatusPartialContent:
		return x.writePartial(e, hdr)
	case e.Status != http.StatusOK || rng == "":
	case policy.ClassifyRange(rng) == policy.RangeUnsatisfiable:
		hdr["Content-Range"] = []string{"bytes */" + strconv.Itoa(len(e.Body))}
		delete(hdr, "Content-Length")
		x.w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return nil
	case policy.ClassifyRange(rng) == policy.RangeBytes:
		var mod time.Time
		if lm := e.Header.Get("Last-Modified"); lm != "" {
			mod, _ = policy.ParseHTTPDate(lm)
		}
		if _, ok := hdr["Content-Type"]; !ok {
			hdr["Content-Type"] = nil // no sniffing
		}
		http.ServeContent(x.w, x.r, "", mod, bytes.NewReader(e.Body))
		return nil
	}
	x.w.WriteHeader(e.Status)
	if x.r.Method != http.MethodHead && policy.BodyAllowed(e.Status) && len(e.Body) > 0 {
		_, _ = x.w.Write(e.Body)
	}
	return nil
}

func (x *exchange) gatewayTimeout() error {
	hdr := x.w.Header()
	x.h.setCacheStatus(hdr, fwdMember("miss", "only-if-cached"))
	x.setPlaceholders(statusMiss, "only-if-cached")
	x.w.WriteHeader(http.StatusGatewayTimeout)
	return nil
}

func (x *exchange) setPlaceholders(status, detail string) {
	x.countResult(status, detail)
	if x.repl == nil {
		return
	}
	x.repl.Set("http.cache.status", statusValue(status))
	x.repl.Set("http.cache.key", unscoped(x.key))
	x.repl.Set("http.cache.detail", detail)
}

// statusValue is a {http.cache.status} value as an interface value without
// an allocation: the constants' are static.
func statusValue(s string) any {
	switch s {
	case statusHit:
		return statusHit
	case statusMiss:
		return statusMiss
	case statusStale:
		return statusStale
	case statusRevalidated:
		return statusRevalidated
	case statusBypass:
		return statusBypass
	}
	return s
}

// forward sends the request to the next handler, revalidating x.cond when
// set, streams the response to the client and stores it when allowed.
func (x *exchange) forward() error {
	h, r := x.h, x.r
	if x.fwd == "" {
		x.fwd = "miss"
	}
	// Conditional and range headers of our own: the client's are evaluated
	// against the stored response afterwards.
	var saved http.Header
	setHdr := func(k, v string) {
		if saved == nil {
			saved = make(http.Header)
		}
		if _, ok := saved[k]; !ok {
			saved[k] = r.Header[k]
		}
		if v == "" {
			delete(r.Header, k)
		} else {
			r.Header[k] = []string{v}
		}
	}
	if h.surrogate {
		capability := SurrogateToken + `="Surrogate/1.0"`
		if prev := r.Header.Get("Surrogate-Capability"); prev != "" {
			capability = prev + ", " + capability
		}
		setHdr("Surrogate-Capability", capability)
	}
	if x.cond != nil {
		inm, ims := policy.ConditionalHeaders(x.cond.Header)
		setHdr("If-None-Match", inm)
		setHdr("If-Modified-Since", ims)
		setHdr("If-Range", "")
		if x.cond.Status != http.StatusPartialContent {
			// stored parts are revalidated for the range they answer
			setHdr("Range", "")
		}
	}
	// A HEAD miss is fetched as a GET so that the response can be stored;
	// the server drops the body for the HEAD client.
	method := r.Method
	if method == http.MethodHead && !x.reqCC.NoStore {
		r.Method = http.MethodGet
	}
	restore := func() {
		r.Method = method
		for k, v := range saved {
			if v == nil {
				delete(r.Header, k)
			} else {
				r.Header[k] = v
			}
		}
		saved = nil
	}
	defer restore()

	x.requestTime = h.now()
	c := newCapture(x.w, h.MaxEntrySize, x.decide)
	c.onOverflow = x.overflowed
	err := x.next.ServeHTTP(c, r)
	restore()
	if c.deferred && err == nil {
		// the whole (chunked) body arrived while held: its length is
		// known, and it is stored
		c.hdr["Content-Length"] = []string{strconv.Itoa(len(c.spool))}
		if cs := c.hdr["Cache-Status"]; len(cs) > 0 && x.claimCS != "" {
			c.hdr["Cache-Status"] = append(slices.Clone(cs[:len(cs)-1]), x.claimCS)
		}
		_ = c.release()
	}

	switch {
	case c.wroteHeader && c.mode == modeHold && c.status == http.StatusNotModified:
		return x.freshen(c)
	case c.wroteHeader && c.mode == modeHold:
		// an origin error replaced by the stale response
		return x.serveStaleOnError(c.status)
	case err != nil && !c.wroteHeader && x.stale != nil && x.staleIfErrorOK(h.now()):
		// no response at all (connection refused, timeout): stale-if-error
		return x.serveStaleOnError(http.StatusBadGateway)
	case err != nil:
		return err
	}
	if !c.wroteHeader {
		return nil
	}
	switch {
	case x.pending == nil || c.tooLarge:
	case c.complete() && r.Context().Err() == nil:
		if err := x.store(c.spool); err != nil {
			x.setStored(false, "storage-error")
		} else {
			x.setStored(true, "")
		}
	default:
		x.setStored(false, "truncated")
	}
	return nil
}

// verdict is what the cache makes of a response when its header arrives.
type verdict struct {
	mode captureMode
	// entry is the response being collected for storing (modeTee), nil
	// when it is not stored
	entry *storage.Entry
	// claim: the response's length is known and within bounds and the
	// store works, so Cache-Status says "stored" before the body has
	// streamed (the outcome of the write itself is {http.cache.stored})
	claim bool
	// uncacheable: the key is marked hit-for-miss (its response cannot
	// be stored, so requests need not wait for each other)
	uncacheable bool
	detail      string
}

// judge decides what to do with a response to the forwarded request:
// hold it (a 304 to our revalidation, an error stale-if-error replaces),
// pass it through, or tee it into an entry. It changes nothing.
func (x *exchange) judge(status int, hdr http.Header, now time.Time) verdict {
	h := x.h
	switch {
	case x.cond != nil && status == http.StatusNotModified:
		return verdict{mode: modeHold}
	case x.stale != nil && status >= 500 && x.staleIfErrorOK(now):
		return verdict{mode: modeHold}
	case x.r.Method != http.MethodGet:
		return verdict{mode: modePass}
	case x.reqCC.NoStore:
		return verdict{mode: modePass, detail: "request no-store"}
	case status == http.StatusNotModified:
		return verdict{mode: modePass, detail: "status " + strconv.Itoa(status)}
	case status == http.StatusPartialContent:
		if why := storablePart(hdr); why != "" {
			return verdict{mode: modePass, detail: why}
		}
	}
	if isEventStream(hdr.Get("Content-Type")) {
		return verdict{mode: modePass, detail: "event-stream"}
	}
	e, why := x.newEntry(status, hdr, now)
	if e == nil {
		return verdict{mode: modePass, uncacheable: true, detail: why}
	}
	if n := contentLength(hdr); n > h.MaxEntrySize {
		return verdict{mode: modePass, uncacheable: true, detail: "too large"}
	}
	v := verdict{mode: modeTee, entry: e}
	switch {
	case h.health.down.Load() || x.detail == "storage-error":
		v.detail = "storage-error"
	case contentLength(hdr) < 0:
		v.detail = storeIfComplete // chunked: held, then stored if it ends within max_entry_size
	default:
		v.claim = true
	}
	return v
}

// decide runs when the origin's header arrives: it acts on the verdict
// (Cache-Status, placeholders, hit-for-miss, waking waiters) and returns
// the capture mode.
func (x *exchange) decide(status int, hdr http.Header) captureMode {
	h := x.h
	now := h.now()
	v := x.judge(status, hdr, now)
	if v.mode == modeHold {
		return modeHold // forward answers from the stored response
	}
	stored := v.entry != nil
	switch {
	case v.uncacheable:
		h.uncacheable.add(x.key, now)
	case stored:
		h.uncacheable.remove(x.key)
		x.pending = v.entry
	}

	if e := v.entry; stored && len(e.Vary) > 0 && x.flight != nil {
		x.flight.setVary(e.Vary, h.variantLookupKey(x.key, e.Vary, x.r))
		if x.flightKey == x.key {
			// other instances wait on the URL, not on this variant: let
			// them fetch theirs (once the index is stored they coalesce
			// per variant)
			x.releaseLock()
		}
	}

	m := fwdMember(x.fwd, v.detail)
	if x.cond != nil {
		m.fwdStatus = status
	}
	m.stored = v.claim
	if m.detail == "" {
		m.detail = x.detail
	}
	if !stored && x.presetCC && m.detail != "" {
		m.detail += "; Cache-Control set before the cache ran"
	}
	if m.detail == storeIfComplete {
		// what Cache-Status says once the held body is complete
		done := m
		done.stored, done.detail = true, ""
		x.claimCS = h.member(done)
	}
	addCacheStatus(hdr, h.member(m), nil)
	h.stripTargeted(hdr)
	h.afterDecide(x.key, hdr, stored, m.detail)
	if !stored {
		// nothing to wait for: concurrent requests go to the origin now
		// rather than after this body has streamed
		x.releaseFlight()
	}
	st := statusMiss
	if x.cond != nil {
		st = statusStale
	}
	x.setPlaceholders(st, m.detail)

	return v.mode
}

// storeIfComplete is the detail of a chunked response that is being
// stored if it ends within max_entry_size: said only when it outgrows the
// part held back (see capture.deferred) or a handler flushes it.
const storeIfComplete = "store-if-complete"

// releaseFlight wakes the requests waiting for this one, early, in this
// process and in the others (the store's lock).
func (x *exchange) releaseFlight() {
	if x.flight != nil {
		x.h.flights.release(x.flightKey, x.flight)
	}
	x.releaseLock()
}

// overflowed runs when the body outgrew max_entry_size while streaming
// (chunked responses, whose size is not known in advance): the key is
// marked hit-for-miss and the waiters go to the origin at once.
func (x *exchange) overflowed() {
	x.h.uncacheable.add(x.key, x.h.now())
	x.releaseFlight()
	x.setStored(false, "too large")
}

// setStored sets {http.cache.stored} (and the detail when not stored) once
// the outcome of storing is known, for access logs.
func (x *exchange) setStored(ok bool, detail string) {
	if x.repl == nil {
		return
	}
	x.repl.Set("http.cache.stored", ok)
	switch {
	case ok:
		x.repl.Set("http.cache.detail", "")
	case detail != "":
		x.repl.Set("http.cache.detail", detail)
	}
}

// newEntry builds the entry for a response, or says why it is not stored.
func (x *exchange) newEntry(status int, hdr http.Header, now time.Time) (*storage.Entry, string) {
	h := x.h
	respCC := h.directives(hdr)
	u, host := x.requestURL()
	lifetime, forced, noStore := h.lifetime(x.r.Header, reprStatus(status), hdr, respCC, now, host, pathOfURL(u))
	names, why := x.storableVary(reprStatus(status), hdr, respCC, forced, noStore, h.rewrittenTarget(x.r) != "")
	if why != "" {
		return nil, why
	}
	initialAge := policy.InitialAge(hdr, x.requestTime, now)
	keep := policy.KeepFor(hdr, respCC, h.defaults(), DefaultRevalidateKeep)
	expires := now.Add(lifetime - initialAge + keep)
	if !expires.After(now) {
		return nil, "already stale"
	}
	storedHdr := policy.StoredHeader(hdr, respCC)
	h.stampDate(storedHdr, now)
	tags := withGroups(h.tagsOf(hdr), hdr, u) // surrogate keys and RFC 9875 groups (groups.go)
	h.stripTagHeaders(storedHdr)
	return &storage.Entry{
		Kind:         storage.KindResponse,
		URL:          u,
		Status:       status,
		Header:       storedHdr,
		RequestTime:  x.requestTime,
		ResponseTime: now,
		InitialAge:   initialAge,
		Lifetime:     lifetime,
		Expires:      expires,
		Vary:         names,
		Tags:         tags,
	}, ""
}

// isEventStream reports whether a Content-Type is text/event-stream,
// without mime.ParseMediaType's allocations on every miss.
func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// requestURL is the effective URL of the request (urlParts) and its
// authority, for an entry's URL: a part of the primary key when the key
// holds it, so that a stored entry does not hold the URL twice.
func (x *exchange) requestURL() (u, authority string) {
	scheme, authority, target := x.h.urlParts(x.r)
	k := strings.TrimPrefix(x.key, x.h.scope)
	if rest, ok := strings.CutPrefix(k, scheme); ok {
		if rest, ok = strings.CutPrefix(rest, "://"); ok {
			if rest, ok = strings.CutPrefix(rest, authority); ok && strings.HasPrefix(rest, target) {
				return k[:len(k)-len(rest)+len(target)], authority
			}
		}
	}
	return scheme + "://" + authority + target, authority
}

// stampDate adds the Date a response without one gets when it is stored
// (RFC 9110 §6.6.1: a recipient with a clock assigns one), so that
// Expires − Date and the age of hits stay right.
func (h *Handler) stampDate(hdr http.Header, now time.Time) {
	if len(hdr["Date"]) == 0 {
		hdr["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
}

// lifetime is the freshness lifetime of a response: the origin's explicit
// freshness, else the first matching ttl rule, else ttl, else the
// heuristic. forced reports that configuration supplied it; noStore that a
// rule forbids storing.
//
// A configured lifetime never applies to the response to a request that
// carried Cookie or Authorization unless the response says public, and an
// extension rule (*.css) never to a response whose Content-Type is not of
// that extension (ttlrules.go): web cache deception (/account;x.css) must
// not turn a private page into a shared one.
func (h *Handler) lifetime(reqHdr http.Header, status int, hdr http.Header, cc policy.Directives, now time.Time, host, path string) (d time.Duration, forced, noStore bool) {
	var configured time.Duration
	has := false
	for i := range h.TTLRules {
		if h.TTLRules[i].matches(host, path) {
			if h.TTLRules[i].noStore {
				return 0, false, true
			}
			if !h.TTLRules[i].typeAllowed(hdr.Get("Content-Type")) {
				continue
			}
			configured, has = h.TTLRules[i].lifetime, true
			break
		}
	}
	if !has && h.TTL > 0 {
		configured, has = time.Duration(h.TTL), true
	}
	if has && credentialed(reqHdr) && !cc.Public {
		has = false
	}
	if has && !h.heuristicStatus(status) {
		// A configured lifetime is not the origin's freshness: errors
		// (5xx, 403, 429, ...) are stored only when the origin says so.
		has = false
	}
	if h.ignoreCC {
		if has {
			return configured, true, false
		}
		d, _ := policy.FreshnessLifetime(status, http.Header{"Date": hdr["Date"], "Last-Modified": hdr["Last-Modified"]}, policy.Directives{}, now, h.cacheable)
		return d, false, false
	}
	d, src := policy.FreshnessLifetime(status, hdr, cc, now, h.cacheable)
	switch src {
	case policy.SourceSMaxAge, policy.SourceMaxAge, policy.SourceExpires:
		return d, false, false
	}
	if cc.NoCache {
		return 0, false, false
	}
	if has {
		return configured, true, false
	}
	return d, false, false
}

// heuristicStatus reports whether status may be stored without explicit
// freshness (the status option, or RFC 9110's default set).
func (h *Handler) heuristicStatus(status int) bool {
	if h.cacheable != nil {
		return h.cacheable(status)
	}
	return policy.DefaultCacheable(status)
}

// store saves the collected response, under its variant key when it varies.
func (x *exchange) store(body []byte) error {
	h, e := x.h, x.pending
	if body == nil {
		body = []byte{}
	}
	ctx, cancel := h.storageContext(context.WithoutCancel(x.r.Context()))
	defer cancel()
	if n := len(x.indexVary); n > 0 && x.indexVary[n-1] == rewriteField && !slices.Contains(e.Vary, rewriteField) &&
		slices.Equal(x.indexVary[:n-1], e.Vary) {
		// The URL has rewritten variants: the response to the request
		// without a rewrite joins them (rewritten target "") instead of
		// replacing their index.
		e.Vary = slices.Clone(x.indexVary)
	}
	key := x.key
	if len(e.Vary) > 0 {
		var vals map[string]string
		key, vals = h.variantKey(x.key, e.Vary, x.r)
		e.VaryRequest = vals
	}
	if e.Status == http.StatusPartialContent {
		unlock, ok := lockParts(ctx, key)
		if !ok {
			return ctx.Err()
		}
		defer unlock()
		var err error
		if e, err = x.combineParts(ctx, key, e, body); err != nil {
			return err
		}
		body = e.Body
	}
	e.Body = body
	e.BodySize = int64(len(body))
	if err := h.put(ctx, key, e); err != nil {
		return err
	}
	if len(e.Vary) > 0 {
		h.updateVaryIndex(ctx, x.key, e, key)
	}
	return nil
}

// freshen handles a 304 to our revalidation: the stored header is updated
// (RFC 9111 §4.3.4), the entry stored again and served. The updated header
// is checked like a new response: when it is no longer storable (the 304
// says private or no-store, its Vary changed…) the stored entry is removed
// and this client alone gets the response. A Set-Cookie on the 304 is never
// stored but goes to the client that triggered the revalidation.
func (x *exchange) freshen(c *capture) error {
	h, old := x.h, x.cond
	now := h.now()
	merged := policy.Freshen(old.Header, c.hdr)
	respCC := h.directives(merged)
	u, host := x.requestURL()
	lifetime, forced, ruleNoStore := h.lifetime(x.r.Header, reprStatus(old.Status), merged, respCC, now, host, pathOfURL(u))
	initialAge := policy.InitialAge(c.hdr, x.requestTime, now)
	e := &storage.Entry{
		Kind:         storage.KindResponse,
		URL:          u,
		Status:       old.Status,
		Header:       policy.StoredHeader(merged, respCC),
		Body:         old.Body,
		BodySize:     int64(len(old.Body)),
		RequestTime:  x.requestTime,
		ResponseTime: now,
		InitialAge:   initialAge,
		Lifetime:     lifetime,
		Vary:         old.Vary,
		VaryRequest:  old.VaryRequest,
		Tags:         withGroups(surrogateTags(old.Tags), merged, u), // a 304 may change Cache-Groups
	}
	h.stampDate(e.Header, now)
	e.Expires = now.Add(lifetime - initialAge + policy.KeepFor(merged, respCC, h.defaults(), DefaultRevalidateKeep))
	why := h.notReusable(x, old, merged, respCC, forced, ruleNoStore)
	ctx, cancel := h.storageContext(context.WithoutCancel(x.r.Context()))
	if why == "" {
		_ = h.put(ctx, x.storedKey, e)
	} else {
		_ = h.del(ctx, x.storedKey)
	}
	cancel()
	if sc := c.hdr["Set-Cookie"]; len(sc) > 0 {
		x.passHeader = http.Header{"Set-Cookie": sc}
	}
	return x.serveStored(e, initialAge, statusRevalidated, why)
}

// staleIfErrorOK reports whether x.stale may replace an origin error.
func (x *exchange) staleIfErrorOK(now time.Time) bool {
	e := x.stale
	return policy.StaleIfError(currentAge(e, now), e.Lifetime, x.h.respDirectives(e.Header), x.reqCC, x.h.defaults())
}

func (x *exchange) serveStaleOnError(status int) error {
	e := x.stale
	age := currentAge(e, x.h.now())
	hdr := x.w.Header()
	spare := x.prepared(e).writeHeader(x.h, e, hdr, 2)
	spare[0] = strconv.FormatInt(int64(age/time.Second), 10)
	hdr["Age"] = spare[0:1:1]
	ttl := int64((e.Lifetime - age) / time.Second)
	m := statusMember{fwd: "stale", fwdStatus: status, detail: "stale-if-error"}
	addCacheStatus(hdr, x.h.member(m.withTTL(ttl)), spare[1:])
	x.setPlaceholders(statusStale, "stale-if-error")
	if e.Status == http.StatusPartialContent {
		return x.writePartial(e, hdr)
	}
	x.w.WriteHeader(e.Status)
	if x.r.Method != http.MethodHead && policy.BodyAllowed(e.Status) {
		_, _ = x.w.Write(e.Body)
	}
	return nil
}

func (h *Handler) defaults() policy.Defaults {
	return policy.Defaults{
		StaleWhileRevalidate: time.Duration(h.StaleWhileRevalidate),
		StaleIfError:         time.Duration(h.StaleIfError),
	}
}

// stripTargeted removes from a response header going to a client the
// targeted cache-control fields that are not forwarded (h.strip:
// Surrogate-Control by default, every one with strip_targeted).
func (h *Handler) stripTargeted(hdr http.Header) {
	for _, f := range h.strip {
		delete(hdr, f)
	}
}

// reuseDirectives is respDirectives of a stored entry, from its prepared
// data.
func (h *Handler) reuseDirectives(p *prepared) policy.Directives {
	if h.ignoreCC {
		return policy.Directives{}
	}
	return *p.cc
}

// prepared returns the prepared data of e, the stored response the
// exchange found (stored under x.storedKey), deriving it at most once per
// exchange.
func (x *exchange) prepared(e *storage.Entry) *prepared {
	if x.prepFor != e {
		x.h.prepare(e, &x.prep)
		x.prepFor = e
	}
	return &x.prep
}

// respDirectives returns the directives that govern reuse of a stored
// response: none when cache_control is "ignore" (configuration decides).
func (h *Handler) respDirectives(hdr http.Header) policy.Directives {
	if h.ignoreCC {
		return policy.Directives{}
	}
	return h.directives(hdr)
}

// directives returns the response directives addressed to this cache: the
// first targeted field present (RFC 9213; Surrogate-Control read for our
// device token), else Cache-Control.
func (h *Handler) directives(hdr http.Header) policy.Directives {
	if h.surrogate {
		if sc, ok := hdr["Surrogate-Control"]; ok {
			view := make(http.Header, len(h.targets)+1)
			for _, f := range h.targets {
				view[f] = hdr[f]
			}
			view["Cache-Control"] = hdr["Cache-Control"]
			view["Expires"] = hdr["Expires"]
			view["Surrogate-Control"] = policy.SurrogateControl(sc, SurrogateToken)
			if len(view["Surrogate-Control"]) == 0 {
				delete(view, "Surrogate-Control")
			}
			hdr = view
		}
	}
	d, _ := policy.ResponseDirectives(hdr, h.targets)
	return d
}

// storageContext bounds a storage call by storage_timeout. The in-process
// memory store never blocks, so it skips the timer.
func (h *Handler) storageContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.isMemory {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Duration(h.StorageTimeout))
}
