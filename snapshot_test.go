package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/storage"
)

// snapAdmin serves the cache admin routes as Caddy's admin endpoint does:
// an error a route returns is answered as JSON {"error": …} with the
// status of a caddy.APIError (adminMux).
func snapAdmin(t *testing.T) string {
	t.Helper()
	adm := httptest.NewServer(adminMux())
	t.Cleanup(adm.Close)
	return strings.TrimPrefix(adm.URL, "http://")
}

// adminMux serves the cache admin routes, answering the errors they
// return as Caddy's admin endpoint does (caddy/admin.go handleError): the
// status of a caddy.APIError, which must be the error itself (Caddy
// asserts the type, it does not unwrap), else 500, and the body
// {"error": message}.
func adminMux() http.Handler {
	mux := http.NewServeMux()
	for _, r := range new(AdminAPI).Routes() {
		h := r.Handler
		mux.Handle(r.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h.ServeHTTP(w, r); err != nil {
				ae, ok := err.(caddy.APIError) //nolint:errorlint // as Caddy does
				if !ok {
					ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
				}
				if ae.HTTPStatus == 0 {
					ae.HTTPStatus = http.StatusInternalServerError
				}
				if ae.Message == "" && ae.Err != nil {
					ae.Message = ae.Err.Error()
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(ae.HTTPStatus)
				_ = json.NewEncoder(w).Encode(ae)
			}
		}))
	}
	return mux
}

// ownStore is the config of a handler named name on a memory store of its
// own (newEnv's default store is shared by the handlers of a test).
func ownStore(name string) string {
	return fmt.Sprintf(`{"name": %q, "storage": {"backend": "memory", "name": "store-%s"}}`, name, name)
}

// export fetches a snapshot; query is the query string without "?".
func export(t *testing.T, addr, query string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/cache/snapshot?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export %s: %d %s", query, resp.StatusCode, b)
	}
	if e := resp.Trailer.Get(snapshotErrorTrailer); e != "" {
		t.Fatalf("export %s: %s", query, e)
	}
	return b
}

// importSnap posts a snapshot and decodes the report.
func importSnap(t *testing.T, addr, handler string, snap []byte) (importReport, int) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/cache/snapshot?handler="+url.QueryEscape(handler), "application/octet-stream", bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep importReport
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("import answer %d %s: %v", resp.StatusCode, b, err)
	}
	return rep, resp.StatusCode
}

// rebind makes env answer where from did, instead of on its own port
// (from stops answering): keys carry the listener's port, so a node that
// takes over another's traffic listens where it did.
func rebind(t *testing.T, env, from *testEnv) {
	t.Helper()
	addr := strings.TrimPrefix(from.srv.URL, "http://")
	from.srv.Close()
	handler := env.srv.Config.Handler
	env.srv.Close()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: handler}}
	srv.Start()
	t.Cleanup(srv.Close)
	env.srv = srv
}

// langOrigin answers max-age=600, on /v… Vary: Accept-Language, tags from
// ?k= (and lang-<language> with an Accept-Language), and a body naming the
// path, the language and the request count.
func langOrigin(w http.ResponseWriter, r *http.Request, n int64) error {
	w.Header().Set("Cache-Control", "max-age=600")
	if strings.HasPrefix(r.URL.Path, "/v") {
		w.Header().Set("Vary", "Accept-Language")
	}
	if k := r.URL.Query().Get("k"); k != "" {
		w.Header().Set("Surrogate-Key", k)
	}
	if l := r.Header.Get("Accept-Language"); l != "" {
		w.Header().Add("Surrogate-Key", "lang-"+l)
	}
	body := fmt.Sprintf("%s %s %d", r.URL.Path, r.Header.Get("Accept-Language"), n)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	fmt.Fprint(w, body)
	return nil
}

// A snapshot of one handler imports into a handler of another name on
// another store: plain responses, Vary variants with their index, and tags
// come across; the new handler serves them as hits without asking its
// origin, purges them by tag and by URL (all variants, through the index).
func TestSnapshotMovesEntriesToAnotherHandler(t *testing.T) {
	src := opsEnv(t, `{"name": "snap-src"}`, langOrigin)
	for _, p := range []string{"/p1?k=red", "/p2?k=red", "/p3?k=blue"} {
		wantStatus(t, src.get(p), "stored")
	}
	for _, lang := range []string{"en", "de"} {
		wantStatus(t, src.get("/v?k=red", "Accept-Language", lang), "stored")
	}
	addr := snapAdmin(t)
	snap := export(t, addr, "handler=snap-src")

	dst := opsEnv(t, ownStore("snap-dst"), langOrigin)
	rep, status := importSnap(t, addr, "snap-dst", snap)
	if status != http.StatusOK || !rep.Complete || rep.Imported != 6 || rep.Records != 6 || rep.Bytes != int64(len(snap)) ||
		rep.SkippedExpired+rep.SkippedNewer+rep.SkippedTooLarge+rep.RejectedCorrupt != 0 || rep.Error != "" {
		t.Fatalf("import: %d %+v", status, rep)
	}
	if rep.Source.Handler != "snap-src" || rep.Source.Backend != "memory" || rep.Handler != "snap-dst" {
		t.Fatalf("report names: %+v", rep)
	}
	// nothing is stored under the source's scope in the target's store
	var keys []string
	_ = dst.h.ops.lister.List(context.Background(), "", func(k string, e *storage.Entry) error {
		keys = append(keys, k)
		if !strings.HasPrefix(k, dst.h.scope) {
			t.Errorf("key %q outside the target's scope", k)
		}
		for _, v := range e.Variants {
			if !strings.HasPrefix(v, dst.h.scope) {
				t.Errorf("index %q lists %q outside the target's scope", k, v)
			}
		}
		return nil
	})
	rebind(t, dst, src)
	r := dst.get("/p1?k=red")
	wantStatus(t, r, "hit")
	wantBody(t, r, "/p1  1")
	for i, lang := range []string{"en", "de"} {
		r := dst.get("/v?k=red", "Accept-Language", lang)
		wantStatus(t, r, "hit")
		wantBody(t, r, fmt.Sprintf("/v %s %d", lang, 4+i))
	}
	dst.wantHits(0)

	var ans purgeAns
	if code := admin(t, http.MethodPost, "/cache/purge", map[string]any{"tag": "red", "handler": "snap-dst"}, &ans); code != http.StatusOK || ans.Removed != 4 {
		t.Fatalf("purge by tag after import: %d %+v", code, ans)
	}
	wantStatus(t, dst.get("/p1?k=red"), "miss")
	wantStatus(t, dst.get("/p3?k=blue"), "hit")
	dst.wantHits(1)
}

// The index's variant list comes across scoped to the target: a purge of
// the URL, which goes through the index, removes every imported variant.
func TestSnapshotVaryIndexPurgeByURL(t *testing.T) {
	src := opsEnv(t, `{"name": "snapv-src"}`, langOrigin)
	for _, lang := range []string{"en", "de", "fr"} {
		src.get("/v", "Accept-Language", lang)
	}
	addr := snapAdmin(t)
	snap := export(t, addr, "handler=snapv-src")
	opsEnv(t, ownStore("snapv-dst"), langOrigin)
	if rep, status := importSnap(t, addr, "snapv-dst", snap); status != http.StatusOK || rep.Imported != 4 {
		t.Fatalf("import: %d %+v", status, rep)
	}
	var ans purgeAns
	code := admin(t, http.MethodPost, "/cache/purge", map[string]any{"url": src.srv.URL + "/v", "handler": "snapv-dst"}, &ans)
	if code != http.StatusOK || ans.Removed != 3 {
		t.Fatalf("purge by url after import: %d %+v", code, ans)
	}
}

// snapWith writes a snapshot of the given entries, keyed by URL.
func snapWith(t *testing.T, entries ...*storage.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	sw, err := storage.NewSnapshotWriter(&buf, storage.SnapshotHeader{Created: time.Now(), Handler: "test", Backend: "memory"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := sw.Write(e.URL, e, storage.CompressionZstd); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func snapEntry(u, body string, received time.Time, ttl time.Duration) *storage.Entry {
	return &storage.Entry{
		URL: u, Status: 200, Body: []byte(body), BodySize: int64(len(body)),
		Header:      http.Header{"Cache-Control": {"max-age=600"}, "Content-Length": {strconv.Itoa(len(body))}},
		RequestTime: received, ResponseTime: received, Lifetime: 600 * time.Second,
		Expires: received.Add(ttl),
	}
}

// An import skips entries that expired since the export and never replaces
// a newer stored response; an older stored one is replaced. Entries the
// handler would not store for their size are skipped.
func TestSnapshotImportSkipsExpiredAndNewer(t *testing.T) {
	dst := opsEnv(t, `{"name": "snapn-dst", "max_entry_size": 1000, "storage": {"backend": "memory", "name": "store-snapn-dst"}}`, langOrigin)
	wantStatus(t, dst.get("/newer"), "stored")
	wantStatus(t, dst.get("/older"), "stored")
	now := time.Now()
	base := dst.srv.URL
	snap := snapWith(t,
		snapEntry(base+"/newer", "from snapshot", now.Add(-time.Minute), time.Hour),
		snapEntry(base+"/older", "from snapshot", now.Add(time.Minute), time.Hour),
		snapEntry(base+"/expired", "from snapshot", now.Add(-2*time.Hour), time.Hour),
		snapEntry(base+"/fresh", "from snapshot", now, time.Hour),
		snapEntry(base+"/big", strings.Repeat("x", 1001), now, time.Hour),
	)
	addr := snapAdmin(t)
	rep, status := importSnap(t, addr, "snapn-dst", snap)
	if status != http.StatusOK || rep.Imported != 2 || rep.SkippedNewer != 1 || rep.SkippedExpired != 1 || rep.SkippedTooLarge != 1 || !rep.Complete {
		t.Fatalf("import: %d %+v", status, rep)
	}
	wantBody(t, dst.get("/newer"), "/newer  1")
	wantBody(t, dst.get("/older"), "from snapshot")
	wantBody(t, dst.get("/fresh"), "from snapshot")
	wantStatus(t, dst.get("/expired"), "miss")
	wantStatus(t, dst.get("/big"), "miss")
	// importing the same snapshot again changes nothing
	rep, _ = importSnap(t, addr, "snapn-dst", snap)
	if rep.Imported != 0 || rep.SkippedNewer != 3 || rep.SkippedExpired != 1 || rep.SkippedTooLarge != 1 {
		t.Fatalf("second import: %+v", rep)
	}
}

// A Vary index in a snapshot is merged into the target's index for the
// URL: the variants stored there stay, the snapshot's are added.
func TestSnapshotImportMergesVaryIndex(t *testing.T) {
	src := opsEnv(t, `{"name": "snapm-src"}`, langOrigin)
	for _, lang := range []string{"en", "de"} {
		src.get("/v", "Accept-Language", lang)
	}
	addr := snapAdmin(t)
	snap := export(t, addr, "handler=snapm-src")
	dst := opsEnv(t, ownStore("snapm-dst"), langOrigin)
	rebind(t, dst, src)
	wantStatus(t, dst.get("/v", "Accept-Language", "fr"), "stored")
	rep, status := importSnap(t, addr, "snapm-dst", snap)
	if status != http.StatusOK || rep.Imported != 3 {
		t.Fatalf("import: %d %+v", status, rep)
	}
	for _, lang := range []string{"fr", "en", "de"} {
		wantStatus(t, dst.get("/v", "Accept-Language", lang), "hit")
	}
	idx, err := dst.h.get(context.Background(), dst.h.scope+src.srv.URL+"/v")
	if err != nil || idx.Kind != storage.KindVary || len(idx.Variants) != 3 {
		t.Fatalf("index after the merge: %v %+v", err, idx)
	}
}

// A damaged stream imports the records before the damage, reports it, and
// stores nothing of the damaged record or after it.
func TestSnapshotDamagedStream(t *testing.T) {
	src := opsEnv(t, `{"name": "snapd-src"}`, tagged)
	for i := 0; i < 10; i++ {
		src.get(fmt.Sprintf("/e%d", i))
	}
	addr := snapAdmin(t)
	snap := export(t, addr, "handler=snapd-src")
	// the offsets where records end
	sr, err := storage.NewSnapshotReader(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	var keys []string
	for {
		k, _, err := sr.Next()
		if err != nil {
			break
		}
		keys = append(keys, k)
		ends = append(ends, sr.Offset())
	}
	if len(ends) != 10 {
		t.Fatalf("%d records", len(ends))
	}
	cases := []struct {
		name string
		data []byte
		good int
	}{
		{"truncated inside record 6", snap[:ends[4]+(ends[5]-ends[4])/2], 5},
		{"truncated before the trailer", snap[:ends[9]], 10},
		{"altered byte in record 4", func() []byte {
			c := bytes.Clone(snap)
			c[ends[2]+(ends[3]-ends[2])/2] ^= 0x20
			return c
		}(), 3},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("snapd-dst%d", i)
			dst := opsEnv(t, ownStore(name), tagged)
			rep, status := importSnap(t, addr, name, tc.data)
			if status != http.StatusBadRequest || rep.Complete || rep.RejectedCorrupt != 1 || rep.Imported != int64(tc.good) ||
				rep.Records != int64(tc.good) || rep.Bytes != ends[tc.good-1] || !strings.Contains(rep.Error, "damaged cache snapshot") {
				t.Fatalf("import: %d %+v", status, rep)
			}
			var stored []string
			_ = dst.h.ops.lister.List(context.Background(), dst.h.scope, func(k string, e *storage.Entry) error {
				stored = append(stored, unscoped(k))
				if full, err := dst.h.get(context.Background(), k); err != nil || !strings.HasPrefix(string(full.Body), "body-") {
					t.Errorf("%s stored as %v %v", k, full, err)
				}
				return nil
			})
			if len(stored) != tc.good {
				t.Fatalf("stored %q, want the %d records before the damage %q", stored, tc.good, keys[:tc.good])
			}
			for _, k := range keys[:tc.good] {
				if !slices.Contains(stored, k) {
					t.Fatalf("%q not stored; stored %q", k, stored)
				}
			}
		})
	}
	// not a snapshot at all: an error, nothing imported
	resp, err := http.Post("http://"+addr+"/cache/snapshot?handler=snapd-src", "application/json", strings.NewReader(`{"url": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "not a cache snapshot") {
		t.Fatalf("JSON body: %d %s", resp.StatusCode, b)
	}
}

// Filters select what an export writes; a tag filter keeps the Vary index
// of the variants that carry the tag, listing only those.
func TestSnapshotExportFilters(t *testing.T) {
	src := opsEnv(t, `{"name": "snapf-src"}`, langOrigin)
	src.get("/a/1?k=red")
	src.get("/a/2?k=blue")
	src.get("/b/1?k=red")
	src.get("/v?k=red", "Accept-Language", "en")
	src.get("/v?k=red", "Accept-Language", "de")
	addr := snapAdmin(t)
	base := src.srv.URL
	host := strings.TrimPrefix(base, "http://")
	read := func(snap []byte) map[string]*storage.Entry {
		sr, err := storage.NewSnapshotReader(bytes.NewReader(snap))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*storage.Entry{}
		for {
			k, e, err := sr.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out[displayKey(strings.TrimPrefix(k, base))] = e
		}
	}
	keysOf := func(m map[string]*storage.Entry) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sortStrings(ks)
		return strings.Join(ks, " ")
	}
	if got := keysOf(read(export(t, addr, "handler=snapf-src&prefix="+url.QueryEscape(base+"/a/")))); got != "/a/1?k=red /a/2?k=blue" {
		t.Fatalf("prefix: %s", got)
	}
	if got := read(export(t, addr, "handler=snapf-src&host="+url.QueryEscape(host))); len(got) != 6 {
		t.Fatalf("host: %s", keysOf(got))
	}
	if got := read(export(t, addr, "handler=snapf-src&host=other.example")); len(got) != 0 {
		t.Fatalf("other host: %s", keysOf(got))
	}
	red := read(export(t, addr, "handler=snapf-src&tag=red"))
	if len(red) != 5 || red["/a/1?k=red"] == nil || red["/b/1?k=red"] == nil || red["/v?k=red"] == nil {
		t.Fatalf("tag red: %s", keysOf(red))
	}
	if idx := red["/v?k=red"]; idx.Kind != storage.KindVary || len(idx.Variants) != 2 {
		t.Fatalf("tag red: index %+v", idx)
	}
	en := read(export(t, addr, "handler=snapf-src&tag=lang-en"))
	idx := en["/v?k=red"]
	if len(en) != 2 || idx == nil || idx.Kind != storage.KindVary || len(idx.Variants) != 1 ||
		en[displayKey(strings.TrimPrefix(idx.Variants[0], base))] == nil {
		t.Fatalf("tag lang-en: %s, index %+v", keysOf(en), idx)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// The handler to export or import must be named when several are live;
// errors name the live handlers, and wrong parameters or methods are
// refused.
func TestSnapshotRequestErrors(t *testing.T) {
	opsEnv(t, `{"name": "snape-a"}`, tagged)
	opsEnv(t, `{"name": "snape-b"}`, tagged)
	addr := snapAdmin(t)
	call := func(method, query string, body io.Reader) (int, string) {
		req, _ := http.NewRequest(method, "http://"+addr+"/cache/snapshot"+query, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e errAnswer
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, query, b)
		}
		return resp.StatusCode, e.Error
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		code, msg := call(method, "", strings.NewReader(""))
		if code != http.StatusBadRequest || !strings.Contains(msg, "snape-a") || !strings.Contains(msg, "snape-b") || !strings.Contains(msg, "handler=") {
			t.Fatalf("%s without handler: %d %s", method, code, msg)
		}
		code, msg = call(method, "?handler=nope", strings.NewReader(""))
		if code != http.StatusNotFound || !strings.Contains(msg, "snape-a") {
			t.Fatalf("%s unknown handler: %d %s", method, code, msg)
		}
	}
	if code, msg := call(http.MethodGet, "?handler=snape-a&prefx=http://x/", nil); code != http.StatusBadRequest || !strings.Contains(msg, `"prefx"`) {
		t.Fatalf("unknown parameter: %d %s", code, msg)
	}
	if code, msg := call(http.MethodPost, "?handler=snape-a&prefix=http://x/", strings.NewReader("")); code != http.StatusBadRequest || !strings.Contains(msg, `"prefix"`) {
		t.Fatalf("import with a filter: %d %s", code, msg)
	}
	if code, _ := call(http.MethodDelete, "?handler=snape-a", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", code)
	}
}

// Caddy's admin server has a 10 s read timeout for a whole request, body
// included: an import whose body takes longer must not be cut off. An
// export to a client that pauses (a slow disk, a pipe) completes too.
func TestSnapshotOutlastsAdminReadTimeout(t *testing.T) {
	// 50 incompressible bodies of 100 KiB: more than the connection
	// buffers hold, so the export is still writing when the deadline
	// passes
	src := opsEnv(t, `{"name": "snapt-src"}`, func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Cache-Control", "max-age=600")
		body := make([]byte, 100<<10)
		x := uint32(n)
		for i := range body {
			x = x*1664525 + 1013904223
			body[i] = byte(x >> 24)
		}
		_, err := w.Write(body)
		return err
	})
	for i := 0; i < 50; i++ {
		src.get(fmt.Sprintf("/e%d", i))
	}
	opsEnv(t, ownStore("snapt-dst"), tagged)
	const timeout = time.Second // long enough for a loaded machine to reach the handler before it passes
	adm := httptest.NewUnstartedServer(adminMux())
	adm.Config.ReadTimeout = timeout
	// small socket buffers, so that the export is still walking the
	// entries, blocked on the client, when the deadline passes
	adm.Listener = smallBuffers{adm.Listener}
	adm.Start()
	t.Cleanup(adm.Close)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
		}
		return c, err
	}}}

	// export: the client reads a little, pauses past the read timeout,
	// then reads the rest
	resp, err := client.Get(adm.URL + "/cache/snapshot?handler=snapt-src")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout) // not an assertion: the condition under test
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("export cut off: %v", err)
	}
	snap := append(first, rest...)
	if _, entries, err := readSnapshot(snap); err != nil || entries != 50 {
		t.Fatalf("export after a pause: %d entries, %v (trailer %q)", entries, err, resp.Trailer.Get(snapshotErrorTrailer))
	}

	// import: the client sends half, pauses past the read timeout, then
	// sends the rest
	pr, pw := io.Pipe()
	go func() {
		pw.Write(snap[:len(snap)/2])
		time.Sleep(3 * timeout)
		pw.Write(snap[len(snap)/2:])
		pw.Close()
	}()
	resp, err = client.Post(adm.URL+"/cache/snapshot?handler=snapt-dst", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	var rep importReport
	_ = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || rep.Imported != 50 {
		t.Fatalf("import with a pause: %d %+v", resp.StatusCode, rep)
	}
}

// smallBuffers gives accepted connections a small send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_ = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return c, err
}

// readSnapshot verifies a whole stream and counts its entries.
func readSnapshot(b []byte) (storage.SnapshotHeader, int, error) {
	sr, err := storage.NewSnapshotReader(bytes.NewReader(b))
	if err != nil {
		return storage.SnapshotHeader{}, 0, err
	}
	n := 0
	for {
		_, _, err := sr.Next()
		if err == io.EOF {
			return sr.Header(), n, nil
		}
		if err != nil {
			return sr.Header(), n, err
		}
		n++
	}
}

// A failure of the store during an export ends the stream without its
// trailer (an importer sees it truncated) and says why in the HTTP trailer;
// before anything was sent, it is an ordinary error answer.
func TestSnapshotExportStoreFailure(t *testing.T) {
	cfg := func(name string, failAt int) string {
		return fmt.Sprintf(`{"name": %q, "memory": -1, "storage": {"backend": "snapgen", "n": 2000, "scope": %q, "fail_at": %d}}`,
			name, scopeOf(name), failAt)
	}
	opsEnv(t, cfg("snapx-early", 1), tagged)
	opsEnv(t, cfg("snapx-late", 1000), tagged)
	addr := snapAdmin(t)
	resp, err := http.Get("http://" + addr + "/cache/snapshot?handler=snapx-early")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), errGenFailed.Error()) {
		t.Fatalf("export failing at once: %d %s", resp.StatusCode, b)
	}

	resp, err = http.Get("http://" + addr + "/cache/snapshot?handler=snapx-late")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Trailer.Get(snapshotErrorTrailer), errGenFailed.Error()) {
		t.Fatalf("export failing midway: %d, %v, trailer %q", resp.StatusCode, err, resp.Trailer.Get(snapshotErrorTrailer))
	}
	_, n, err := readSnapshot(b)
	if !errors.Is(err, storage.ErrSnapshotDamaged) || !strings.Contains(err.Error(), "without a trailer") || n != 1000 {
		t.Fatalf("stream of a failed export: %d entries, %v", n, err)
	}
}

func init() {
	caddy.RegisterModule(new(genStore))
}

// genStore is a test backend that holds N generated entries without
// keeping them: List and Get compute each one from its key, so a test can
// measure what an export or import itself keeps in memory. Put checks what
// it is given against what Get would generate and counts it, keeping
// nothing. Keys are scope + "http://gen.test/<i>".
type genStore struct {
	N     int    `json:"n,omitempty"`
	Scope string `json:"scope,omitempty"`
	Sink  bool   `json:"sink,omitempty"` // holds nothing (Get: not found)
	// FailAt makes List fail when it reaches entry FailAt (0: never).
	FailAt int `json:"fail_at,omitempty"`

	puts   atomic.Int64
	bad    atomic.Int64
	sample func()
}

func (*genStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.cache.storage.snapgen", New: func() caddy.Module { return new(genStore) }}
}

var genTime = time.Now()

var errGenFailed = errors.New("generated store failure")

func (g *genStore) entry(i int) *storage.Entry {
	body := bytes.Repeat([]byte{byte('a' + i%26)}, 400+i%200)
	u := "http://gen.test/" + strconv.Itoa(i)
	return &storage.Entry{
		URL: u, Status: 200, Header: http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=3600"}},
		Body: body, BodySize: int64(len(body)), RequestTime: genTime, ResponseTime: genTime, Lifetime: time.Hour,
		Expires: genTime.Add(time.Hour), Tags: []string{"t" + strconv.Itoa(i%7)},
	}
}

func (g *genStore) index(key string) (int, bool) {
	s, ok := strings.CutPrefix(key, g.Scope+"http://gen.test/")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0 && i < g.N
}

func (g *genStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	i, ok := g.index(key)
	if g.Sink || !ok {
		return nil, storage.ErrNotFound
	}
	return g.entry(i), nil
}

func (g *genStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	i, ok := g.index(key)
	if !ok || !bytes.Equal(e.Body, g.entry(i).Body) || e.URL != g.entry(i).URL {
		g.bad.Add(1)
	}
	if n := g.puts.Add(1); n%5000 == 0 && g.sample != nil {
		g.sample()
	}
	return nil
}

func (g *genStore) Delete(context.Context, string) error { return nil }

func (g *genStore) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	if g.Sink {
		return nil
	}
	for i := 0; i < g.N; i++ {
		if i == g.FailAt && i > 0 {
			return errGenFailed
		}
		k := g.Scope + "http://gen.test/" + strconv.Itoa(i)
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if err := fn(k, g.entry(i).Meta()); err != nil {
			if errors.Is(err, storage.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// A 100,000-entry export piped into an import streams: the heap stays far
// below the size of the snapshot, which is never held whole.
func TestSnapshot100kBoundedMemory(t *testing.T) {
	const n = 100_000
	srcCfg := fmt.Sprintf(`{"name": "snap100k-src", "memory": -1, "storage": {"backend": "snapgen", "n": %d, "scope": %q}}`, n, scopeOf("snap100k-src"))
	dstCfg := fmt.Sprintf(`{"name": "snap100k-dst", "memory": -1, "storage": {"backend": "snapgen", "n": %d, "scope": %q, "sink": true}}`, n, scopeOf("snap100k-dst"))
	src := opsEnv(t, srcCfg, tagged)
	dst := opsEnv(t, dstCfg, tagged)
	sink := dst.h.ops.raw.(*genStore)

	// The heap is measured after a collection: what the export and the
	// import keep, not the garbage a collection would free.
	var ms runtime.MemStats
	var mu sync.Mutex
	live := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	var peak atomic.Uint64
	sample := func() {
		if v := live(); v > peak.Load() {
			peak.Store(v)
		}
	}
	sink.sample = sample

	pr, pw := io.Pipe()
	var written atomic.Int64
	go func() {
		st, err := src.h.exportSnapshot(context.Background(), pw, snapshotFilter{})
		written.Store(st.bytes)
		pw.CloseWithError(err)
	}()
	sr, err := storage.NewSnapshotReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	rep, status := dst.h.importSnapshot(context.Background(), sr)
	sample()
	if status != http.StatusOK || !rep.Complete || rep.Imported != n || rep.Records != n {
		t.Fatalf("import: %d %+v", status, rep)
	}
	if sink.puts.Load() != n || sink.bad.Load() != 0 {
		t.Fatalf("sink got %d entries, %d of them wrong", sink.puts.Load(), sink.bad.Load())
	}
	size := written.Load()
	growth := int64(peak.Load()) - int64(base)
	t.Logf("snapshot %d bytes; live heap %d KiB before, at most %d KiB during", size, base>>10, peak.Load()>>10)
	if size < 40<<20 {
		t.Fatalf("snapshot of %d bytes: too small to show streaming", size)
	}
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB during a %d MiB export and import: not streamed", growth>>20, size>>20)
	}
}
