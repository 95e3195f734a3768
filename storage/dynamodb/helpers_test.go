package dynamodb

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/storetest"
)

func TestMain(m *testing.M) {
	storetest.QuickRecovery()
	// Keep the developer's AWS files and IMDS out of the tests.
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	code := m.Run()
	testservers.KillAll()
	os.Exit(code)
}

var bg = context.Background()

// local returns a config for DynamoDB Local at endpoint, creating the table
// on first use, in a namespace no other test uses.
func local(t testing.TB, endpoint string) *DynamoDB {
	o := testservers.DynamoDBClientOptions()
	return &DynamoDB{
		Table:           "cache-test",
		Namespace:       unique(t),
		Region:          o.Region,
		Endpoint:        endpoint,
		CreateTable:     true,
		AccessKeyID:     o.AccessKeyID,
		SecretAccessKey: o.SecretAccessKey,
	}
}

// provisionOnly provisions cfg on a fresh Caddy context; the caller cleans up.
func provisionOnly(t testing.TB, cfg *DynamoDB) *DynamoDB {
	t.Helper()
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	storetest.Provision(t, cfg)
	return cfg
}

// provision is provisionOnly plus a cleanup releasing the handle.
func provision(t testing.TB, cfg *DynamoDB) *DynamoDB {
	t.Helper()
	d := provisionOnly(t, cfg)
	t.Cleanup(func() {
		if err := d.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return d
}

func unique(t testing.TB) string {
	return storetest.UniqueName(t, "t-")
}

// corrupt overwrites the data attribute of key's manifest with raw.
func corrupt(t *testing.T, s storage.Store, key string, raw []byte) {
	t.Helper()
	d := s.(*DynamoDB)
	_, err := d.shared.client.UpdateItem(bg, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.shared.name),
		Key:                       keyOf(d.pk(key)),
		UpdateExpression:          aws.String("SET #d = :raw"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#d": "data"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":raw": &types.AttributeValueMemberB{Value: raw}},
	})
	if err != nil {
		t.Fatalf("corrupting %q: %v", key, err)
	}
}

// rawItems returns every item of d's namespace (manifests and parts), by
// pk, without their data.
func rawItems(t testing.TB, d *DynamoDB) map[string]map[string]types.AttributeValue {
	t.Helper()
	items := map[string]map[string]types.AttributeValue{}
	pages := dynamodb.NewScanPaginator(d.shared.client, &dynamodb.ScanInput{
		TableName:                 aws.String(d.shared.name),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(pk, :ns)"),
		ProjectionExpression:      aws.String("pk, k, parts, gen, expires_at"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":ns": &types.AttributeValueMemberS{Value: d.ns}},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(bg)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, it := range page.Items {
			pk, _ := str(it["pk"])
			if strings.HasPrefix(pk, d.ns+":") || strings.HasPrefix(pk, d.ns+"#") {
				items[pk] = it
			}
		}
	}
	return items
}

// partItems returns the pks of the part items of d's namespace.
func partItems(t testing.TB, d *DynamoDB) []string {
	var parts []string
	for pk := range rawItems(t, d) {
		if strings.HasPrefix(pk, d.ns+"#p:") {
			parts = append(parts, pk)
		}
	}
	return parts
}

// closedEndpoint returns an http URL on a loopback port nothing listens on.
func closedEndpoint(t testing.TB) string {
	return "http://127.0.0.1:" + strconv.Itoa(testservers.FreePorts(t, 1)[0])
}
