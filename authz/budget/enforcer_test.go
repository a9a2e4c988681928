package budget

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/internal/redistest"
)

func redisEnforcer(t *testing.T, srv *redistest.Server, mode string, replicas int64, apps map[string]*Limits) (*Enforcer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(Config{Store: StoreRedis, OnStoreError: mode, Replicas: replicas,
		Redis: &RedisConfig{Address: srv.Addr, Timeout: 300 * time.Millisecond}},
		Options{Registry: reg, Apps: func() map[string]*Limits { return apps }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, reg
}

// Redis killed: fail_closed refuses with a retryable 503; fail_open decides
// on this replica's share (limit ÷ replicas), flags the ticket and the
// metrics; both go back to the shared store when Redis returns.
func TestEnforcerStoreDown(t *testing.T) {
	l := Compile(policy.BudgetsConfig{RequestsPerMinute: 9})
	amt := Amount{RequestsPerSecond: 1, RequestsPerMinute: 1}
	ctx := context.Background()
	for _, mode := range []string{FailClosed, FailOpen} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t)
			e, reg := redisEnforcer(t, srv, mode, 3, map[string]*Limits{"a": l})
			tk, ref := e.Reserve(ctx, "a", l, amt)
			if ref != nil || tk.Fallback {
				t.Fatalf("with Redis up: %v %+v", ref, tk)
			}
			srv.Kill()
			passed, refused := 0, 0
			for i := 0; i < 6; i++ {
				tk, ref := e.Reserve(ctx, "a", l, amt)
				switch {
				case ref == nil:
					passed++
					if !tk.Fallback {
						t.Fatal("a call decided without Redis is not flagged")
					}
					e.Settle(ctx, &tk, amt)
				case mode == FailClosed:
					if api := ref.APIError(); api.Status != 503 || !strings.Contains(api.Message, "fail_closed") {
						t.Fatalf("fail_closed answer: %d %s", api.Status, api.Message)
					}
					refused++
				default:
					if api := ref.APIError(); api.Status != 429 || !strings.Contains(api.Message, "1/3") {
						t.Fatalf("fail_open refusal: %d %s", api.Status, api.Message)
					}
					refused++
				}
			}
			if mode == FailClosed && passed != 0 {
				t.Fatalf("fail_closed let %d calls through with Redis down", passed)
			}
			if mode == FailOpen && passed != 3 { // 9 per minute ÷ 3 replicas
				t.Fatalf("fail_open passed %d calls, want this replica's share, 3", passed)
			}
			if got := testutil.ToFloat64(e.m.storeUp); got != 0 {
				t.Fatalf("warden_budget_store_up = %v while Redis is down", got)
			}
			if mode == FailOpen {
				if got := testutil.ToFloat64(e.m.fallback.WithLabelValues("a")); got != 6 {
					t.Fatalf("warden_budget_fallback_total = %v, want 6", got)
				}
			}

			srv.Restart(t) // empty: the window starts over
			deadline := time.Now().Add(10 * time.Second)
			for {
				tk, ref := e.Reserve(ctx, "a", l, amt)
				if ref == nil && !tk.Fallback {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("never back on Redis: %v %+v", ref, tk)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if got := testutil.ToFloat64(e.m.storeUp); got != 1 {
				t.Fatalf("warden_budget_store_up = %v after Redis returned", got)
			}
			// Usage and remaining come from Redis again.
			out, err := testutil.GatherAndCount(reg, "warden_budget_remaining", "warden_budget_used", "warden_budget_limit")
			if err != nil || out != 3 {
				t.Fatalf("usage metrics: %d series (%v), want 3", out, err)
			}
		})
	}
}

// /metrics shows each app's usage, limit and remaining budget.
func TestEnforcerUsageMetrics(t *testing.T) {
	l := Compile(policy.BudgetsConfig{TokensPerDay: 1000, CostPerMonthUSD: 2})
	reg := prometheus.NewRegistry()
	e, err := New(Config{}, Options{Registry: reg, Apps: func() map[string]*Limits { return map[string]*Limits{"chat": l} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tk, ref := e.Reserve(ctx, "chat", l, Amount{TokensPerDay: 300, CostPerMonth: 500_000})
	if ref != nil {
		t.Fatal(ref)
	}
	e.Settle(ctx, &tk, Amount{TokensPerDay: 250, CostPerMonth: 250_000})
	want := `
# HELP warden_budget_remaining What an app has left of each budget in its current window (costs in USD).
# TYPE warden_budget_remaining gauge
warden_budget_remaining{app="chat",budget="cost_per_month_usd"} 1.75
warden_budget_remaining{app="chat",budget="tokens_per_day"} 750
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "warden_budget_remaining"); err != nil {
		t.Fatal(err)
	}
}

// A stream that outlives budgets.reservation_ttl (300 ms here) settles
// correctly. Held: the Enforcer extends its reservation every third of the
// TTL while it runs, so its tokens and stream slot stay taken (a second
// stream is refused, usage never drops) and the settlement replaces them
// by what it used. Hold lost (extensions stopped, as when Redis is
// unreachable for longer than the TTL): the reservation expires and is
// given back, and the settlement adds what the stream used once — never
// twice, never a second refund.
func TestEnforcerStreamOutlivesTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	l := Compile(policy.BudgetsConfig{ConcurrentStreams: 1, TokensPerDay: 1000})
	amt := Amount{ConcurrentStreams: 1, TokensPerDay: 500}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		lose bool
	}{{"held", false}, {"hold lost", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			reg := prometheus.NewRegistry()
			e, err := New(Config{Store: StoreRedis, ReservationTTL: ttl, Redis: &RedisConfig{Address: srv.Addr, Timeout: 2 * time.Second}},
				Options{Registry: reg, Apps: func() map[string]*Limits { return map[string]*Limits{"a": l} }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			tk, ref := e.Reserve(ctx, "a", l, amt)
			if ref != nil {
				t.Fatal(ref)
			}
			if tc.lose {
				tk.hold.stop()
			}
			// The stream runs for 5 TTLs; every read runs the scripts'
			// expiry of stale reservations first.
			for end := time.Now().Add(5 * ttl); time.Now().Before(end); time.Sleep(ttl / 5) {
				u, err := e.Redis().Usage(ctx, "a", l)
				if err != nil {
					t.Fatal(err)
				}
				if !tc.lose && (u[ConcurrentStreams] != 1 || u[TokensPerDay] != 500) {
					t.Fatalf("%v into a held stream its reservation was given back: usage %v", time.Since(end.Add(-5*ttl)), u)
				}
			}
			tk2, second := e.Reserve(ctx, "a", l, Amount{ConcurrentStreams: 1})
			defer e.Settle(ctx, &tk2, Amount{})
			switch {
			case !tc.lose && (second == nil || second.Exceeded == nil || second.Exceeded.Kind != ConcurrentStreams):
				t.Fatalf("a second stream while the first is held: %v, want refused on concurrent_streams", second)
			case tc.lose && second != nil:
				t.Fatalf("a second stream after the first's reservation expired: %v", second)
			}
			if tc.lose {
				u, _ := e.Redis().Usage(ctx, "a", l)
				if u[ConcurrentStreams] != 1 || u[TokensPerDay] != 0 {
					t.Fatalf("after the lost reservation expired: usage %v, want only the second stream's slot", u)
				}
			}
			// The first stream ends having used 420 tokens.
			e.Settle(ctx, &tk, Amount{TokensPerDay: 420})
			u, err := e.Redis().Usage(ctx, "a", l)
			if err != nil {
				t.Fatal(err)
			}
			wantStreams := int64(0)
			if tc.lose {
				wantStreams = 1 // the second stream still runs
			}
			if u[TokensPerDay] != 420 || u[ConcurrentStreams] != wantStreams {
				t.Fatalf("after settling: usage %v, want 420 tokens and %d streams", u, wantStreams)
			}
			ext := testutil.ToFloat64(e.m.extended)
			if tc.lose && ext != 0 || !tc.lose && ext < 3 {
				t.Fatalf("%v extensions in 5 TTLs", ext)
			}
			t.Logf("%s: %v extensions", tc.name, ext)
		})
	}
}
