package dynamodb

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
)

// Two configs with the same identity, on two Caddy contexts, share one
// client; namespace and consistent_reads are per handle; the last Cleanup
// destroys the shared state. No server is needed.
func TestReloadSharesClient(t *testing.T) {
	endpoint := closedEndpoint(t)
	cfg := func(ns string) *DynamoDB {
		c := local(t, endpoint)
		c.Namespace, c.SecretAccessKey = ns, "hunter2-secret"
		return c
	}
	a := provisionOnly(t, cfg("one"))
	off := false
	bcfg := cfg("two")
	bcfg.ConsistentReads = &off
	b := provisionOnly(t, bcfg)
	if a.shared != b.shared {
		t.Fatal("two handles with the same endpoint, region, table and credentials got different clients")
	}
	if a.ns != "one" || b.ns != "two" || !a.consistent || b.consistent {
		t.Fatalf("per-handle settings mixed up: ns %q/%q consistent %v/%v", a.ns, b.ns, a.consistent, b.consistent)
	}
	if strings.Contains(a.poolKey, "hunter2") {
		t.Fatalf("pool key %q contains the secret", a.poolKey)
	}
	ccfg := cfg("one")
	ccfg.Table = "another-table"
	c := provisionOnly(t, ccfg)
	if c.shared == a.shared {
		t.Fatal("another table shares the client state")
	}
	shared := a.shared
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if shared.bg.Stopped() {
		t.Fatal("shared state destroyed while another handle uses it")
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	_, err := b.Get(ctx, "k")
	cancel()
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, errClosed) {
		t.Fatalf("Get through the surviving handle without a server: %v, want a connection failure", err)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if !shared.bg.Stopped() {
		t.Fatal("shared state not destroyed after the last handle")
	}
	if n, _ := pool.References(a.poolKey); n != 0 {
		t.Fatalf("pool still holds %d references", n)
	}
	if err := c.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}

// Provision does not contact the service.
func TestProvisionUnreachable(t *testing.T) {
	d := provision(t, local(t, closedEndpoint(t)))
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	if _, err := d.Get(ctx, "k"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get without a server: %v, want a failure", err)
	}
}

func TestProvisionConfig(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("CACHE_TEST_SECRET", "hunter2-secret")
	t.Setenv("CACHE_TEST_NS", "from-env")

	// Defaults and placeholders.
	d := provision(t, &DynamoDB{
		Region: "eu-west-1", Namespace: "{env.CACHE_TEST_NS}",
		AccessKeyID: "id", SecretAccessKey: "{env.CACHE_TEST_SECRET}",
	})
	if d.shared.name != DefaultTable || d.ns != "from-env" || !d.consistent || d.comp != storage.CompressionZstd {
		t.Fatalf("defaults: table %q ns %q consistent %v compression %q", d.shared.name, d.ns, d.consistent, d.comp)
	}
	creds, err := d.shared.client.Options().Credentials.Retrieve(bg)
	if err != nil || creds.SecretAccessKey != "hunter2-secret" {
		t.Fatalf("credentials from placeholders: %v %q", err, creds.SecretAccessKey)
	}
	if d.shared.client.Options().BaseEndpoint != nil {
		t.Fatal("an endpoint is set although none was configured")
	}

	for _, tc := range []struct {
		cfg  DynamoDB
		want string
	}{
		{DynamoDB{}, "region is not set"},
		{DynamoDB{Region: "r", Table: "x"}, `table "x"`},
		{DynamoDB{Region: "r", Table: "bad name"}, `table "bad name"`},
		{DynamoDB{Region: "r", Namespace: strings.Repeat("n", 1025)}, "namespace is 1025 bytes"},
		{DynamoDB{Region: "r", Endpoint: "127.0.0.1:8000"}, `endpoint "127.0.0.1:8000"`},
		{DynamoDB{Region: "r", AccessKeyID: "id"}, "must be set together"},
		{DynamoDB{Region: "r", AccessKeyID: "id", SecretAccessKey: "{env.CACHE_TEST_UNSET}"}, "must be set together"},
		{DynamoDB{Region: "r", Compression: "gzip"}, "compression"},
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
		if cfg.poolKey != "" {
			t.Errorf("failed Provision(%+v) holds a pool reference", tc.cfg)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		in      string
		want    DynamoDB
		wantErr string
	}{
		{in: `dynamodb`, want: DynamoDB{}},
		{in: `dynamodb my-table`, want: DynamoDB{Table: "my-table"}},
		{in: `dynamodb {
			table t-1
			namespace site-a
			region eu-central-1
			endpoint http://127.0.0.1:8000
			create_table
			access_key_id {env.KEY}
			secret_access_key {env.SECRET}
			consistent_reads false
			compression off
		}`, want: DynamoDB{
			Table: "t-1", Namespace: "site-a", Region: "eu-central-1", Endpoint: "http://127.0.0.1:8000",
			CreateTable: true, AccessKeyID: "{env.KEY}", SecretAccessKey: "{env.SECRET}", ConsistentReads: &no, Compression: "off",
		}},
		{in: "dynamodb {\n create_table false\n consistent_reads true\n}", want: DynamoDB{ConsistentReads: &yes}},
		{in: `dynamodb a b`, wantErr: `unexpected argument "b"`},
		{in: "dynamodb t-1 {\n table t-2\n}", wantErr: "table specified more than once"},
		{in: "dynamodb {\n create_table\n create_table false\n}", wantErr: "create_table specified more than once"},
		{in: "dynamodb {\n create_table maybe\n}", wantErr: `create_table "maybe"`},
		{in: "dynamodb {\n consistent_reads\n}", want: DynamoDB{ConsistentReads: &yes}},
		{in: "dynamodb {\n region\n}", wantErr: "region takes exactly one argument"},
		{in: "dynamodb {\n region a b\n}", wantErr: "region takes exactly one argument"},
		{in: "dynamodb {\n endpoint localhost:8000\n}", wantErr: `endpoint "localhost:8000"`},
		{in: "dynamodb {\n compression lz4\n}", wantErr: "compression"},
		{in: "dynamodb {\n access_key_id x\n}", wantErr: "must be set together"},
		{in: "dynamodb x", wantErr: `table "x"`},
		{in: "dynamodb {\n bucket b\n}", wantErr: `unrecognized dynamodb storage option "bucket"`},
		{in: "dynamodb {\n regoin eu-west-1\n}", wantErr: `unrecognized dynamodb storage option "regoin" (did you mean "region"?)`},
	} {
		var got DynamoDB
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestOptionsKnown keeps the typo hints' list in step with the parser.
func TestOptionsKnown(t *testing.T) {
	for _, opt := range options {
		var d DynamoDB
		err := d.UnmarshalCaddyfile(caddyfile.NewTestDispenser("dynamodb {\n" + opt + "\n}"))
		if err != nil && strings.Contains(err.Error(), "unrecognized") {
			t.Errorf("option %q listed for hints but not parsed: %v", opt, err)
		}
	}
}
