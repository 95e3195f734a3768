package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

func listed(t *testing.T, r *Redis, prefix string) []string {
	t.Helper()
	var keys []string
	err := r.List(bg, prefix, func(key string, meta *storage.Entry) error {
		if meta.Body != nil {
			t.Errorf("List(%q) key %q: Body is set", prefix, key)
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}

func pttl(t *testing.T, r *Redis, key string) time.Duration {
	t.Helper()
	ms, err := r.Client().Do(bg, "PTTL", r.KeyPrefix()+key).Int64()
	if err != nil {
		t.Fatalf("PTTL %q: %v", key, err)
	}
	if ms < 0 {
		return time.Duration(ms) // -1: no expiry, -2: no key
	}
	return time.Duration(ms) * time.Millisecond
}

// The standalone tests share one server; each test uses its own namespace.
func TestStandalone(t *testing.T) {
	srv := testservers.Redis(t)
	open := func(t *testing.T, cfg Redis) *Redis {
		cfg.Addresses = []string{srv.Addr}
		if cfg.Namespace == "" {
			cfg.Namespace = uniqueNamespace(t)
		}
		return provision(t, &cfg)
	}

	t.Run("key layout and native expiry", func(t *testing.T) {
		r := open(t, Redis{StaleGrace: caddy.Duration(30 * time.Second)})
		e := storagetest.Entry("ttl", 100)
		e.Expires = time.Now().Add(time.Minute)
		if err := r.Put(bg, "a key", e); err != nil {
			t.Fatal(err)
		}
		want := r.Namespace + ":e:a key"
		n, err := r.Client().Exists(bg, want).Result()
		if err != nil || n != 1 {
			t.Fatalf("EXISTS %q = %d, %v; want the entry under <namespace>:e:<key>", want, n, err)
		}
		// PX is Expires - now + stale_grace: 90s, less the time since Put.
		if got := pttl(t, r, "a key"); got <= 60*time.Second || got > 90*time.Second {
			t.Fatalf("PTTL = %v, want in (60s, 90s] (1 minute to Expires + 30s stale_grace)", got)
		}
		forever := storagetest.Entry("forever", 10)
		forever.Expires = time.Time{}
		if err := r.Put(bg, "forever", forever); err != nil {
			t.Fatal(err)
		}
		if got := pttl(t, r, "forever"); got != -1 {
			t.Fatalf("PTTL of an entry without Expires = %d, want -1 (no expiry)", got)
		}
		// Overwriting a key without Expires with one that has it sets a TTL.
		if err := r.Put(bg, "forever", e); err != nil {
			t.Fatal(err)
		}
		if got := pttl(t, r, "forever"); got <= 0 {
			t.Fatalf("PTTL after overwrite with an expiring entry = %v, want > 0", got)
		}
	})

	t.Run("Expires is checked after decoding", func(t *testing.T) {
		r := open(t, Redis{})
		// Written behind the store's back without a TTL, as a server
		// with a slow clock or a large stale_grace could leave it.
		e := storagetest.Entry("old", 10)
		e.Expires = time.Now().Add(-time.Second)
		if err := r.Client().Set(bg, r.KeyPrefix()+"old", storage.Encode(e, storage.CompressionZstd), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Get(bg, "old"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get of an entry past its Expires: %v, %v; want ErrNotFound", got, err)
		}
		if keys := listed(t, r, ""); len(keys) != 0 {
			t.Fatalf("List returned expired keys %q", keys)
		}
	})

	t.Run("max_entry_size", func(t *testing.T) {
		r := open(t, Redis{MaxEntrySize: 8 << 10, Compression: "off"})
		small := storagetest.Entry("small", 1000)
		if err := r.Put(bg, "k", small); err != nil {
			t.Fatalf("Put under max_entry_size: %v", err)
		}
		big := storagetest.Entry("big", 0)
		big.Body = storagetest.RandomBody(9<<10, 1)
		err := r.Put(bg, "k", big)
		if !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("Put over max_entry_size: %v, want ErrTooLarge", err)
		}
		// The previous entry does not outlive the response that replaced it.
		if _, err := r.Get(bg, "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after a too-large Put: %v, want ErrNotFound", err)
		}
		// A compressible body of the same size fits once compressed.
		z := open(t, Redis{MaxEntrySize: 8 << 10})
		comp := storagetest.Entry("comp", 0)
		comp.Body = []byte(strings.Repeat("compressible ", 800))
		if err := z.Put(bg, "k", comp); err != nil {
			t.Fatalf("Put of a %d-byte compressible body with zstd under an 8 KiB max_entry_size: %v", len(comp.Body), err)
		}
		got, err := z.Get(bg, "k")
		if err != nil || string(got.Body) != string(comp.Body) {
			t.Fatalf("Get of the compressed entry: %v", err)
		}
	})

	t.Run("keys with any bytes", func(t *testing.T) {
		r := open(t, Redis{})
		keys := []string{
			"GET example.com/a b", "line\nbreak", "crlf\r\nx", "nul\x00byte", "\x00", "tab\tx",
			"glob*star", "glob?q", "glob[ab]", "back\\slash", "colon:e:x", "{hash}tag", "",
		}
		entries := make([]*storage.Entry, len(keys))
		for i, k := range keys {
			entries[i] = storagetest.Entry(fmt.Sprint(i), 20+i)
			if err := r.Put(bg, k, entries[i]); err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
		}
		for i, k := range keys {
			got, err := r.Get(bg, k)
			if err != nil {
				t.Fatalf("Get(%q): %v", k, err)
			}
			if d := storagetest.Diff(entries[i], got, 0); d != "" {
				t.Fatalf("Get(%q): %s", k, d)
			}
		}
		all := listed(t, r, "")
		want := append([]string(nil), keys...)
		slices.Sort(want)
		if fmt.Sprintf("%q", all) != fmt.Sprintf("%q", want) {
			t.Fatalf("List(\"\") = %q, want %q", all, want)
		}
		// Glob metacharacters in the prefix match literally.
		for prefix, want := range map[string][]string{
			"glob*":   {"glob*star"},
			"glob?":   {"glob?q"},
			"glob[":   {"glob[ab]"},
			"glob[a":  {"glob[ab]"},
			"back\\":  {"back\\slash"},
			"nul\x00": {"nul\x00byte"},
			"line\n":  {"line\nbreak"},
			"glob":    {"glob*star", "glob?q", "glob[ab]"},
			"g*":      nil,
			"?":       nil,
		} {
			if got := listed(t, r, prefix); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
				t.Errorf("List(%q) = %q, want %q", prefix, got, want)
			}
		}
	})

	t.Run("namespaces are separate", func(t *testing.T) {
		a := open(t, Redis{})
		b := open(t, Redis{Namespace: a.Namespace + "x"})
		// A namespace whose name has glob characters stays separate too.
		c := open(t, Redis{Namespace: "t-[*]-" + uniqueNamespace(t)})
		if a.shared != b.shared || a.shared != c.shared {
			t.Fatal("handles on the same server with different namespaces do not share the client")
		}
		for i, s := range []*Redis{a, b, c} {
			if err := s.Put(bg, "same", storagetest.Entry(fmt.Sprint(i), 10)); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range []*Redis{a, b, c} {
			got, err := s.Get(bg, "same")
			if err != nil || got.Header.Get("X-Entry-Id") != fmt.Sprint(i) {
				t.Fatalf("namespace %q: Get = %v, %v; want its own entry %d", s.Namespace, got, err, i)
			}
			if keys := listed(t, s, ""); len(keys) != 1 {
				t.Fatalf("namespace %q: List = %q, want only its own key", s.Namespace, keys)
			}
			st, err := s.Stats(bg)
			if err != nil || st.Entries != 1 {
				t.Fatalf("namespace %q: Stats = %+v, %v; want 1 entry", s.Namespace, st, err)
			}
		}
		if err := a.Clear(bg); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Get(bg, "same"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after Clear: %v, want ErrNotFound", err)
		}
		for _, s := range []*Redis{b, c} {
			if _, err := s.Get(bg, "same"); err != nil {
				t.Fatalf("Clear of namespace %q removed an entry of %q: %v", a.Namespace, s.Namespace, err)
			}
		}
	})

	t.Run("Clear removes many entries", func(t *testing.T) {
		r := open(t, Redis{})
		for i := range 1200 { // more than one SCAN batch
			if err := r.Put(bg, fmt.Sprintf("k%d", i), storagetest.Entry("x", 10)); err != nil {
				t.Fatal(err)
			}
		}
		st, err := r.Stats(bg)
		if err != nil || st.Entries != 1200 {
			t.Fatalf("Stats = %+v, %v; want 1200 entries", st, err)
		}
		if err := r.Clear(bg); err != nil {
			t.Fatal(err)
		}
		if st, err := r.Stats(bg); err != nil || st.Entries != 0 || st.Bytes != 0 {
			t.Fatalf("Stats after Clear = %+v, %v; want empty", st, err)
		}
	})

	t.Run("ctx deadline of an in-flight call", func(t *testing.T) {
		r := open(t, Redis{})
		ctx, cancel := context.WithTimeout(bg, time.Millisecond)
		defer cancel()
		<-ctx.Done()
		if err := r.Clear(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Clear with an expired ctx: %v, want DeadlineExceeded", err)
		}
	})
}

// List with a prefix in Cluster visits the keys of every master.
func TestClusterListAllMasters(t *testing.T) {
	addrs := testservers.RedisCluster(t)
	r := provision(t, &Redis{Addresses: addrs, Namespace: uniqueNamespace(t)})
	cc, ok := r.Client().(*goredis.ClusterClient)
	if !ok {
		t.Fatalf("client is %T, want a ClusterClient for %d addresses", r.Client(), len(addrs))
	}
	var want []string
	perMaster := map[string]int{}
	for i := range 60 {
		k := fmt.Sprintf("site/%d", i)
		want = append(want, k)
		if err := r.Put(bg, k, storagetest.Entry(k, 10)); err != nil {
			t.Fatal(err)
		}
		m, err := cc.MasterForKey(bg, r.KeyPrefix()+k)
		if err != nil {
			t.Fatal(err)
		}
		perMaster[m.Options().Addr]++
	}
	if err := r.Put(bg, "other/1", storagetest.Entry("o", 10)); err != nil {
		t.Fatal(err)
	}
	if len(perMaster) != 3 {
		t.Fatalf("the 60 keys landed on %d masters (%v), want all 3: the test would not show per-master listing", len(perMaster), perMaster)
	}
	slices.Sort(want)
	if got := listed(t, r, "site/"); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("List(site/) = %d keys %q, want the %d keys on all masters", len(got), got, len(want))
	}
	st, err := r.Stats(bg)
	if err != nil || st.Entries != 61 {
		t.Fatalf("Stats = %+v, %v; want 61 entries", st, err)
	}
	if err := r.Clear(bg); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, r, ""); len(got) != 0 {
		t.Fatalf("List after Clear = %q, want none", got)
	}
}
