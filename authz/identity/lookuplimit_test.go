package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":               "10.0.0.1",
		"::ffff:10.0.0.1":        "10.0.0.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"2001:db8:1:2::ffff":     "2001:db8:1:2::/64",
		"fe80::1%eth0":           "fe80::/64",
		"2001:db8:1:3::1%ens5":   "2001:db8:1:3::/64",
		"::1":                    "::/64",
		"[invalid]":              "unknown",
		"10.0.0.1%not-a-v6-zone": "unknown",
	} {
		a, _ := netip.ParseAddr(in)
		if got := clientKey(a); got != want {
			t.Errorf("clientKey(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestLookupLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	limitOf := func(err error) string {
		var le *LookupLimitedError
		if !errors.As(err, &le) {
			return fmt.Sprintf("not limited: %v", err)
		}
		return le.Limit
	}
	t.Run("per client", func(t *testing.T) {
		// Rates too small to refill during the test: only bursts count.
		l := newLookupLimiter("ec2", LookupLimits{Rate: 1e-9, Burst: 100, Concurrency: 100, PerClientRate: 1e-9, PerClientBurst: 2})
		for i := range 2 {
			release, err := l.admit(a)
			if err != nil {
				t.Fatalf("lookup %d: %v", i, err)
			}
			release()
		}
		if _, err := l.admit(a); limitOf(err) != "per-client" {
			t.Fatalf("third lookup for one client: %v", err)
		}
		// The same client through its v4-mapped form, another client not.
		if _, err := l.admit(netip.MustParseAddr("::ffff:10.0.0.1")); limitOf(err) != "per-client" {
			t.Fatalf("mapped form: %v", err)
		}
		if _, err := l.admit(b); err != nil {
			t.Fatalf("other client: %v", err)
		}
		// One IPv6 /64 is one client.
		if _, err := l.admit(netip.MustParseAddr("2001:db8::1")); err != nil {
			t.Fatal(err)
		}
		if _, err := l.admit(netip.MustParseAddr("2001:db8::2")); err != nil {
			t.Fatal(err)
		}
		if _, err := l.admit(netip.MustParseAddr("2001:db8::3")); limitOf(err) != "per-client" {
			t.Fatalf("third lookup from one /64: %v", err)
		}
		// No address: no bucket of its own to exhaust, the global limits only.
		for range 3 {
			if _, err := l.admit(netip.Addr{}); err != nil {
				t.Fatalf("no address: %v", err)
			}
		}
		if l.Limited() != 3 {
			t.Fatalf("limited %d, want 3", l.Limited())
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		l := newLookupLimiter("ec2", LookupLimits{Rate: 1e-9, Burst: 100, Concurrency: 2, PerClientRate: 1e-9, PerClientBurst: 100})
		r1, err1 := l.admit(a)
		r2, err2 := l.admit(b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if _, err := l.admit(a); limitOf(err) != "concurrency" {
			t.Fatalf("third in flight: %v", err)
		}
		r1()
		r3, err := l.admit(a)
		if err != nil {
			t.Fatalf("after a release: %v", err)
		}
		r2()
		r3()
	})
	t.Run("rate", func(t *testing.T) {
		l := newLookupLimiter("token", LookupLimits{Rate: 1e-9, Burst: 2, Concurrency: 100, PerClientRate: 1e-9, PerClientBurst: 100})
		for _, c := range []netip.Addr{a, b} {
			release, err := l.admit(c)
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		_, err := l.admit(netip.MustParseAddr("10.0.0.3"))
		if limitOf(err) != "rate" || !strings.Contains(err.Error(), "token identity lookups are limited (rate limit, client 10.0.0.3)") {
			t.Fatalf("over the rate: %v", err)
		}
		// A refusal by rate gives its concurrency slot back.
		if len(l.inFlight) != 0 {
			t.Fatalf("%d slots held", len(l.inFlight))
		}
	})
}

func TestLookupLimitsConfig(t *testing.T) {
	cfg, err := parseIdentity([]byte(strings.Replace(ec2Base, "ec2: {}", "ec2: {lookup_limits: {rate: 2, per_client_burst: 3}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Identity.EC2.LookupLimits.withDefaults(DefaultEC2LookupLimits())
	want := DefaultEC2LookupLimits()
	want.Rate, want.PerClientBurst = 2, 3
	if got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	for _, bad := range []string{"{rate: -1}", "{concurrency: -2}", "{per_client_burst: -1}", "{rat: 1}"} {
		_, err := parseIdentity([]byte(strings.Replace(ec2Base, "ec2: {}", "ec2: {lookup_limits: "+bad+"}", 1)))
		if err == nil || !strings.Contains(err.Error(), "lookup_limits") && !strings.Contains(err.Error(), "rat") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if err := (TokenConfig{Audience: "a", LookupLimits: LookupLimits{Burst: -1}}).validate(); err == nil || !strings.Contains(err.Error(), "token.lookup_limits.burst") {
		t.Errorf("token: %v", err)
	}
}

// A flood of callers from unknown addresses must not spend the account's
// EC2 API budget or hold up callers Warden already knows: lookups beyond
// the limits are refused at once (not cached, not queued), and a known
// caller is answered from the cache while the flood's lookups are still
// held in flight by the EC2 emulator.
func TestEC2LookupFloodDoesNotDelayKnownCallers(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, ", cache_ttl: 1h, verify_after: 1h, lookup_limits: {rate: 0.000001, burst: 6, concurrency: 3, per_client_rate: 0.000001, per_client_burst: 1}")
	ctx := context.Background()
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10")); err != nil {
		t.Fatal(err)
	}
	release := s.Hold()
	defer release()

	const flood = 40
	type result struct {
		addr string
		err  error
	}
	results := make(chan result, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("10.0.%d.%d", 100+i/200, 1+i%200)
			_, err := src.Resolve(ctx, ec2ConnFrom(addr))
			results <- result{addr, err}
		}()
	}
	// Every flood caller but the three admitted ones is refused at once.
	var limited int
	var refused string // which three are admitted is the scheduler's choice
	for range flood - 3 {
		r := <-results
		refused = r.addr
		var le *LookupLimitedError
		if !errors.As(r.err, &le) || le.Source != SourceEC2 || errors.Is(r.err, ErrNoIdentity) {
			t.Fatalf("flood caller: %v, want a lookup limit", r.err)
		}
		limited++
	}
	// Three lookups are held in the emulator (1 for the known caller).
	for i := 0; len(s.Calls()) < 4; i++ {
		if i == 1000 {
			t.Fatalf("%d calls reached EC2, want 4", len(s.Calls()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The known caller, with the flood's lookups still in flight.
	id, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10"))
	if err != nil || id.Tags[TagAWSENI].Value != "eni-0aaa" || id.Stale {
		t.Fatalf("known caller during the flood: %+v %v", id, err)
	}
	select {
	case r := <-results:
		t.Fatalf("a held lookup finished before release: %v", r.err)
	default:
	}
	release()
	wg.Wait()
	close(results)
	for r := range results {
		if !errors.Is(r.err, ErrNoIdentity) {
			t.Fatalf("admitted flood lookup: %v, want no identity", r.err)
		}
	}
	if n := len(s.Calls()); n != 4 {
		t.Fatalf("%d DescribeNetworkInterfaces calls, want 4 (1 known + 3 admitted of %d)", n, flood)
	}
	st := src.CacheStats()
	if src.LookupsLimited() != uint64(limited) || st.Lookups != 4 || st.LookupErrors != 0 {
		t.Fatalf("limited %d (want %d), stats %+v", src.LookupsLimited(), limited, st)
	}
	// Refusals are not cached as answers: a refused address that asks again
	// is refused again (by its own bucket), not told "nobody".
	_, err = src.Resolve(ctx, ec2ConnFrom(refused))
	if le := (*LookupLimitedError)(nil); !errors.As(err, &le) {
		t.Fatalf("refused address again: %v", err)
	}
}

// An ec2 identity past its TTL whose refresh is over the limit is served
// stale (marked), not refused.
func TestEC2LookupLimitServesStale(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, ", cache_ttl: 1s, verify_after: 1s, stale_ttl: 1h, lookup_limits: {rate: 0.000001, burst: 1, concurrency: 1, per_client_rate: 0.000001, per_client_burst: 1}")
	now := time.Now()
	src.cache.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	id, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10"))
	if err != nil || !id.Stale || id.Tags[TagAWSENI].Value != "eni-0aaa" {
		t.Fatalf("refresh over the limit: %+v %v", id, err)
	}
	if len(s.Calls()) != 1 || src.LookupsLimited() != 1 {
		t.Fatalf("%d calls, %d limited", len(s.Calls()), src.LookupsLimited())
	}
}

// Random tokens cost a TokenReview each: bounded per client and in all,
// while a token already verified is answered from the cache, even from the
// flooding client's own address.
func TestTokenLookupFloodDoesNotDelayKnownCallers(t *testing.T) {
	client, reviews := fakeReviewer(func(tok string) authenticationv1.TokenReviewStatus {
		if tok == "good-token" {
			return saStatus("chatbot", "chatbot", "chatbot-1")
		}
		return authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	})
	s, err := NewTokenSource(TokenConfig{Audience: tokenAudience, LookupLimits: LookupLimits{
		Rate: 0.000001, Burst: 8, Concurrency: 100, PerClientRate: 0.000001, PerClientBurst: 3,
	}}, client, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	from := func(tok, ip string) *Conn {
		c := tokenConn(DefaultTokenHeader, tok)
		c.Remote = netip.AddrPortFrom(netip.MustParseAddr(ip), 40000)
		return c
	}
	ctx := context.Background()
	if _, err := s.Resolve(ctx, from("good-token", "10.1.0.1")); err != nil {
		t.Fatal(err)
	}
	// One client with 50 random tokens: 3 reviews, then refusals; the known
	// token from that same client still resolves, with no review.
	var limited int
	for i := range 50 {
		_, err := s.Resolve(ctx, from(fmt.Sprintf("random-%d", i), "10.2.0.1"))
		if le := (*LookupLimitedError)(nil); errors.As(err, &le) {
			limited++
		} else if !errors.Is(err, errTokenRejected) {
			t.Fatalf("random token %d: %v", i, err)
		}
	}
	if id, err := s.Resolve(ctx, from("good-token", "10.2.0.1")); err != nil || id.Tags[TagK8sPod].Value != "chatbot-1" {
		t.Fatalf("known token during the flood: %v", err)
	}
	if reviews.Load() != 1+3 || limited != 47 {
		t.Fatalf("%d reviews, %d limited; want 4 and 47", reviews.Load(), limited)
	}
	// Many clients: the global burst (8) caps them together.
	for i := range 50 {
		_, _ = s.Resolve(ctx, from(fmt.Sprintf("spread-%d", i), fmt.Sprintf("10.3.0.%d", i+1)))
	}
	if reviews.Load() != 8 || s.LookupsLimited() != 47+46 {
		t.Fatalf("%d reviews (want 8), %d limited (want %d)", reviews.Load(), s.LookupsLimited(), 47+46)
	}
	if _, err := s.Resolve(ctx, from("good-token", "10.3.0.9")); err != nil {
		t.Fatalf("known token after the flood: %v", err)
	}
	if reviews.Load() != 8 {
		t.Fatal("known token reviewed again")
	}
}
