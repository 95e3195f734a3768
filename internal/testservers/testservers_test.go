package testservers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) {
	code := m.Run()
	KillAll()
	os.Exit(code)
}

// pids collects the process ids of every server a test started, so the
// parent test can check that none is left once the subtests are done.
type pids struct {
	mu sync.Mutex
	m  map[int]string
}

func (p *pids) add(t *testing.T, what string, s *Server) {
	t.Helper()
	pid := s.pid()
	if pid == 0 {
		t.Fatalf("%s: no running process after start", what)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[int]string{}
	}
	p.m[pid] = what
}

// checkGone fails for every recorded pid that still exists.
func (p *pids) checkGone(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) == 0 {
		t.Fatal("no server process was recorded")
	}
	for pid, what := range p.m {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after its test ended (kill 0: %v)", what, pid, err)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// redisRoundTrip checks PING and a SET/GET on a standalone server.
func redisRoundTrip(t *testing.T, addr, key string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("PING %s: %v", addr, err)
	}
	want := fmt.Sprintf("value-of-%s-%d", key, time.Now().UnixNano())
	if err := c.Set(ctx(t), key, want, time.Minute).Err(); err != nil {
		t.Fatalf("SET %s on %s: %v", key, addr, err)
	}
	got, err := c.Get(ctx(t), key).Result()
	if err != nil || got != want {
		t.Fatalf("GET %s on %s = %q, %v; want %q", key, addr, got, err, want)
	}
}

func TestServers(t *testing.T) {
	var seen pids
	t.Run("group", func(t *testing.T) {
		t.Run("Redis", func(t *testing.T) {
			t.Parallel()
			s := Redis(t)
			seen.add(t, "redis", s)
			if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.URI != "redis://"+s.Addr {
				t.Fatalf("Addr %q, URI %q", s.Addr, s.URI)
			}
			redisRoundTrip(t, s.Addr, "k1")

			s.Stop(t)
			s.Stop(t) // idempotent
			c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
			if err := c.Ping(ctx(t)).Err(); err == nil {
				t.Fatal("PING succeeded after Stop")
			}
			c.Close()

			addr := s.Addr
			s.Start(t)
			seen.add(t, "redis restarted", s)
			if s.Addr != addr {
				t.Fatalf("restarted on %s, want %s", s.Addr, addr)
			}
			redisRoundTrip(t, s.Addr, "k2")
		})

		t.Run("RedisCluster", func(t *testing.T) {
			t.Parallel()
			addrs := RedisCluster(t)
			if len(addrs) != 3 {
				t.Fatalf("got %d addresses, want 3: %v", len(addrs), addrs)
			}
			for _, a := range addrs {
				if !strings.HasPrefix(a, "127.0.0.1:") {
					t.Fatalf("address %q is not on 127.0.0.1", a)
				}
			}
			recordClusterPids(t, &seen, addrs)

			cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			defer cc.Close()
			// Write keys until every master owns at least one, then read them back.
			perMaster := map[string]int{}
			want := map[string]string{}
			for i := 0; len(perMaster) < 3 && i < 1000; i++ {
				k := fmt.Sprintf("key-%d", i)
				if err := cc.Set(ctx(t), k, "v"+k, time.Minute).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
				want[k] = "v" + k
				slot, err := cc.ClusterKeySlot(ctx(t), k).Result()
				if err != nil {
					t.Fatalf("CLUSTER KEYSLOT %s: %v", k, err)
				}
				perMaster[addrs[nodeOfSlot(int(slot), len(addrs))]]++
			}
			if len(perMaster) != 3 {
				t.Fatalf("keys reached %d masters, want 3: %v", len(perMaster), perMaster)
			}
			for k, v := range want {
				if got, err := cc.Get(ctx(t), k).Result(); err != nil || got != v {
					t.Fatalf("GET %s = %q, %v; want %q", k, got, err, v)
				}
			}
			// Each master holds its share: DBSIZE on every node adds up.
			var mu sync.Mutex
			total := int64(0)
			err := cc.ForEachMaster(ctx(t), func(c context.Context, m *redis.Client) error {
				n, err := m.DBSize(c).Result()
				if err != nil {
					return err
				}
				if n == 0 {
					return fmt.Errorf("master %s holds no key", m.Options().Addr)
				}
				mu.Lock()
				total += n
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if total != int64(len(want)) {
				t.Fatalf("masters hold %d keys, want %d", total, len(want))
			}
		})

		t.Run("FerretDB", func(t *testing.T) {
			t.Parallel()
			s := FerretDB(t)
			seen.add(t, "ferretdb", s)
			if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.URI != "mongodb://"+s.Addr+"/" {
				t.Fatalf("Addr %q, URI %q", s.Addr, s.URI)
			}
			mongoRoundTrip(t, s.URI, "before")

			addr := s.Addr
			s.Stop(t)
			s.Stop(t)
			s.Start(t)
			seen.add(t, "ferretdb restarted", s)
			if s.Addr != addr {
				t.Fatalf("restarted on %s, want %s", s.Addr, addr)
			}
			// The data directory survives a restart.
			c := mongoClient(t, s.URI)
			var doc bson.M
			if err := c.Database("testservers").Collection("c").FindOne(ctx(t), bson.M{"_id": "before"}).Decode(&doc); err != nil {
				t.Fatalf("document written before the restart: %v", err)
			}
			mongoRoundTrip(t, s.URI, "after")
		})

		t.Run("DynamoDBLocal", func(t *testing.T) {
			t.Parallel()
			s := DynamoDBLocal(t)
			seen.add(t, "dynamodb local", s)
			if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.URI != "http://"+s.Addr {
				t.Fatalf("Addr %q, URI %q", s.Addr, s.URI)
			}
			c := dynamoClient(t, s.URI)
			dynamoRoundTrip(t, c)

			addr := s.Addr
			s.Stop(t)
			if _, err := c.ListTables(ctx(t), &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) {
				o.RetryMaxAttempts = 1
			}); err == nil {
				t.Fatal("ListTables succeeded after Stop")
			}
			s.Start(t)
			seen.add(t, "dynamodb local restarted", s)
			if s.Addr != addr {
				t.Fatalf("restarted on %s, want %s", s.Addr, addr)
			}
			dynamoRoundTrip(t, c)
		})
	})
	seen.checkGone(t)
}

func mongoClient(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("mongo.Connect %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// mongoRoundTrip pings, inserts a document with the given id and reads it back.
func mongoRoundTrip(t *testing.T, uri, id string) {
	t.Helper()
	c := mongoClient(t, uri)
	if err := c.Ping(ctx(t), nil); err != nil {
		t.Fatalf("ping %s: %v", uri, err)
	}
	coll := c.Database("testservers").Collection("c")
	want := fmt.Sprintf("body-%s-%d", id, time.Now().UnixNano())
	if _, err := coll.InsertOne(ctx(t), bson.M{"_id": id, "body": want}); err != nil {
		t.Fatalf("InsertOne: %v", err)
	}
	var got struct {
		Body string `bson:"body"`
	}
	if err := coll.FindOne(ctx(t), bson.M{"_id": id}).Decode(&got); err != nil || got.Body != want {
		t.Fatalf("FindOne %s = %q, %v; want %q", id, got.Body, err, want)
	}
}

func dynamoClient(t *testing.T, endpoint string) *dynamodb.Client {
	t.Helper()
	o := DynamoDBClientOptions()
	cfg, err := config.LoadDefaultConfig(ctx(t),
		config.WithRegion(o.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		do.BaseEndpoint = aws.String(endpoint)
		do.DisableValidateResponseChecksum = o.DisableValidateResponseChecksum
	})
}

// dynamoRoundTrip creates a table (the server is in memory, so it is new
// after every start), checks ListTables, then puts and gets an item.
func dynamoRoundTrip(t *testing.T, c *dynamodb.Client) {
	t.Helper()
	const table = "testservers"
	before, err := c.ListTables(ctx(t), &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	if len(before.TableNames) != 0 {
		t.Fatalf("fresh server has tables %v", before.TableNames)
	}
	_, err = c.CreateTable(ctx(t), &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	after, err := c.ListTables(ctx(t), &dynamodb.ListTablesInput{})
	if err != nil || len(after.TableNames) != 1 || after.TableNames[0] != table {
		t.Fatalf("ListTables after CreateTable = %v, %v", after, err)
	}
	want := []byte(fmt.Sprintf("v-%d", time.Now().UnixNano()))
	_, err = c.PutItem(ctx(t), &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"k": &types.AttributeValueMemberS{Value: "key"},
			"v": &types.AttributeValueMemberB{Value: want},
		},
	})
	if err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	out, err := c.GetItem(ctx(t), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "key"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	got, ok := out.Item["v"].(*types.AttributeValueMemberB)
	if !ok || string(got.Value) != string(want) {
		t.Fatalf("GetItem v = %#v, want %q", out.Item["v"], want)
	}
}

// nodeOfSlot returns which of n nodes formCluster gave the slot to.
func nodeOfSlot(slot, n int) int {
	for i := 0; i < n; i++ {
		if slot < (i+1)*16384/n {
			return i
		}
	}
	return n - 1
}

// recordClusterPids finds the cluster nodes' processes through the servers
// this package is tracking.
func recordClusterPids(t *testing.T, seen *pids, addrs []string) {
	t.Helper()
	running.Lock()
	defer running.Unlock()
	found := 0
	for p := range running.m {
		args := strings.Join(p.cmd.Args, " ")
		for _, a := range addrs {
			if strings.Contains(args, "--cluster-enabled") && strings.Contains(args, "--port "+portOf(a)+" ") {
				seen.mu.Lock()
				if seen.m == nil {
					seen.m = map[int]string{}
				}
				seen.m[p.cmd.Process.Pid] = "redis cluster node " + a
				seen.mu.Unlock()
				found++
			}
		}
	}
	if found != len(addrs) {
		t.Fatalf("found %d running cluster node processes, want %d", found, len(addrs))
	}
}

func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 6)
	if len(ports) != 6 {
		t.Fatalf("got %d ports, want 6", len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || p > 65535 || seen[p] {
			t.Fatalf("bad or duplicate port %d in %v", p, ports)
		}
		seen[p] = true
	}
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if moduleOf(filepath.Join(root, "go.mod")) != rootModule {
		t.Fatalf("RepoRoot %s has no go.mod for %s", root, rootModule)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testservers")); err != nil {
		t.Fatalf("RepoRoot %s does not contain internal/testservers: %v", root, err)
	}
}

// pid returns the process id of the running server, or 0.
func (s *Server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}
