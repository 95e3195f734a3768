package dynamodb

import (
	"strings"
	"testing"
	"time"
)

func TestPartitionKeys(t *testing.T) {
	d := &DynamoDB{ns: "ns"}
	if got := d.pk("a/b"); got != "ns:a/b" {
		t.Fatalf("pk of a short key: %q", got)
	}
	fits := strings.Repeat("k", maxPK-len("ns:"))
	if got := d.pk(fits); got != "ns:"+fits {
		t.Fatalf("a key that just fits was hashed")
	}
	long := fits + "k"
	h := d.pk(long)
	if !strings.HasPrefix(h, "ns#h:") || len(h) != len("ns#h:")+64 || h == d.pk(long+"x") {
		t.Fatalf("pk of a %d-byte key: %q, want ns#h: and a distinct sha256", len(long), h)
	}
	if p := d.partPK("g", 3); p != "ns#p:g:3" || strings.HasPrefix(p, "ns:") {
		t.Fatalf("part pk %q", p)
	}
}

func TestExpirySecondsRoundsUp(t *testing.T) {
	base := time.Unix(1_900_000_000, 0)
	for in, want := range map[time.Time]int64{
		base:                      1_900_000_000,
		base.Add(1):               1_900_000_001,
		base.Add(time.Second - 1): 1_900_000_001,
	} {
		if got := expirySeconds(in); got != want {
			t.Errorf("expirySeconds(%v) = %d, want %d", in, got, want)
		}
	}
}
