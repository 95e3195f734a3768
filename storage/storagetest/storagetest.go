// Package storagetest is the conformance suite every storage backend passes.
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return openMyStore(t) }, storagetest.Options{})
//	}
package storagetest

import (
	"testing"

	"github.com/caddycache/caddy-cache/storage"
)

// Options adapt the suite to a backend.
type Options struct {
	// MaxBodySize is the largest body the backend must hold (the
	// "large body at the limit" case). Default 4 MiB.
	MaxBodySize int
	// Corrupt overwrites the raw stored bytes of key with garbage,
	// bypassing the codec, so the suite can check that Get answers
	// ErrCorrupt (and never panics). Required for backends that store
	// encoded bytes; stores that keep Go values (memory) set NoBytes.
	Corrupt func(t *testing.T, s storage.Store, key string, raw []byte)
	// NoBytes marks a store that keeps decoded values and so cannot hold
	// corrupt bytes; the corrupt-entry subtest then checks nothing and
	// says so in its name instead of skipping.
	NoBytes bool
}

// Run runs every subtest against fresh stores from open. open is called
// once per subtest and must return an empty store; the suite cleans up
// through t.Cleanup registered by open.
func Run(t *testing.T, open func(t *testing.T) storage.Store, opts Options) {
	t.Helper()
	panic("unimplemented")
}
