package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/internal/redistest"
)

// stores are the implementations every store test runs against: the
// in-memory one and Redis on a real redis-server.
func stores(t *testing.T) map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		"memory": func(t *testing.T) Store { return NewMemory(nil) },
		"redis": func(t *testing.T) Store {
			srv := redistest.Start(t)
			r, err := NewRedis(&RedisConfig{Address: srv.Addr, KeyPrefix: "warden", Timeout: 2 * time.Second}, time.Minute.Milliseconds())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		},
	}
}

func reserve(t *testing.T, s Store, app string, l *Limits, amt Amount) (Ticket, *Exceeded) {
	t.Helper()
	tk, err := s.Reserve(context.Background(), app, l, amt)
	var ex *Exceeded
	if errors.As(err, &ex) {
		return tk, ex
	}
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return tk, nil
}

func TestStoreReserveSettle(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			l := Compile(policy.BudgetsConfig{RequestsPerMinute: 100, TokensPerDay: 1000, ConcurrentStreams: 1})
			amt := Amount{RequestsPerSecond: 1, RequestsPerMinute: 1, TokensPerDay: 600, ConcurrentStreams: 1}

			t1, ex := reserve(t, s, "a", l, amt)
			if ex != nil {
				t.Fatalf("first reservation refused: %v", ex)
			}
			// 600 of 1000 tokens and the one stream are taken.
			if _, ex := reserve(t, s, "a", l, Amount{RequestsPerMinute: 1, TokensPerDay: 600}); ex == nil || ex.Kind != TokensPerDay || ex.Used != 600 {
				t.Fatalf("second 600 tokens: %+v, want tokens_per_day refused at 600 used", ex)
			}
			if _, ex := reserve(t, s, "a", l, Amount{RequestsPerMinute: 1, ConcurrentStreams: 1}); ex == nil || ex.Kind != ConcurrentStreams {
				t.Fatalf("second stream: %+v, want concurrent_streams", ex)
			}
			// Another app's budget is its own.
			if _, ex := reserve(t, s, "b", l, amt); ex != nil {
				t.Fatalf("app b: %v", ex)
			}
			// Settled at what the call used: 150 tokens, the stream closed.
			if err := s.Settle(ctx, &t1, Amount{RequestsPerSecond: 1, RequestsPerMinute: 1, TokensPerDay: 150}); err != nil {
				t.Fatal(err)
			}
			u, err := s.Usage(ctx, "a", l)
			if err != nil {
				t.Fatal(err)
			}
			if u[TokensPerDay] != 150 || u[ConcurrentStreams] != 0 || u[RequestsPerMinute] != 1 {
				t.Fatalf("after settling: %v, want 150 tokens, 0 streams, 1 request", u)
			}
			if _, ex := reserve(t, s, "a", l, Amount{RequestsPerMinute: 1, TokensPerDay: 850, ConcurrentStreams: 1}); ex != nil {
				t.Fatalf("the rest of the day's tokens: %v", ex)
			}
			if _, ex := reserve(t, s, "a", l, Amount{RequestsPerMinute: 1, TokensPerDay: 1}); ex == nil || ex.ResetAt.IsZero() || time.Until(ex.ResetAt) > 24*time.Hour {
				t.Fatalf("one token past the budget: %+v, want refused with the next UTC midnight", ex)
			}
			// A request that takes no tokens still passes an exhausted token budget.
			if _, ex := reserve(t, s, "a", l, Amount{RequestsPerMinute: 1}); ex != nil {
				t.Fatalf("a call without tokens: %v", ex)
			}
		})
	}
}

// Concurrent reservations never take more than the limit together: the
// check and the take are one atomic step.
func TestStoreConcurrentReservationsExact(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			l := Compile(policy.BudgetsConfig{RequestsPerMinute: 1_000_000, TokensPerDay: 1000})
			var ok atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 40; i++ {
						_, err := s.Reserve(context.Background(), "a", l, Amount{RequestsPerMinute: 1, TokensPerDay: 7})
						var ex *Exceeded
						switch {
						case err == nil:
							ok.Add(1)
						case !errors.As(err, &ex):
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if got := ok.Load(); got != 1000/7 {
				t.Fatalf("%d reservations of 7 tokens under 1000 passed, want exactly %d", got, 1000/7)
			}
		})
	}
}

// A reservation that is never settled (its replica crashed) is given back
// when it expires.
func TestRedisReservationExpires(t *testing.T) {
	srv := redistest.Start(t)
	r, err := NewRedis(&RedisConfig{Address: srv.Addr, KeyPrefix: "warden", Timeout: 2 * time.Second}, 200) // 200 ms
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	l := Compile(policy.BudgetsConfig{ConcurrentStreams: 1, TokensPerDay: 100})
	if _, ex := reserve(t, r, "a", l, Amount{ConcurrentStreams: 1, TokensPerDay: 100}); ex != nil {
		t.Fatal(ex)
	}
	if _, ex := reserve(t, r, "a", l, Amount{ConcurrentStreams: 1}); ex == nil {
		t.Fatal("a second stream passed while the first is held")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		if _, ex := reserve(t, r, "a", l, Amount{ConcurrentStreams: 1, TokensPerDay: 100}); ex == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the crashed replica's reservation never expired: %v", ex)
		}
	}
}

// A ticket settled after its reservation expired (and was given back)
// adds what the call used, rather than giving it back twice.
func TestRedisSettleAfterExpiry(t *testing.T) {
	srv := redistest.Start(t)
	r, err := NewRedis(&RedisConfig{Address: srv.Addr, KeyPrefix: "warden", Timeout: 2 * time.Second}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	ctx := context.Background()
	l := Compile(policy.BudgetsConfig{TokensPerDay: 1000})
	tk, ex := reserve(t, r, "a", l, Amount{TokensPerDay: 500})
	if ex != nil {
		t.Fatal(ex)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := r.Usage(ctx, "a", l); err != nil { // expires it
		t.Fatal(err)
	}
	if err := r.Settle(ctx, &tk, Amount{TokensPerDay: 120}); err != nil {
		t.Fatal(err)
	}
	u, err := r.Usage(ctx, "a", l)
	if err != nil {
		t.Fatal(err)
	}
	if u[TokensPerDay] != 120 {
		t.Fatalf("used %d tokens after a late settle, want 120", u[TokensPerDay])
	}
}

// The scripts compute windows on the server the way Window does in Go:
// the month index of many days either side of month and leap-year edges.
func TestLuaWindowsMatchGo(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer func() { _ = c.Close() }()
	probe := redis.NewScript(luaWindows + "\nlocal out = {}\nfor i = 1, #ARGV do out[i] = window(tonumber(KEYS[1]), tonumber(ARGV[i])) end\nreturn out")
	var secs []any
	var want [5][]int64
	start := time.Date(1999, 12, 25, 0, 0, 0, 0, time.UTC)
	for d := 0; d < 365*30; d += 7 {
		for _, off := range []time.Duration{0, 23*time.Hour + 59*time.Minute + 59*time.Second} {
			at := start.AddDate(0, 0, d).Add(off)
			secs = append(secs, at.Unix())
			for p := PeriodNone; p <= PeriodMonth; p++ {
				want[p] = append(want[p], Window(p, at))
			}
		}
	}
	for p := PeriodNone; p <= PeriodMonth; p++ {
		got, err := probe.Run(context.Background(), c, []string{fmt.Sprint(int(p))}, secs...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != want[p][i] {
				t.Fatalf("period %d at %v: lua %d, go %d", p, time.Unix(secs[i].(int64), 0).UTC(), got[i], want[p][i])
			}
		}
	}
}

// The store works as an ACL user allowed only the commands and keys it
// needs (the default user off), and a wrong password is an error, not a
// pass.
func TestRedisACLUser(t *testing.T) {
	srv := redistest.StartACL(t)
	dir := t.TempDir()
	pw := dir + "/pw"
	if err := writeFile(pw, srv.Password+"\n"); err != nil {
		t.Fatal(err)
	}
	r, err := NewRedis(&RedisConfig{Address: srv.Addr, Username: srv.Username, PasswordFile: pw, KeyPrefix: "warden", Timeout: 2 * time.Second}, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	ctx := context.Background()
	l := Compile(policy.BudgetsConfig{RequestsPerMinute: 2})
	tk, ex := reserve(t, r, "a", l, Amount{RequestsPerMinute: 1})
	if ex != nil {
		t.Fatal(ex)
	}
	if held, err := r.Extend(ctx, "a", tk.ID); err != nil || !held {
		t.Fatalf("extend as the ACL user: %v %v", held, err)
	}
	if err := r.Settle(ctx, &tk, Amount{RequestsPerMinute: 1}); err != nil {
		t.Fatal(err)
	}
	if held, err := r.Extend(ctx, "a", tk.ID); err != nil || held {
		t.Fatalf("extend a settled reservation: %v %v", held, err)
	}
	jobs := r.Jobs(3600)
	if err := jobs.Remember(ctx, "arn:job/1", "a"); err != nil {
		t.Fatal(err)
	}
	if o, err := jobs.Owners(ctx, []string{"arn:job/1", "arn:job/2"}); err != nil || o[0] != "a" || o[1] != "" {
		t.Fatalf("owners: %v %v", o, err)
	}

	if err := writeFile(pw, "wrong\n"); err != nil {
		t.Fatal(err)
	}
	bad, err := NewRedis(&RedisConfig{Address: srv.Addr, Username: srv.Username, PasswordFile: pw, KeyPrefix: "warden", Timeout: 2 * time.Second}, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bad.Close() }()
	if _, err := bad.Reserve(ctx, "a", l, Amount{RequestsPerMinute: 1}); err == nil {
		t.Fatal("a wrong password reserved")
	} else if ex := (*Exceeded)(nil); errors.As(err, &ex) {
		t.Fatalf("a wrong password answered as a budget: %v", err)
	}
}

// Async job owners are shared: the first owner wins on every replica.
func TestRedisJobsFirstOwnerWins(t *testing.T) {
	srv := redistest.Start(t)
	var replicas []*Redis
	for i := 0; i < 2; i++ {
		r, err := NewRedis(&RedisConfig{Address: srv.Addr, KeyPrefix: "warden", Timeout: 2 * time.Second}, 60_000)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		replicas = append(replicas, r)
	}
	ctx := context.Background()
	if err := replicas[0].Jobs(60).Remember(ctx, "arn:job/1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].Jobs(60).Remember(ctx, "arn:job/1", "b"); err != nil {
		t.Fatal(err)
	}
	var _ policy.JobStore = replicas[1].Jobs(60)
	o, err := replicas[1].Jobs(60).Owners(ctx, []string{"arn:job/1"})
	if err != nil || o[0] != "a" {
		t.Fatalf("replica 2 reads owner %v (%v), want a", o, err)
	}
}

// BenchmarkMemoryReserve is the local check on a call's path: reserve
// every budget an app sets (and settle it, as every call does).
func BenchmarkMemoryReserve(b *testing.B) {
	m := NewMemory(nil)
	l := Compile(policy.BudgetsConfig{RequestsPerSecond: 1 << 40, RequestsPerMinute: 1 << 40, InputTokensPerMinute: 1 << 40,
		OutputTokensPerMinute: 1 << 40, TokensPerDay: 1 << 50, CostPerDayUSD: 1e9, CostPerMonthUSD: 1e9, ConcurrentStreams: 1 << 40})
	amt := Amount{TokensPerDay: 300, CostPerDay: 100, CostPerMonth: 100, RequestsPerSecond: 1, RequestsPerMinute: 1,
		InputTokensPerMinute: 100, OutputTokensPerMinute: 200}
	ctx := context.Background()
	b.Run("reserve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Reserve(ctx, "chat", l, amt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve+settle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			t, err := m.Reserve(ctx, "chat", l, amt)
			if err != nil {
				b.Fatal(err)
			}
			_ = m.Settle(ctx, &t, amt)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t, err := m.Reserve(ctx, "chat", l, amt)
				if err != nil {
					b.Error(err)
					return
				}
				_ = m.Settle(ctx, &t, amt)
			}
		})
	})
}

// BenchmarkRedisReserve is the Redis-backed check's round trip (one
// EVALSHA) against a PING to the same local redis-server: the difference
// is the script's own work.
func BenchmarkRedisReserve(b *testing.B) {
	srv := redistest.Start(b)
	r, err := NewRedis(&RedisConfig{Address: srv.Addr, KeyPrefix: "warden", Timeout: 2 * time.Second}, time.Hour.Milliseconds())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	l := Compile(policy.BudgetsConfig{RequestsPerMinute: 1 << 40, TokensPerDay: 1 << 50, CostPerMonthUSD: 1e9, ConcurrentStreams: 1 << 40})
	amt := Amount{TokensPerDay: 300, CostPerMonth: 100, RequestsPerSecond: 1, RequestsPerMinute: 1, ConcurrentStreams: 1}
	ctx := context.Background()
	b.Run("ping", func(b *testing.B) {
		for b.Loop() {
			if err := r.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.Reserve(ctx, "chat", l, amt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve+settle", func(b *testing.B) {
		for b.Loop() {
			t, err := r.Reserve(ctx, "chat", l, amt)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Settle(ctx, &t, amt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
