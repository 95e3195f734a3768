//go:build !unix

package sqlite

import (
	"testing"
	"time"
)

// cpuTime is 0 where the process's CPU time is not read: cpu-ns/op is then 0.
func cpuTime(*testing.B) time.Duration { return 0 }
