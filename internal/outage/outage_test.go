package outage

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sim drives a tracker with calls every step; fail says whether the call
// at time at fails. It returns the sequence of announcements: D for down,
// U for recovered.
func sim(tr *Tracker, steps int, step time.Duration, fail func(at time.Duration) bool) string {
	var seq strings.Builder
	for i := range steps {
		at := time.Duration(i) * step
		now := t0.Add(at)
		if fail(at) {
			tr.Fail(now, func() { seq.WriteByte('D') })
		} else {
			tr.Succeed(now, func(Recovery) { seq.WriteByte('U') })
		}
	}
	return seq.String()
}

// Three outages during which 10% of the calls fail, between healthy
// minutes, at 50 calls a second: one line pair per outage.
func TestTenPercentFaultRateIsOneOutage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// outages during [60s,120s), [180s,200s), [300s,420s) of a 10 min run
	outages := [][2]time.Duration{{60 * time.Second, 120 * time.Second}, {180 * time.Second, 200 * time.Second}, {300 * time.Second, 420 * time.Second}}
	failures := 0
	fail := func(at time.Duration) bool {
		for _, o := range outages {
			if at >= o[0] && at < o[1] && rng.IntN(10) == 0 {
				failures++
				return true
			}
		}
		return false
	}
	seq := sim(New(Policy{}), 30000, 20*time.Millisecond, fail)
	if seq != "DUDUDU" {
		t.Fatalf("announcements %q for 3 outages with %d failed calls, want DUDUDU", seq, failures)
	}
	if failures < 300 {
		t.Fatalf("only %d failures injected", failures)
	}
}

// Without the success count, the same fault rate with a short quiet period
// flaps: this is what the policy prevents (and shows the simulation can
// fail).
func TestShortQuietFlaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fail := func(at time.Duration) bool { return at < 60*time.Second && rng.IntN(10) == 0 }
	seq := sim(New(Policy{Quiet: time.Nanosecond, Successes: 1}), 6000, 20*time.Millisecond, fail)
	if n := strings.Count(seq, "D"); n < 100 {
		t.Fatalf("%d outages announced by a tracker without hysteresis, expected it to flap (%q)", n, seq)
	}
}

func TestRecoveryNeedsQuietAndSuccesses(t *testing.T) {
	tr := New(Policy{})
	var downs, ups int
	var rec Recovery
	if !tr.Fail(t0, func() { downs++ }) || !tr.Down() {
		t.Fatal("first failure did not begin an outage")
	}
	if tr.Fail(t0.Add(time.Second), func() { downs++ }) {
		t.Fatal("second failure began another outage")
	}
	last := t0.Add(time.Second)
	// 100 successes within the quiet period: still down.
	for i := range DefaultSuccesses {
		if tr.Succeed(last.Add(time.Duration(i)*time.Millisecond), func(r Recovery) { ups++ }) {
			t.Fatalf("recovered after %d successes within %v of a failure", i+1, DefaultQuiet)
		}
	}
	// Quiet period passed and more than 100 successes: recovered.
	if !tr.Succeed(last.Add(DefaultQuiet), func(r Recovery) { ups++; rec = r }) {
		t.Fatal("not recovered after the quiet period and 101 successes")
	}
	if tr.Down() || downs != 1 || ups != 1 {
		t.Fatalf("down %v, %d down and %d up announcements", tr.Down(), downs, ups)
	}
	if rec.Failures != 2 || rec.DownFor != time.Second+DefaultQuiet {
		t.Fatalf("recovery %+v, want 2 failures over %v", rec, time.Second+DefaultQuiet)
	}

	// The quiet period alone is not enough: few successes.
	tr.Fail(t0, nil)
	for i := range 10 {
		if tr.Succeed(t0.Add(DefaultQuiet+time.Duration(i)*time.Second), nil) {
			t.Fatalf("recovered after %d successes", i+1)
		}
	}
	// ... until LongQuiet has passed without a failure.
	if tr.Succeed(t0.Add(DefaultLongQuiet-time.Second), nil) {
		t.Fatal("recovered before LongQuiet")
	}
	if !tr.Succeed(t0.Add(DefaultLongQuiet), nil) {
		t.Fatal("not recovered after LongQuiet without a failure")
	}
}

// A failure resets the success count.
func TestFailureResetsSuccesses(t *testing.T) {
	tr := New(Policy{Quiet: time.Second, Successes: 3})
	tr.Fail(t0, nil)
	tr.Succeed(t0.Add(2*time.Second), nil)
	tr.Succeed(t0.Add(2*time.Second), nil)
	tr.Fail(t0.Add(2*time.Second), nil)
	tr.Succeed(t0.Add(4*time.Second), nil)
	if tr.Succeed(t0.Add(4*time.Second), nil) {
		t.Fatal("recovered with 2 successes since the last failure, want 3")
	}
	if !tr.Succeed(t0.Add(4*time.Second), nil) {
		t.Fatal("not recovered with 3 successes and the quiet period")
	}
}

// Concurrent callers see one announcement per state change, in order.
func TestConcurrentAnnouncementsOrdered(t *testing.T) {
	tr := New(Policy{Quiet: time.Millisecond, Successes: 5})
	var mu sync.Mutex
	var seq strings.Builder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				if (i+g)%97 == 0 {
					tr.Fail(now, func() { mu.Lock(); seq.WriteByte('D'); mu.Unlock() })
				} else {
					tr.Succeed(now, func(Recovery) { mu.Lock(); seq.WriteByte('U'); mu.Unlock() })
				}
			}
		})
	}
	wg.Wait()
	s := seq.String()
	if s == "" || strings.Contains(s, "DD") || strings.Contains(s, "UU") || s[0] != 'D' {
		t.Fatalf("announcements out of order: %q", s)
	}
}
