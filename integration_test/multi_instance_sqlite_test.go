package integration

import (
	"path/filepath"
	"testing"
)

// A cold URL costs the origin one fetch across two Caddy processes sharing
// one SQLite file (the locks table): 25 concurrent clients on each
// instance. A private response under the same load is never handed to
// another client.
func TestMultiInstanceCoalescingSQLite(t *testing.T) {
	testCoalescingAcrossInstances(t, "storage sqlite "+filepath.Join(t.TempDir(), "shared.db")+" {\n\t\t\tshared\n\t\t}")
}

// Variants of one URL added by two instances at the same moment are all
// kept in its Vary index (one write transaction on SQLite).
func TestMultiInstanceVaryIndexSQLite(t *testing.T) {
	testVaryIndexAcrossInstances(t, "storage sqlite "+filepath.Join(t.TempDir(), "shared.db")+" {\n\t\t\tshared\n\t\t}")
}
