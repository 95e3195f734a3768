package cache

import (
	"testing"

	"github.com/caddycache/caddy-cache/storage/sqlite"
)

// A SQLite file takes cross-process locks only when marked shared: on one
// process they would only cost two writes per miss.
func TestLockerOfSQLiteOnlyWhenShared(t *testing.T) {
	if lockerOf(&sqlite.SQLite{}) != nil {
		t.Fatal("an unshared SQLite file is used for cross-process locks")
	}
	if lockerOf(&sqlite.SQLite{Shared: true}) == nil {
		t.Fatal("a shared SQLite file is not used for cross-process locks")
	}
}
