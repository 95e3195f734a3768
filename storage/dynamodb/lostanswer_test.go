package dynamodb

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// loseFirstAnswer sends requests to DynamoDB Local, but drops the answer to
// the first conditional PutItem after the server applied it, as a
// connection reset would: the SDK then retries the write.
type loseFirstAnswer struct{ lost atomic.Bool }

func (l *loseFirstAnswer) Do(r *http.Request) (*http.Response, error) {
	conditional := false
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutItem") && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		conditional = bytes.Contains(body, []byte("ConditionExpression"))
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && conditional && resp.StatusCode == http.StatusOK && l.lost.CompareAndSwap(false, true) {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset (test: the answer is lost)")
	}
	return resp, err
}

// An Update whose write was applied but whose answer was lost (the SDK
// retries it, and the retry's condition fails on the write's own version)
// succeeds once: fn is not applied a second time on top of itself.
func TestUpdateLostAnswer(t *testing.T) {
	srv := testservers.DynamoDBLocal(t)
	cfg := local(t, srv.URI)
	cfg.AccessKeyID += "3" // a pooled client of its own, with the transport
	lose := &loseFirstAnswer{}
	cfg.httpClient = lose
	d := provision(t, cfg)

	if err := d.Put(bg, "k", storagetest.Entry("k", 10)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := d.Update(bg, "k", func(old *storage.Entry) *storage.Entry {
		calls++
		n := *old
		n.Tags = append(append([]string(nil), old.Tags...), "added")
		return &n
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !lose.lost.Load() {
		t.Fatal("no answer was lost: the test did not exercise the retry")
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times for one update, want 1 (the applied write was taken for a conflict)", calls)
	}
	got, err := d.Get(bg, "k")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(got.Tags, "\x00"), "added"); n != 1 {
		t.Fatalf("tags after one update: %q, want \"added\" once", got.Tags)
	}
}
