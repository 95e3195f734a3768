package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage/internal/health"
	"github.com/caddycache/caddy-cache/storage/internal/sweeper"
)

// ensureRetry is how long after a failed table creation the next use tries
// again (uses in between get the same error at once).
const ensureRetry = 5 * time.Second

// ttlAttribute is the item attribute holding the expiry, in Unix seconds.
const ttlAttribute = "expires_at"

// errClosed is returned after the shared client was destroyed.
var errClosed = errors.New("dynamodb storage: client closed")

// table is the live state shared by every handle using one client and
// table: the SDK client, the health tracker and, with create_table, the
// state of the table's creation.
type table struct {
	client *dynamodb.Client
	name   string
	logger *zap.Logger
	health *health.Tracker

	mu       sync.Mutex
	ready    bool          // the table exists (checked or created)
	running  chan struct{} // closed when the running creation ends
	err      error         // of the last failed creation
	lastFail time.Time

	bg *sweeper.Loop // the creation and background cleanups (no rounds)
}

func newTable(client *dynamodb.Client, name, where string, logger *zap.Logger) *table {
	t := &table{
		client: client,
		name:   name,
		logger: logger,
		health: health.New(logger, fmt.Sprintf("dynamodb table %s at %s", name, where)),
		bg:     sweeper.New(0, 0),
	}
	return t
}

// Destruct stops a running table creation and background cleanups, and
// waits for them. The SDK client holds no other resources that need
// closing.
func (t *table) Destruct() error {
	t.bg.Stop()
	return nil
}

// goCleanup runs fn in the background (for cleanups the request must not
// wait for), under a timeout, unless the table state was destroyed.
func (t *table) goCleanup(fn func(ctx context.Context)) {
	t.bg.Go(time.Minute, fn)
}

// ensure makes sure the table exists when create is set, creating it (and
// enabling TTL) on first use. The creation runs in the background under its
// own timeout; ensure waits for it at most until ctx is done.
func (t *table) ensure(ctx context.Context, create bool) error {
	if !create {
		return nil
	}
	t.mu.Lock()
	if t.ready {
		t.mu.Unlock()
		return nil
	}
	if t.running == nil {
		if !t.lastFail.IsZero() && time.Since(t.lastFail) < ensureRetry {
			err := t.err
			t.mu.Unlock()
			return err
		}
		done := make(chan struct{})
		if !t.bg.Go(2*time.Minute, func(ctx context.Context) { t.create(ctx, done) }) {
			t.mu.Unlock()
			return errClosed
		}
		t.running = done
	}
	done := t.running
	t.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready {
		return nil
	}
	return t.err
}

// create creates the table (createTable) and records the outcome for
// ensure, closing done.
func (t *table) create(ctx context.Context, done chan struct{}) {
	err := t.createTable(ctx)
	t.mu.Lock()
	t.running = nil
	if err == nil {
		t.ready = true
	} else {
		t.err = fmt.Errorf("dynamodb storage: create_table %s: %w", t.name, err)
		t.lastFail = time.Now()
	}
	t.mu.Unlock()
	close(done)
}

// tableGone records that an operation found the table missing although it
// was created or found before (deleted, or an in-memory DynamoDB Local that
// restarted), so the next use with create_table creates it again.
func (t *table) tableGone(err error) {
	var notFound *types.ResourceNotFoundException
	if err == nil || !errors.As(err, &notFound) {
		return
	}
	t.mu.Lock()
	t.ready = false
	t.lastFail = time.Time{}
	t.mu.Unlock()
}

// createTable creates the table if it is missing, waits until it is
// active, and enables TTL on expires_at if TTL is off.
func (t *table) createTable(ctx context.Context) error {
	desc, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		_, err = t.client.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(t.name),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("creating the table: %w", err)
		}
		if err == nil {
			t.logger.Info("created dynamodb table", zap.String("table", t.name))
		}
		w := dynamodb.NewTableExistsWaiter(t.client, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay, o.MaxDelay = 200*time.Millisecond, 2*time.Second
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)}, 2*time.Minute); err != nil {
			return fmt.Errorf("waiting for the table to become active: %w", err)
		}
	case err != nil:
		return fmt.Errorf("describing the table: %w", err)
	default:
		if err := checkKeySchema(desc.Table); err != nil {
			return err
		}
	}

	ttl, err := t.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(t.name)})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		t.logger.Info("could not check TTL on the dynamodb table; expired entries are hidden from reads but not deleted",
			zap.String("table", t.name), zap.Error(err))
		return nil
	}
	if d := ttl.TimeToLiveDescription; d != nil &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		if aws.ToString(d.AttributeName) != ttlAttribute {
			t.logger.Warn("TTL on the dynamodb table uses another attribute; expired entries are hidden from reads but not deleted",
				zap.String("table", t.name), zap.String("ttl_attribute", aws.ToString(d.AttributeName)))
		}
		return nil
	}
	_, err = t.client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(t.name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(ttlAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		t.logger.Info("could not enable TTL on the dynamodb table; expired entries are hidden from reads but not deleted",
			zap.String("table", t.name), zap.Error(err))
		return nil
	}
	t.logger.Info("enabled TTL on the dynamodb table", zap.String("table", t.name), zap.String("attribute", ttlAttribute))
	return nil
}

// checkKeySchema fails for a table whose key is not the string pk alone.
func checkKeySchema(td *types.TableDescription) error {
	if td == nil {
		return nil
	}
	ok := len(td.KeySchema) == 1 && aws.ToString(td.KeySchema[0].AttributeName) == "pk" && td.KeySchema[0].KeyType == types.KeyTypeHash
	if ok {
		for _, a := range td.AttributeDefinitions {
			if aws.ToString(a.AttributeName) == "pk" && a.AttributeType != types.ScalarAttributeTypeS {
				ok = false
			}
		}
	}
	if !ok {
		return errors.New(`the table exists with another key schema; it needs the string partition key "pk" and no sort key`)
	}
	return nil
}
