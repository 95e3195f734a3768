package redis

import (
	"testing"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// suiteOptions: the large-body case goes up to the default max_entry_size,
// less room for the metadata.
var suiteOptions = storagetest.Options{
	MaxBodySize: DefaultMaxEntrySize - 64<<10,
	Corrupt:     corrupt,
}

func TestConformanceStandalone(t *testing.T) {
	srv := testservers.Redis(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &Redis{Addresses: []string{srv.Addr}, Namespace: uniqueNamespace(t)})
	}, suiteOptions)
}

func TestConformanceStandaloneURL(t *testing.T) {
	srv := testservers.Redis(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &Redis{URL: srv.URI + "/3", Namespace: uniqueNamespace(t), Compression: "off"})
	}, suiteOptions)
}

func TestConformanceCluster(t *testing.T) {
	addrs := testservers.RedisCluster(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &Redis{Addresses: addrs, Namespace: uniqueNamespace(t)})
	}, suiteOptions)
}

// A single seed address with cluster set reaches the whole cluster.
func TestConformanceClusterSingleSeed(t *testing.T) {
	addrs := testservers.RedisCluster(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		r := provision(t, &Redis{Addresses: addrs[1:2], Cluster: true, Namespace: uniqueNamespace(t)})
		if !r.clusterMode() {
			t.Fatal("cluster true with one address: not in Cluster mode")
		}
		return r
	}, suiteOptions)
}
