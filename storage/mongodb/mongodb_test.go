package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func TestConformance(t *testing.T) {
	srv := testservers.FerretDB(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: uniqueName(t)})
	}, storagetest.Options{Corrupt: corrupt})
}

// The 16 MiB document rule is enforced by the backend itself (FerretDB
// does not enforce it): the largest body accepted makes a document that
// real MongoDB accepts, one byte more is refused with ErrTooLarge, and the
// refused Put removes the older entry.
func TestTooLarge(t *testing.T) {
	const key = "https://example.com/big"
	random := storagetest.RandomBody(MaxDocumentSize+1, 7)
	entry := func(n int) *storage.Entry {
		e := storagetest.Entry("big", 0)
		e.Body = random[:n]
		e.BodySize = int64(n)
		return e
	}
	fits := func(n int) bool {
		_, err := newDocument(key, entry(n), storage.CompressionOff)
		if err != nil && !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("newDocument(%d bytes): %v", n, err)
		}
		return err == nil
	}
	// The size bound grows byte for byte with the body (no compression), so
	// one measurement locates the boundary; check it is one.
	probe := entry(MaxDocumentSize - 64<<10)
	est := documentSize(key, probe, len(storage.Encode(probe, storage.CompressionOff)), len(storage.Encode(probe.Meta(), storage.CompressionOff)))
	lo := len(probe.Body) + MaxDocumentSize - est
	if !fits(lo) || fits(lo+1) {
		t.Fatalf("size rule: fits(%d)=%v fits(%d)=%v, want true and false", lo, fits(lo), lo+1, fits(lo+1))
	}
	doc, err := newDocument(key, entry(lo), storage.CompressionOff)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxDocumentSize {
		t.Fatalf("largest accepted body (%d bytes) makes a %d-byte document, over MongoDB's %d", lo, len(raw), MaxDocumentSize)
	}
	if MaxDocumentSize-len(raw) > 4096 {
		t.Fatalf("largest accepted body (%d bytes) makes a %d-byte document: %d bytes of the limit wasted", lo, len(raw), MaxDocumentSize-len(raw))
	}

	srv := testservers.FerretDB(t)
	m := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI, Compression: "off"}, Collection: uniqueName(t)})
	ok := entry(lo)
	if err := m.Put(bg, key, ok); err != nil {
		t.Fatalf("Put of the largest body that fits (%d bytes): %v", lo, err)
	}
	got, err := m.Get(bg, key)
	if err != nil {
		t.Fatalf("Get of the largest body: %v", err)
	}
	if !bytes.Equal(got.Body, ok.Body) {
		t.Fatal("Get of the largest body: body differs")
	}
	if err := m.Put(bg, key, entry(lo+1)); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put of a body one byte too large: %v, want ErrTooLarge", err)
	}
	if _, err := m.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after a too-large Put: %v, want ErrNotFound (the older entry removed)", err)
	}
}

// FerretDB has no TTL indexes: the store notices, says so once, and the
// sweeper deletes expired documents.
func TestSweeperWithoutTTLIndex(t *testing.T) {
	srv := testservers.FerretDB(t)
	core, logs := observer.New(zapcore.InfoLevel)
	m := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI, SweepInterval: caddy.Duration(300 * time.Millisecond)}, Collection: uniqueName(t), logger: zap.New(core)})

	soon := storagetest.Entry("soon", 10)
	soon.Expires = time.Now().Add(4 * time.Second) // after the count below, on a loaded machine too
	later := storagetest.Entry("later", 10)
	forever := storagetest.Entry("forever", 10)
	forever.Expires = time.Time{}
	for k, e := range map[string]*storage.Entry{"soon": soon, "later": later, "forever": forever} {
		if err := m.Put(bg, k, e); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	if n := countDocs(t, m); n != 3 {
		t.Fatalf("documents after 3 Puts: %d, want 3", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m.shared.ttl.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := m.shared.ttl.Load(); got != -1 {
		t.Fatalf("TTL index state %d, want -1 (FerretDB does not implement TTL indexes)", got)
	}
	for countDocs(t, m) != 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := countDocs(t, m); n != 2 {
		t.Fatalf("documents 20s after one expired: %d, want 2 (the sweeper did not delete it)", n)
	}
	for _, k := range []string{"later", "forever"} {
		if _, err := m.Get(bg, k); err != nil {
			t.Fatalf("Get(%q) after the sweep: %v", k, err)
		}
	}
	if n := logs.FilterMessageSnippet("TTL index").Len(); n != 1 {
		t.Fatalf("%d log lines about the missing TTL index, want 1", n)
	}
}

// List prefixes are literal, not regular expressions.
func TestListPrefixIsLiteral(t *testing.T) {
	srv := testservers.FerretDB(t)
	m := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: uniqueName(t)})
	for _, k := range []string{"a.c/1", "abc/1", "a.c*x", "(x)|y", "x", `a\b`, "^a"} {
		if err := m.Put(bg, k, storagetest.Entry(k, 10)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for prefix, want := range map[string][]string{
		"a.c":  {"a.c*x", "a.c/1"},
		"a.c*": {"a.c*x"},
		"(x)|": {"(x)|y"},
		`a\`:   {`a\b`},
		"^":    {"^a"},
		"a":    {"a.c*x", "a.c/1", `a\b`, "abc/1"},
	} {
		var got []string
		if err := m.List(bg, prefix, func(k string, _ *storage.Entry) error { got = append(got, k); return nil }); err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// A stopped server makes calls fail within their deadline; after a restart
// they work again. One warning and one info line, not one per call.
func TestOutageAndRecovery(t *testing.T) {
	srv := testservers.FerretDB(t)
	logger, logs := storetest.ObservedLogger(zapcore.InfoLevel)
	m := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI}, Collection: uniqueName(t), logger: logger})
	e := storagetest.Entry("kept", 100)
	if err := m.Put(bg, "kept", e); err != nil {
		t.Fatalf("Put: %v", err)
	}

	srv.Stop(t)
	ops := storetest.Ops(m, "kept", "other", e)
	storetest.ExpectFailures(t, ops, 2)

	srv.Start(t)
	if err := storetest.Retry(30*time.Second, 2*time.Second, ops["Get"]); err != nil {
		t.Fatalf("Get 30s after the server came back: %v", err)
	}
	storetest.ExpectSuccess(t, ops)
	storetest.ExpectOutageLogged(t, logs)
}

// Two configs with the same identity, on two Caddy contexts, share one
// client and one collection state; the last Cleanup closes the client. No
// server is needed.
func TestReloadSharesClient(t *testing.T) {
	uri := strings.Replace(closedURI(t), "mongodb://", "mongodb://cache:hunter2-secret@", 1)
	core, logs := observer.New(zapcore.InfoLevel)
	a := provisionOnly(t, &MongoDB{Config: mongoconn.Config{URI: uri, SweepInterval: caddy.Duration(time.Minute)}, Collection: "c"})
	b := provisionOnly(t, &MongoDB{Config: mongoconn.Config{URI: uri, SweepInterval: caddy.Duration(2 * time.Minute)}, Collection: "c", logger: zap.New(core)})
	if a.shared != b.shared {
		t.Fatal("two handles with the same config got different collection states")
	}
	if got := a.shared.bg.Interval(); got != 2*time.Minute {
		t.Fatalf("shared sweep interval %v after the second config, want 2m", got)
	}
	if logs.FilterMessageSnippet("sweep interval").Len() != 1 {
		t.Fatalf("changing a shared tunable logged %d lines, want 1", logs.FilterMessageSnippet("sweep interval").Len())
	}
	c := provisionOnly(t, &MongoDB{Config: mongoconn.Config{URI: uri}, Collection: "other"})
	if c.shared == a.shared || c.shared.client != a.shared.client {
		t.Fatal("a second collection on the same server should have its own state and share the client")
	}
	for _, key := range []string{a.poolKey, a.shared.clientKey} {
		if strings.Contains(key, "hunter2") {
			t.Fatalf("pool key %q contains the password", key)
		}
	}
	client, clientKey := a.shared.client, a.shared.clientKey

	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if client.Closed() {
		t.Fatal("client closed while other handles use it")
	}
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	_, err := b.Get(ctx, "k")
	cancel()
	if err == nil || errors.Is(err, mongoconn.ErrClosed) || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get through the surviving handle without a server: %v, want a connection failure", err)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if client.Closed() || mongoconn.References(clientKey) != 1 {
		t.Fatalf("after the last handle of one collection: closed=%v refs=%d, want false and 1",
			client.Closed(), mongoconn.References(clientKey))
	}
	if err := c.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if !client.Closed() || mongoconn.References(clientKey) != 0 {
		t.Fatalf("after the last handle: closed=%v refs=%d, want true and 0", client.Closed(), mongoconn.References(clientKey))
	}
	if err := c.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}

// Provision does not contact the server, so an unreachable one (or an SRV
// name that does not resolve) does not fail it; calls fail later instead.
func TestProvisionUnreachable(t *testing.T) {
	for _, uri := range []string{closedURI(t), "mongodb+srv://cache.does-not-exist.invalid/"} {
		m := provisionOnly(t, &MongoDB{Config: mongoconn.Config{URI: uri}})
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		_, err := m.Get(ctx, "k")
		cancel()
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: Get: %v, want a failure", uri, err)
		}
		if err := m.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProvisionErrors(t *testing.T) {
	t.Setenv("CACHE_TEST_MONGO_URI", "mongodb://127.0.0.1:1/")
	m := provisionOnly(t, &MongoDB{Config: mongoconn.Config{URI: "{env.CACHE_TEST_MONGO_URI}"}})
	if got := m.shared.client.Display(); got != "mongodb://127.0.0.1:1" {
		t.Fatalf("placeholder uri resolved to %q", got)
	}
	m.Cleanup()
	for _, tc := range []struct {
		cfg  MongoDB
		want string
	}{
		{MongoDB{}, "uri is required"},
		{MongoDB{Config: mongoconn.Config{URI: "{env.CACHE_TEST_UNSET_VARIABLE}"}}, "uri is required"},
		{MongoDB{Config: mongoconn.Config{URI: "http://x"}}, `must start with "mongodb://"`},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://u:hunter2-secret@h:1/?authMechanism=BOGUS"}}, "uri for mongodb://h:1 is invalid"},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb+srv://a,b/"}}, "exactly one host"},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://h/", Database: "a.b"}}, `database "a.b"`},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://h/"}, Collection: "system.x"}, `collection "system.x"`},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://h/", Compression: "lz4"}}, "compression"},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://h/", ConnectTimeout: -1}}, "connect_timeout"},
		{MongoDB{Config: mongoconn.Config{URI: "mongodb://h/", SweepInterval: -1}}, "sweep_interval"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		cfg := tc.cfg
		cfg.logger = zap.NewNop()
		err := cfg.Provision(ctx)
		cancel()
		if err == nil {
			cfg.Cleanup()
			t.Errorf("Provision(%+v): nil error, want one mentioning %q", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Provision(%+v): %v, want it to mention %q", tc.cfg, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Provision error reveals the password: %v", err)
		}
		if cfg.poolKey != "" {
			t.Errorf("failed Provision(%+v) holds a pool reference", tc.cfg)
		}
	}
}

// KeysForTag uses the tags field; DeleteExpired removes what has expired.
func TestTagIndexAndExpirer(t *testing.T) {
	srv := testservers.FerretDB(t)
	m := provision(t, &MongoDB{Config: mongoconn.Config{URI: srv.URI, SweepInterval: caddy.Duration(time.Hour)}, Collection: uniqueName(t)})
	testTagsAndExpiry(t, m, func() int64 { return countDocs(t, m) })
}

// testTagsAndExpiry checks storage.TagIndex and storage.Expirer on s;
// count returns how many entries s holds, expired or not.
func testTagsAndExpiry(t *testing.T, s interface {
	storage.Store
	storage.TagIndex
	storage.Expirer
}, count func() int64,
) {
	t.Helper()
	soon := time.Now().Add(4 * time.Second) // after the checks before its expiry, on a loaded machine too
	for _, tc := range []struct {
		key     string
		tags    []string
		expires time.Time
	}{
		{"a", []string{"x", "y"}, time.Now().Add(time.Hour)},
		{"b", []string{"y"}, time.Time{}},
		{"c", []string{"x"}, soon},
		{"d", nil, time.Now().Add(time.Hour)},
	} {
		e := storagetest.Entry(tc.key, 10)
		e.Tags, e.Expires = tc.tags, tc.expires
		if err := s.Put(bg, tc.key, e); err != nil {
			t.Fatalf("Put(%q): %v", tc.key, err)
		}
	}
	keys := func(tag string) string {
		t.Helper()
		ks, err := s.KeysForTag(bg, tag)
		if err != nil {
			t.Fatalf("KeysForTag(%q): %v", tag, err)
		}
		slices.Sort(ks)
		return strings.Join(ks, ",")
	}
	if got := keys("x"); got != "a,c" {
		t.Fatalf("KeysForTag(x) = %q, want a,c", got)
	}
	if got := keys("y"); got != "a,b" {
		t.Fatalf("KeysForTag(y) = %q, want a,b", got)
	}
	if got := keys("none"); got != "" {
		t.Fatalf("KeysForTag(none) = %q, want nothing", got)
	}
	if n, err := s.DeleteExpired(bg); err != nil || n != 0 {
		t.Fatalf("DeleteExpired before anything expired: %d, %v; want 0", n, err)
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	if got := keys("x"); got != "a" {
		t.Fatalf("KeysForTag(x) after c expired = %q, want a", got)
	}
	if n := count(); n != 4 {
		t.Fatalf("%d entries stored before DeleteExpired, want 4", n)
	}
	if n, err := s.DeleteExpired(bg); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v; want 1", n, err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d entries stored after DeleteExpired, want 3", n)
	}
}
