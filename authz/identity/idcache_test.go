package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLookup answers from a settable function and counts calls.
type fakeLookup struct {
	calls atomic.Int64
	mu    sync.Mutex
	fn    func(ctx context.Context, key string) (Identity, error)
}

func (f *fakeLookup) set(fn func(ctx context.Context, key string) (Identity, error)) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *fakeLookup) lookup(ctx context.Context, key string) (Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	return fn(ctx, key)
}

func idFor(v string) Identity {
	return Identity{Source: "test", Tags: map[string]Tag{"k": StrongTag("test", v)}}
}

func okLookup(v string) func(context.Context, string) (Identity, error) {
	return func(context.Context, string) (Identity, error) { return idFor(v), nil }
}

var errOutage = errors.New("503 Unavailable")

func failLookup(context.Context, string) (Identity, error) { return Identity{}, errOutage }

func noneLookup(context.Context, string) (Identity, error) { return Identity{}, ErrNoIdentity }

func TestIdentityCacheFreshAndNegative(t *testing.T) {
	f := &fakeLookup{}
	f.set(okLookup("a"))
	c := NewIdentityCache(f.lookup, CacheOptions{TTL: time.Hour, NegativeTTL: 150 * time.Millisecond})
	ctx := context.Background()
	for range 3 {
		id, err := c.Get(ctx, "10.0.0.1")
		if err != nil || id.Tags["k"].Value != "a" || id.Stale {
			t.Fatalf("get: %v %+v", err, id)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("%d lookups for one key", f.calls.Load())
	}
	f.set(noneLookup)
	for range 3 {
		if _, err := c.Get(ctx, "10.0.0.2"); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("negative: %v", err)
		}
	}
	if f.calls.Load() != 2 {
		t.Fatalf("negative answers are not cached: %d lookups", f.calls.Load())
	}
	time.Sleep(250 * time.Millisecond)
	f.set(okLookup("b"))
	if id, err := c.Get(ctx, "10.0.0.2"); err != nil || id.Tags["k"].Value != "b" {
		t.Fatalf("after the negative TTL: %v %+v", err, id)
	}
	st := c.Stats()
	if st.Hits != 2 || st.NegativeHits != 2 || st.Lookups != 3 || st.Entries != 2 || st.StaleServes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdentityCacheSingleflight(t *testing.T) {
	f := &fakeLookup{}
	release := make(chan struct{})
	var lookupCtx atomic.Value
	f.set(func(ctx context.Context, key string) (Identity, error) {
		lookupCtx.Store(ctx)
		<-release
		return idFor(key), nil
	})
	c := NewIdentityCache(f.lookup, CacheOptions{})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	// The first caller gives up early: the shared lookup must go on for
	// the others.
	impatient, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := c.Get(impatient, "10.0.0.1")
		if !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("impatient caller: %v", err)
		}
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.Get(context.Background(), "10.0.0.1")
			if err != nil || id.Tags["k"].Value != "10.0.0.1" {
				errs <- fmt.Errorf("get: %v %+v", err, id)
			}
		}()
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	if err := lookupCtx.Load().(context.Context).Err(); err != nil {
		t.Fatalf("the shared lookup was cancelled with its first caller: %v", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("%d lookups for %d concurrent callers", got, n+1)
	}
	if st := c.Stats(); st.Shared < n-1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdentityCacheStale(t *testing.T) {
	f := &fakeLookup{}
	f.set(okLookup("a"))
	c := NewIdentityCache(f.lookup, CacheOptions{TTL: 100 * time.Millisecond, NegativeTTL: 200 * time.Millisecond, StaleTTL: 700 * time.Millisecond})
	ctx := context.Background()
	if _, err := c.Get(ctx, "ip"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	f.set(failLookup)
	id, err := c.Get(ctx, "ip")
	if err != nil || !id.Stale || id.Tags["k"].Value != "a" {
		t.Fatalf("outage with a warm entry: %v %+v", err, id)
	}
	// Within the retry interval the failing API is not asked again.
	calls := f.calls.Load()
	for range 5 {
		if id, err := c.Get(ctx, "ip"); err != nil || !id.Stale {
			t.Fatalf("stale serve: %v %+v", err, id)
		}
	}
	if f.calls.Load() != calls {
		t.Fatalf("the failing API was asked %d more times inside the retry interval", f.calls.Load()-calls)
	}
	// After the retry interval it is asked again (still failing: stale).
	time.Sleep(250 * time.Millisecond)
	if id, err := c.Get(ctx, "ip"); err != nil || !id.Stale {
		t.Fatalf("stale after retry: %v %+v", err, id)
	}
	if f.calls.Load() != calls+1 {
		t.Fatalf("lookups %d, want %d", f.calls.Load(), calls+1)
	}
	// Past stale_ttl the identity is gone: the call fails.
	time.Sleep(400 * time.Millisecond)
	if _, err := c.Get(ctx, "ip"); err == nil || !errors.Is(err, errOutage) || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("past stale_ttl: %v", err)
	}
	// Recovery: fresh again, not stale.
	f.set(okLookup("b"))
	if id, err := c.Get(ctx, "ip"); err != nil || id.Stale || id.Tags["k"].Value != "b" {
		t.Fatalf("recovered: %v %+v", err, id)
	}
	st := c.Stats()
	if st.StaleServes != 7 || st.LookupErrors != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdentityCacheColdOutageAndReleasedAddress(t *testing.T) {
	f := &fakeLookup{}
	f.set(failLookup)
	c := NewIdentityCache(f.lookup, CacheOptions{TTL: 50 * time.Millisecond, NegativeTTL: 50 * time.Millisecond, StaleTTL: time.Minute})
	ctx := context.Background()
	if _, err := c.Get(ctx, "ip"); !errors.Is(err, errOutage) || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("cold outage: %v", err)
	}
	// A definitive "nobody has this address" drops the last good identity:
	// a released IP must not be served stale to its next holder.
	f.set(okLookup("a"))
	if _, err := c.Get(ctx, "ip"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	f.set(noneLookup)
	if _, err := c.Get(ctx, "ip"); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("released: %v", err)
	}
	time.Sleep(80 * time.Millisecond)
	f.set(failLookup)
	if id, err := c.Get(ctx, "ip"); err == nil {
		t.Fatalf("a released address was served stale: %+v", id)
	}
}

func TestIdentityCacheLookupTimeout(t *testing.T) {
	f := &fakeLookup{}
	f.set(func(ctx context.Context, _ string) (Identity, error) {
		<-ctx.Done()
		return Identity{}, ctx.Err()
	})
	c := NewIdentityCache(f.lookup, CacheOptions{LookupTimeout: 50 * time.Millisecond})
	start := time.Now()
	if _, err := c.Get(context.Background(), "ip"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("lookup not bounded")
	}
}

func TestCacheOptionsDefaults(t *testing.T) {
	o := CacheOptions{TTL: 10 * time.Minute}.withDefaults()
	if o.StaleTTL != 10*time.Minute || o.NegativeTTL != DefaultNegativeTTL || o.Size != DefaultCacheSize || o.LookupTimeout != DefaultLookupTimeout {
		t.Fatalf("%+v", o)
	}
}

func BenchmarkIdentityCacheWarm(b *testing.B) {
	c := NewIdentityCache(func(context.Context, string) (Identity, error) { return idFor("a"), nil }, CacheOptions{})
	ctx := context.Background()
	if _, err := c.Get(ctx, "10.0.0.1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "10.0.0.1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIdentityCacheRefusal: a refusal (an address two holders claim) is
// definitive like "nobody": the last good identity is dropped, never served
// stale, and the refusal itself is remembered for NegativeTTL.
func TestIdentityCacheRefusal(t *testing.T) {
	f := &fakeLookup{}
	f.set(okLookup("a"))
	c := NewIdentityCache(f.lookup, CacheOptions{TTL: 20 * time.Millisecond, NegativeTTL: time.Hour, StaleTTL: time.Hour})
	ctx := context.Background()
	if _, err := c.Get(ctx, "ip"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond) // past TTL
	refusal := &RefusedError{Reason: RefusedShared, Msg: "held by two"}
	f.set(func(context.Context, string) (Identity, error) { return Identity{}, refusal })
	for range 2 {
		var re *RefusedError
		if id, err := c.Get(ctx, "ip"); !errors.As(err, &re) || re != refusal || id.Stale {
			t.Fatalf("refused address: %v %+v, want the refusal", err, id)
		}
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d lookups: the refusal was not remembered", n)
	}
	if st := c.Stats(); st.StaleServes != 0 || st.Entries != 0 {
		t.Fatalf("stats %+v: the refused address kept its identity", st)
	}
}

// TestIdentityCacheVerify: with VerifyAfter an answer is fresh only while
// verified that recently; a sweep checks only entries in use, confirms or
// drops them, and a failed sweep leaves them unverified, so callers look up
// again and, if that fails, get the identity marked stale.
func TestIdentityCacheVerify(t *testing.T) {
	f := &fakeLookup{}
	f.set(okLookup("a"))
	var (
		mu     sync.Mutex
		holds  = map[string]bool{"used": true, "moved": false}
		asked  [][]string
		vErr   error
		verify = func(_ context.Context, keys []string, ids []Identity) ([]bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, keys)
			if vErr != nil {
				return nil, vErr
			}
			ok := make([]bool, len(keys))
			for i, k := range keys {
				ok[i] = holds[k] && ids[i].Tags["k"].Value == "a"
			}
			return ok, nil
		}
	)
	c := NewVerifiedIdentityCache(f.lookup, verify, CacheOptions{TTL: time.Hour, StaleTTL: 2 * time.Hour, VerifyAfter: 50 * time.Millisecond})
	ctx := context.Background()
	for _, k := range []string{"used", "moved", "idle"} {
		if _, err := c.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Verify(ctx); err != nil { // all three were just used
		t.Fatal(err)
	}
	if st := c.Stats(); st.Verified != 1 || st.Invalidated != 2 || st.Entries != 1 {
		t.Fatalf("first sweep: %+v", st)
	}
	if _, err := c.Get(ctx, "used"); err != nil {
		t.Fatal(err)
	}
	holds["idle"] = true
	if _, err := c.Get(ctx, "idle"); err != nil { // looked up again
		t.Fatal(err)
	}
	mu.Lock()
	asked = nil
	mu.Unlock()
	// Both were served since the last sweep: checked in one call.
	if err := c.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(asked) != 1 || len(asked[0]) != 2 {
		t.Fatalf("second sweep asked %v, want both keys in one call", asked)
	}
	mu.Unlock()
	// Unused since: the next sweep asks nothing.
	if err := c.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(asked) != 1 {
		t.Fatalf("idle entries verified: %v", asked)
	}
	vErr = errOutage
	mu.Unlock()
	// The API fails: the sweep leaves the entry unverified, and past
	// VerifyAfter it is looked up again and served stale.
	if _, err := c.Get(ctx, "used"); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx); !errors.Is(err, errOutage) {
		t.Fatalf("failed sweep: %v", err)
	}
	time.Sleep(80 * time.Millisecond)
	f.set(failLookup)
	id, err := c.Get(ctx, "used")
	if err != nil || !id.Stale {
		t.Fatalf("unverified during an outage: %v stale=%v, want stale", err, id.Stale)
	}
}
