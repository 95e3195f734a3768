package sweeper

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLoopRunsFirstRoundsAndKicks(t *testing.T) {
	var first, rounds, kicks atomic.Int32
	l := New(time.Millisecond, time.Minute)
	l.Start(Jobs{
		First:  func(context.Context) error { first.Add(1); return nil },
		Round:  func(context.Context) error { rounds.Add(1); return nil },
		Kicked: func(context.Context) error { kicks.Add(1); return nil },
	})
	<-l.Ready()
	if first.Load() != 1 {
		t.Fatalf("First ran %d times before Ready, want 1", first.Load())
	}
	<-l.Rounds()
	<-l.Rounds()
	l.SetInterval(time.Hour) // no more rounds
	l.Kick()
	deadline := time.After(time.Minute)
	for kicks.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("Kicked never ran")
		case <-time.After(time.Millisecond):
		}
	}
	l.Stop()
	if !l.Stopped() || rounds.Load() < 2 {
		t.Fatalf("stopped %v after %d rounds", l.Stopped(), rounds.Load())
	}
	n := rounds.Load()
	time.Sleep(5 * time.Millisecond)
	if rounds.Load() != n {
		t.Fatal("a round ran after Stop")
	}
	ran := false
	l.Go(time.Second, func(context.Context) { ran = true })
	if ran {
		t.Fatal("Go ran after Stop")
	}
}

// A failing job is logged once when it starts failing and once when it
// works again; a skipped round changes nothing.
func TestHealthOnePairPerOutage(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h := &Health{Logger: zap.New(core), Failed: "sweep failed", Recovered: "sweep works again", Fields: []zap.Field{zap.String("path", "p")}}
	boom := errors.New("boom")
	for _, err := range []error{nil, boom, boom, ErrSkipped, boom, nil, nil, boom, nil} {
		if !errors.Is(err, ErrSkipped) {
			h.report(err)
		}
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message)
		if e.ContextMap()["path"] != "p" {
			t.Errorf("%q lacks the store's fields: %v", e.Message, e.ContextMap())
		}
	}
	want := []string{"warn sweep failed", "info sweep works again", "warn sweep failed", "info sweep works again"}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged %q, want %q", got, want)
		}
	}
}

func TestSetupRetriesUntilItSucceeds(t *testing.T) {
	l := New(time.Hour, 0)
	defer l.Stop()
	var calls atomic.Int32
	done := make(chan error, 10)
	setup := func(context.Context) error {
		if calls.Add(1) == 1 {
			return errors.New("not yet")
		}
		return nil
	}
	l.Setup(setup, func(err error) { done <- err })
	if err := <-done; err == nil {
		t.Fatal("first setup succeeded")
	}
	l.Setup(setup, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("second setup: %v", err)
	}
	l.Setup(setup, func(err error) { done <- err })
	l.Stop()
	if calls.Load() != 2 {
		t.Fatalf("setup ran %d times, want 2 (not again after it succeeded)", calls.Load())
	}
}
