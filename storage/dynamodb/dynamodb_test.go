package dynamodb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap/zapcore"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// TestDynamoDBLocal runs the tests that can share one DynamoDB Local (each
// uses its own namespace or table): starting the JVM is the slow part.
func TestDynamoDBLocal(t *testing.T) {
	srv := testservers.DynamoDBLocal(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *testservers.Server)
	}{
		{"conformance", testConformance},
		{"large entries are split", testLargeEntriesAreSplit},
		{"readers never see partial entries", testReadersNeverSeePartialEntries},
		{"too large headers", testTooLargeHeaders},
		{"long keys are hashed", testLongKeysAreHashed},
		{"create table and TTL", testCreateTableAndTTL},
		{"missing table", testMissingTable},
		{"delete expired", testDeleteExpired},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
	}
}

func testConformance(t *testing.T, srv *testservers.Server) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, local(t, srv.URI))
	}, storagetest.Options{Corrupt: corrupt})
}

func bigEntry(id string, n int, seed byte) *storage.Entry {
	e := storagetest.Entry(id, 0)
	e.Body = storagetest.RandomBody(n, seed)
	e.BodySize = int64(n)
	return e
}

func wantBody(t *testing.T, d *DynamoDB, key string, want []byte, why string) {
	t.Helper()
	got, err := d.Get(bg, key)
	if err != nil {
		t.Fatalf("Get(%q) %s: %v", key, why, err)
	}
	if !bytes.Equal(got.Body, want) {
		t.Fatalf("Get(%q) %s: body of %d bytes differs from the %d stored", key, why, len(got.Body), len(want))
	}
}

// Entries larger than an item are split into parts written before the
// manifest; overwrite and delete remove the old parts. DynamoDB Local
// enforces the 400 KB item limit, so every size here also checks that no
// item exceeds it.
func testLargeEntriesAreSplit(t *testing.T, srv *testservers.Server) {
	d := provision(t, local(t, srv.URI))

	for i, n := range []int{ItemLimit - 4096, ItemLimit - 1200, ItemLimit - 600, ItemLimit, PartSize * 2, PartSize*2 + 1} {
		key := fmt.Sprintf("size/%d", n)
		e := bigEntry(key, n, byte(i))
		if err := d.Put(bg, key, e); err != nil {
			t.Fatalf("Put of a %d-byte body: %v", n, err)
		}
		wantBody(t, d, key, e.Body, fmt.Sprintf("of a %d-byte body", n))
	}

	d = provision(t, local(t, srv.URI)) // a fresh namespace
	const key = "https://example.com/one-megabyte"
	a := bigEntry("a", 1<<20, 1)
	if err := d.Put(bg, key, a); err != nil {
		t.Fatalf("Put 1 MiB: %v", err)
	}
	manifest := rawItems(t, d)[d.pk(key)]
	if n, _ := num(manifest["parts"]); n != 3 {
		t.Fatalf("a 1 MiB entry: manifest names %d parts, want 3", n)
	}
	full, err := d.shared.client.GetItem(bg, &dynamodb.GetItemInput{TableName: aws.String(d.shared.name), Key: keyOf(d.pk(key))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := full.Item["data"]; ok {
		t.Fatal("a 1 MiB entry: manifest holds data")
	}
	genA, _ := str(manifest["gen"])
	if parts := partItems(t, d); len(parts) != 3 || !strings.Contains(parts[0], genA) {
		t.Fatalf("a 1 MiB entry: part items %q, want 3 of generation %s", parts, genA)
	}
	wantBody(t, d, key, a.Body, "after storing 1 MiB")

	b := bigEntry("b", 1<<20+100, 2)
	if err := d.Put(bg, key, b); err != nil {
		t.Fatalf("overwriting 1 MiB: %v", err)
	}
	wantBody(t, d, key, b.Body, "after overwriting")
	parts := partItems(t, d)
	if len(parts) != 3 {
		t.Fatalf("after overwriting a 3-part entry with another: %d part items, want 3 (old ones removed)", len(parts))
	}
	for _, p := range parts {
		if strings.Contains(p, genA) {
			t.Fatalf("after overwriting: part %q of the old generation is still there", p)
		}
	}

	small := storagetest.Entry("small", 100)
	if err := d.Put(bg, key, small); err != nil {
		t.Fatal(err)
	}
	if parts := partItems(t, d); len(parts) != 0 {
		t.Fatalf("after overwriting with a small entry: part items %q left", parts)
	}
	if err := d.Put(bg, key, b); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(bg, key); err != nil {
		t.Fatal(err)
	}
	if items := rawItems(t, d); len(items) != 0 {
		t.Fatalf("after Delete of a split entry: %d items left in the namespace", len(items))
	}
	if _, err := d.Get(bg, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}

	// A part that disappears (not through an overwrite) makes the entry
	// corrupt, not half-served.
	if err := d.Put(bg, key, a); err != nil {
		t.Fatal(err)
	}
	parts = partItems(t, d)
	if _, err := d.shared.client.DeleteItem(bg, &dynamodb.DeleteItemInput{TableName: aws.String(d.shared.name), Key: keyOf(parts[1])}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(bg, key); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Get with a part missing: %v, want ErrCorrupt", err)
	}
}

// Readers racing an overwriter of a split entry get the old or the new
// entry, whole, every time.
func testReadersNeverSeePartialEntries(t *testing.T, srv *testservers.Server) {
	d := provision(t, local(t, srv.URI))
	const key = "racy"
	versions := []*storage.Entry{bigEntry("a", 500<<10, 1), bigEntry("b", 700<<10, 2)}
	if err := d.Put(bg, key, versions[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads sync.Map
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					reads.Store(r, n)
					return
				default:
				}
				got, err := d.Get(bg, key)
				if err != nil {
					t.Errorf("reader %d: Get during overwrites: %v", r, err)
					return
				}
				if !bytes.Equal(got.Body, versions[0].Body) && !bytes.Equal(got.Body, versions[1].Body) {
					t.Errorf("reader %d: Get returned a body (%d bytes) that was never stored", r, len(got.Body))
					return
				}
			}
		}()
	}
	for i := 1; i <= 6; i++ {
		if err := d.Put(bg, key, versions[i%2]); err != nil {
			t.Errorf("overwrite %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	if parts := partItems(t, d); len(parts) != 2 {
		t.Fatalf("after the overwrites: %d part items, want the 2 of the last version", len(parts))
	}
}

// Only an entry whose headers alone do not fit in an item is refused.
func testTooLargeHeaders(t *testing.T, srv *testservers.Server) {
	d := provision(t, local(t, srv.URI))
	if err := d.Put(bg, "k", storagetest.Entry("old", 10)); err != nil {
		t.Fatal(err)
	}
	e := storagetest.Entry("huge-header", 10)
	e.Header.Set("X-Huge", strings.Repeat("h", ItemLimit))
	if err := d.Put(bg, "k", e); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put with a 400 KiB header: %v, want ErrTooLarge", err)
	}
	if _, err := d.Get(bg, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after a refused Put: %v, want ErrNotFound (the older entry removed)", err)
	}
}

// Keys too long for a partition key are hashed; the real key is checked.
func testLongKeysAreHashed(t *testing.T, srv *testservers.Server) {
	d := provision(t, local(t, srv.URI))
	long := strings.Repeat("k", storage.MaxKeyLen)
	other := strings.Repeat("k", storage.MaxKeyLen-1) + "x"
	for _, k := range []string{long, other} {
		if err := d.Put(bg, k, storagetest.Entry(k[len(k)-1:], 10)); err != nil {
			t.Fatal(err)
		}
	}
	pk := d.pk(long)
	if !strings.HasPrefix(pk, d.ns+"#h:") || len(pk) > maxPK {
		t.Fatalf("pk of a %d-byte key: %q, want a hashed one", len(long), pk)
	}
	if _, ok := rawItems(t, d)[pk]; !ok {
		t.Fatal("no item under the hashed pk")
	}
	// An item under the right pk but for another key is not returned.
	if _, err := d.shared.client.UpdateItem(bg, &dynamodb.UpdateItemInput{
		TableName: aws.String(d.shared.name), Key: keyOf(pk),
		UpdateExpression:          aws.String("SET k = :k"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": &types.AttributeValueMemberS{Value: "impostor"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(bg, long); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a key whose item names another key: %v, want ErrNotFound", err)
	}
	if got, err := d.Get(bg, other); err != nil || got.Header.Get("X-Entry-Id") != "x" {
		t.Fatalf("Get of the neighbouring long key: %v", err)
	}
}

// create_table creates the table with on-demand billing and TTL on
// expires_at, and DynamoDB Local's TTL then deletes expired entries and
// their parts.
func testCreateTableAndTTL(t *testing.T, srv *testservers.Server) {
	cfg := local(t, srv.URI)
	cfg.Table = "created-" + unique(t)
	d := provision(t, cfg)
	soon := bigEntry("soon", 1<<20, 3)
	soon.Expires = time.Now().Add(time.Second)
	if err := d.Put(bg, "soon", soon); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(bg, "later", storagetest.Entry("later", 10)); err != nil {
		t.Fatal(err)
	}
	desc, err := d.shared.client.DescribeTable(bg, &dynamodb.DescribeTableInput{TableName: aws.String(cfg.Table)})
	if err != nil {
		t.Fatal(err)
	}
	if bm := desc.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("billing mode %+v, want PAY_PER_REQUEST", bm)
	}
	ttl, err := d.shared.client.DescribeTimeToLive(bg, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(cfg.Table)})
	if err != nil {
		t.Fatal(err)
	}
	if td := ttl.TimeToLiveDescription; td.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(td.AttributeName) != "expires_at" {
		t.Fatalf("TTL %s on %q, want ENABLED on expires_at", td.TimeToLiveStatus, aws.ToString(td.AttributeName))
	}
	if n := len(rawItems(t, d)); n != 5 {
		t.Fatalf("%d items, want 5 (2 manifests, 3 parts)", n)
	}
	deadline := time.Now().Add(40 * time.Second)
	for len(rawItems(t, d)) != 1 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	if items := rawItems(t, d); len(items) != 1 {
		t.Fatalf("40s after expiry: %d items, want 1 (TTL removes the manifest and its parts)", len(items))
	}

	// A second client finds the existing table.
	cfg2 := local(t, srv.URI)
	cfg2.Table, cfg2.SecretAccessKey = cfg.Table, "other-secret"
	d2 := provision(t, cfg2)
	if d2.shared == d.shared {
		t.Fatal("different credentials share a client")
	}
	if err := d2.Put(bg, "k", storagetest.Entry("k", 10)); err != nil {
		t.Fatalf("Put through a second client on the existing table: %v", err)
	}

	// A table with another key schema is refused, naming the problem.
	if _, err := d.shared.client.CreateTable(bg, &dynamodb.CreateTableInput{
		TableName:            aws.String("wrong-schema"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	cfg3 := local(t, srv.URI)
	cfg3.Table = "wrong-schema"
	d3 := provision(t, cfg3)
	if _, err := d3.Get(bg, "k"); err == nil || !strings.Contains(err.Error(), "key schema") {
		t.Fatalf("Get on a table with another key schema: %v, want an error about the key schema", err)
	}
}

// Without create_table a missing table is an error, not a miss.
func testMissingTable(t *testing.T, srv *testservers.Server) {
	cfg := local(t, srv.URI)
	cfg.Table, cfg.CreateTable = "never-created", false
	d := provision(t, cfg)
	_, err := d.Get(bg, "k")
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("Get on a missing table: %v, want ResourceNotFoundException", err)
	}
}

// A stopped server makes calls fail within their deadline; after a restart
// (an in-memory server: the table is gone too) create_table recreates the
// table and calls work again. One warning and one info line.
func TestOutageAndRecovery(t *testing.T) {
	srv := testservers.DynamoDBLocal(t)
	logger, logs := storetest.ObservedLogger(zapcore.InfoLevel)
	cfg := local(t, srv.URI)
	cfg.logger = logger
	d := provision(t, cfg)
	e := storagetest.Entry("e", 100)
	if err := d.Put(bg, "k", e); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	ops := storetest.Ops(d, "k", "k", e)
	storetest.ExpectFailures(t, ops, 2)

	srv.Start(t)
	if err := storetest.Retry(30*time.Second, 5*time.Second, ops["Put"]); err != nil {
		t.Fatalf("Put 30s after the server came back: %v", err)
	}
	storetest.ExpectSuccess(t, ops)
	storetest.ExpectOutageLogged(t, logs)
}

// DeleteExpired removes expired entries and their parts now, on a table
// without TTL (so nothing else removes them meanwhile).
func testDeleteExpired(t *testing.T, srv *testservers.Server) {
	cfg := local(t, srv.URI)
	cfg.Table, cfg.CreateTable = "no-ttl-"+unique(t), false
	d := provision(t, cfg)
	if _, err := d.shared.client.CreateTable(bg, &dynamodb.CreateTableInput{
		TableName:            aws.String(cfg.Table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	// far enough that the puts (a 1 MiB entry in parts) finish before it on
	// a loaded machine
	soon := time.Now().Add(3 * time.Second)
	big := bigEntry("big", 1<<20, 4)
	big.Expires = soon
	small := storagetest.Entry("small", 10)
	small.Expires = soon
	for k, e := range map[string]*storage.Entry{"big": big, "small": small, "live": storagetest.Entry("live", 10)} {
		if err := d.Put(bg, k, e); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.DeleteExpired(bg); err != nil || n != 0 {
		t.Fatalf("DeleteExpired before expiry: %d, %v; want 0", n, err)
	}
	time.Sleep(time.Until(soon) + 1100*time.Millisecond) // expires_at has second precision
	if n := len(rawItems(t, d)); n != 6 {
		t.Fatalf("%d items before DeleteExpired, want 6 (3 manifests, 3 parts)", n)
	}
	if n, err := d.DeleteExpired(bg); err != nil || n != 2 {
		t.Fatalf("DeleteExpired: %d, %v; want 2", n, err)
	}
	items := rawItems(t, d)
	if _, ok := items[d.pk("live")]; !ok || len(items) != 1 {
		t.Fatalf("after DeleteExpired: %d items, want only the live entry", len(items))
	}
}
