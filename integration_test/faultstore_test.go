package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/memory"
)

func init() {
	caddy.RegisterModule(faultStore{})
}

// Fault kinds the fault-injecting store knows.
const (
	faultError   = "error"   // the call fails at once
	faultTimeout = "timeout" // the call blocks until its context is done (a dead peer)
	faultSlow    = "slow"    // the call succeeds after a delay (a slow peer)
	faultCorrupt = "corrupt" // Get: the stored bytes do not decode; Put: the bytes written rot
)

var allFaults = []string{faultError, faultTimeout, faultSlow, faultCorrupt}

// errInjected is the error of an injected "error" fault.
var errInjected = errors.New("injected storage fault")

// faultStore is a test-only storage backend,
// http.handlers.cache.storage.faultinject: a memory store with faults
// injected into a configurable share of its calls, drawn from a seeded RNG.
//
// A corrupt Get encodes the stored entry with the shared codec, damages the
// bytes (a flipped byte or a truncation) and decodes them again, as a
// byte-storing backend would; a corrupt Put stores the entry but marks it
// rotten, so every later Get of the key is corrupt until it is overwritten
// or deleted. Every handle with the same Name shares one memory store and
// one set of counters (faultStates), which outlive reloads.
type faultStore struct {
	// Name identifies the shared store and its counters. Default: "default".
	Name string `json:"name,omitempty"`
	// Rate is the share of calls that get a fault, 0 to 1. Default: 0.
	Rate float64 `json:"rate,omitempty"`
	// Faults lists the kinds to inject, drawn uniformly for each faulted
	// call. Default: all of error, timeout, slow, corrupt.
	Faults []string `json:"faults,omitempty"`
	// Slow is how long a slow call takes. Default: 10ms.
	Slow caddy.Duration `json:"slow,omitempty"`
	// Seed seeds the fault RNG. Default: 1.
	Seed uint64 `json:"seed,omitempty"`

	state *faultState
}

// faultState is what the handles of one Name share.
type faultState struct {
	mem *memory.Cache

	mu  sync.Mutex
	rng *rand.Rand

	rotten sync.Map // key -> struct{}: Gets return corrupt bytes

	calls      atomic.Int64
	injected   [4]atomic.Int64 // by kind, in allFaults order
	undetected atomic.Int64    // damaged bytes that still decoded (a codec hole)
	noDeadline atomic.Int64    // calls whose context had no deadline
	maxBudget  atomic.Int64    // longest deadline-minus-start seen, ns
	maxKeyLen  atomic.Int64

	perRequest sync.Map // X-Fault-Req value -> *atomic.Int64 storage calls

	suspended atomic.Bool // no faults while set (suspendFaults)
}

func (s *faultState) Destruct() error { return s.mem.Destruct() }

var faultPool = caddy.NewUsagePool()

// faultStates lets tests read the counters of a Name.
var faultStates sync.Map // name -> *faultState

func (faultStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cache.storage.faultinject",
		New: func() caddy.Module { return new(faultStore) },
	}
}

func (f *faultStore) Provision(ctx caddy.Context) error {
	if f.Name == "" {
		f.Name = "default"
	}
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("faultinject rate %v: want 0 to 1", f.Rate)
	}
	if len(f.Faults) == 0 {
		f.Faults = allFaults
	}
	for _, k := range f.Faults {
		if faultIndex(k) < 0 {
			return fmt.Errorf("faultinject faults: unknown kind %q", k)
		}
	}
	if f.Slow == 0 {
		f.Slow = caddy.Duration(10 * time.Millisecond)
	}
	if f.Seed == 0 {
		f.Seed = 1
	}
	v, _, err := faultPool.LoadOrNew(f.Name, func() (caddy.Destructor, error) {
		return &faultState{mem: memory.New(64 << 20), rng: rand.New(rand.NewPCG(f.Seed, 0x5eed))}, nil
	})
	if err != nil {
		return err
	}
	f.state = v.(*faultState)
	faultStates.Store(f.Name, f.state)
	return nil
}

func (f *faultStore) Cleanup() error {
	if f.state == nil {
		return nil
	}
	_, err := faultPool.Delete(f.Name)
	return err
}

// UnmarshalCaddyfile: storage faultinject { name, rate, faults..., slow, seed }.
func (f *faultStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	for d.NextBlock(0) {
		opt := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		var err error
		switch opt {
		case "name":
			f.Name = args[0]
		case "rate":
			f.Rate, err = strconv.ParseFloat(args[0], 64)
		case "faults":
			f.Faults = args
		case "slow":
			var dur time.Duration
			dur, err = caddy.ParseDuration(args[0])
			f.Slow = caddy.Duration(dur)
		case "seed":
			f.Seed, err = strconv.ParseUint(args[0], 10, 64)
		default:
			return d.Errf("unrecognized faultinject option %q", opt)
		}
		if err != nil {
			return d.Errf("faultinject %s %q: %v", opt, args[0], err)
		}
	}
	return nil
}

func faultIndex(kind string) int {
	for i, k := range allFaults {
		if k == kind {
			return i
		}
	}
	return -1
}

// begin accounts for a call and draws its fault ("" for none).
func (f *faultStore) begin(ctx context.Context, key string) string {
	s := f.state
	s.calls.Add(1)
	if n := int64(len(key)); n > s.maxKeyLen.Load() {
		for {
			cur := s.maxKeyLen.Load()
			if n <= cur || s.maxKeyLen.CompareAndSwap(cur, n) {
				break
			}
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		b := int64(time.Until(dl))
		for {
			cur := s.maxBudget.Load()
			if b <= cur || s.maxBudget.CompareAndSwap(cur, b) {
				break
			}
		}
	} else {
		s.noDeadline.Add(1)
	}
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if id, _ := repl.GetString("http.request.header.X-Fault-Req"); id != "" {
			c, _ := s.perRequest.LoadOrStore(id, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Rate == 0 || s.suspended.Load() || s.rng.Float64() >= f.Rate {
		return ""
	}
	kind := f.Faults[s.rng.IntN(len(f.Faults))]
	s.injected[faultIndex(kind)].Add(1)
	return kind
}

// delay applies a timeout or slow fault; it returns the call's error, if any.
func (f *faultStore) delay(ctx context.Context, kind string) error {
	switch kind {
	case faultError:
		return errInjected
	case faultTimeout:
		// Block until the caller gives up. A caller that never does is
		// caught by the noDeadline counter; the safety valve only keeps
		// such a bug from hanging the test binary.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return errors.New("faultinject: context never done")
		}
	case faultSlow:
		t := time.NewTimer(time.Duration(f.Slow))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (f *faultStore) Get(ctx context.Context, key string) (*storage.Entry, error) {
	kind := f.begin(ctx, key)
	if err := f.delay(ctx, kind); err != nil {
		return nil, err
	}
	e, err := f.state.mem.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, rotten := f.state.rotten.Load(key); rotten || kind == faultCorrupt {
		return f.damage(e)
	}
	return e, nil
}

// damage returns what a byte-storing backend would return for e after its
// bytes were damaged: the error from storage.Decode, or (if the codec missed
// the damage) the decoded entry, counted as undetected.
func (f *faultStore) damage(e *storage.Entry) (*storage.Entry, error) {
	b := storage.Encode(e, storage.CompressionZstd)
	f.state.mu.Lock()
	switch f.state.rng.IntN(3) {
	case 0: // one flipped byte
		i := f.state.rng.IntN(len(b))
		b[i] ^= byte(1 + f.state.rng.IntN(255))
	case 1: // truncated
		b = b[:f.state.rng.IntN(len(b))]
	default: // a zeroed run in the body end of the bytes
		i := len(b)/2 + f.state.rng.IntN(len(b)-len(b)/2)
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] ^= 0xff
		}
	}
	f.state.mu.Unlock()
	d, err := storage.Decode(b)
	if err != nil {
		return nil, err
	}
	f.state.undetected.Add(1)
	return d, nil
}

func (f *faultStore) Put(ctx context.Context, key string, e *storage.Entry) error {
	kind := f.begin(ctx, key)
	if err := f.delay(ctx, kind); err != nil {
		return err
	}
	if err := f.state.mem.Put(ctx, key, e); err != nil {
		return err
	}
	if kind == faultCorrupt {
		f.state.rotten.Store(key, struct{}{})
	} else {
		f.state.rotten.Delete(key)
	}
	return nil
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	kind := f.begin(ctx, key)
	if kind == faultCorrupt {
		kind = ""
	}
	if err := f.delay(ctx, kind); err != nil {
		return err
	}
	f.state.rotten.Delete(key)
	return f.state.mem.Delete(ctx, key)
}

// List and Stats pass through without faults, for inspection by tests.
func (f *faultStore) List(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	return f.state.mem.List(ctx, prefix, fn)
}

func (f *faultStore) Stats(ctx context.Context) (storage.Stats, error) {
	return f.state.mem.Stats(ctx)
}

// faultCounters is a snapshot of a faultState's counters.
type faultCounters struct {
	calls, undetected, noDeadline int64
	injected                      map[string]int64
	maxBudget                     time.Duration
	maxKeyLen                     int64
	maxPerRequest                 int64
	requests                      int64
}

func (c faultCounters) totalInjected() int64 {
	var n int64
	for _, v := range c.injected {
		n += v
	}
	return n
}

// suspendFaults stops (on) or resumes (off) fault injection for the
// stores named name: a test ends and starts outages with it.
func suspendFaults(t *testing.T, name string, on bool) {
	t.Helper()
	v, ok := faultStates.Load(name)
	if !ok {
		t.Fatalf("no faultinject store named %q", name)
	}
	v.(*faultState).suspended.Store(on)
}

func faultStats(name string) faultCounters {
	v, ok := faultStates.Load(name)
	if !ok {
		return faultCounters{}
	}
	s := v.(*faultState)
	c := faultCounters{
		calls:      s.calls.Load(),
		undetected: s.undetected.Load(),
		noDeadline: s.noDeadline.Load(),
		maxBudget:  time.Duration(s.maxBudget.Load()),
		maxKeyLen:  s.maxKeyLen.Load(),
		injected:   map[string]int64{},
	}
	for i, k := range allFaults {
		c.injected[k] = s.injected[i].Load()
	}
	s.perRequest.Range(func(_, v any) bool {
		c.requests++
		if n := v.(*atomic.Int64).Load(); n > c.maxPerRequest {
			c.maxPerRequest = n
		}
		return true
	})
	return c
}

// Interface guards.
var (
	_ storage.Store         = (*faultStore)(nil)
	_ storage.Lister        = (*faultStore)(nil)
	_ storage.Statser       = (*faultStore)(nil)
	_ caddy.Provisioner     = (*faultStore)(nil)
	_ caddy.CleanerUpper    = (*faultStore)(nil)
	_ caddyfile.Unmarshaler = (*faultStore)(nil)
)
