package budget

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock"
)

// storeRetry is how long a fail_open replica decides alone after the
// shared store failed before it asks the store again (so an outage costs
// one timeout per replica per interval, not one per call).
const storeRetry = time.Second

// Enforcer reserves and settles the apps' budgets on a store, applying
// budgets.on_store_error when the store fails, and exports usage and
// remaining budget per app on /metrics.
type Enforcer struct {
	store    Store
	redis    *Redis // the shared store, when it is Redis
	fallback *Memory
	failOpen bool
	replicas int64
	timeout  time.Duration
	// downUntil is when to try the shared store again after it failed
	// (Unix ns; 0: it answers).
	downUntil atomic.Int64
	closed    atomic.Bool // holds stop extending
	log       *zap.Logger
	m         *metrics
	apps      func() map[string]*Limits
}

// Options for New.
type Options struct {
	Registry prometheus.Registerer
	Logger   *zap.Logger
	// Apps returns the current apps' limits (for /metrics); nil exports no
	// usage.
	Apps func() map[string]*Limits
	// Now is the clock of the in-memory store (nil: time.Now).
	Now func() time.Time
}

// New opens the store cfg names.
func New(cfg Config, o Options) (*Enforcer, error) {
	cfg = cfg.WithDefaults()
	e := &Enforcer{failOpen: cfg.OnStoreError == FailOpen, replicas: cfg.Replicas, log: o.Logger, apps: o.Apps}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	switch cfg.Store {
	case StoreRedis:
		r, err := NewRedis(cfg.Redis, cfg.ReservationTTL.Milliseconds())
		if err != nil {
			return nil, err
		}
		e.store, e.redis, e.timeout = r, r, cfg.Redis.Timeout
		e.fallback = NewMemory(o.Now)
	default:
		e.store = NewMemory(o.Now)
	}
	m, err := newMetrics(o.Registry, e)
	if err != nil {
		_ = e.store.Close()
		return nil, err
	}
	e.m = m
	return e, nil
}

// Shared says whether the store is shared by replicas (Redis).
func (e *Enforcer) Shared() bool { return e.redis != nil }

// Jobs is the shared async job store (nil with the in-memory store).
func (e *Enforcer) Jobs(ttl time.Duration) *RedisJobs {
	if e.redis == nil {
		return nil
	}
	return e.redis.Jobs(int64(ttl / time.Second))
}

// Redis is the shared store (nil without one): for benchmarks and tests.
func (e *Enforcer) Redis() *Redis { return e.redis }

// Close closes the store (and stops extending running calls'
// reservations).
func (e *Enforcer) Close() error {
	e.closed.Store(true)
	return e.store.Close()
}

// Reserve takes amt of app's budgets l before the call is forwarded. A
// non-nil *Refusal is the answer for the caller (a budget with no room, or
// the shared store down under fail_closed).
func (e *Enforcer) Reserve(ctx context.Context, app string, l *Limits, amt Amount) (Ticket, *Refusal) {
	if e.redis != nil && e.downUntil.Load() > time.Now().UnixNano() {
		return e.reserveAlone(ctx, app, l, amt, nil)
	}
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	t, err := e.store.Reserve(ctx, app, l, amt)
	if err == nil {
		if e.redis != nil && e.downUntil.Load() != 0 && e.downUntil.Swap(0) != 0 {
			e.m.storeUp.Set(1)
			e.log.Info("budget store answers again: budgets are shared again")
		}
		e.m.checks.WithLabelValues(app, "", "ok").Inc()
		if e.redis != nil && t.ID != "" && t.reserves() {
			t.hold = e.startHold(app, t.ID)
		}
		return t, nil
	}
	var ex *Exceeded
	if errors.As(err, &ex) {
		return Ticket{}, e.refused(ex)
	}
	e.m.storeErrors.Inc()
	if e.redis != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller left: not the store's fault.
		return Ticket{}, &Refusal{App: app, Rule: "budgets.store", api: bedrock.ServiceUnavailable("warden: the call ended before its budget was checked")}
	}
	return e.reserveAlone(ctx, app, l, amt, err)
}

// reserveAlone decides on this replica's own (fail_open) or refuses
// (fail_closed) while the shared store fails; err is its failure (nil:
// known to be down).
func (e *Enforcer) reserveAlone(ctx context.Context, app string, l *Limits, amt Amount, err error) (Ticket, *Refusal) {
	if err != nil {
		if e.downUntil.Swap(time.Now().Add(storeRetry).UnixNano()) == 0 {
			e.m.storeUp.Set(0)
			mode := "refusing calls of apps with budgets (fail_closed)"
			if e.failOpen {
				mode = fmt.Sprintf("deciding on this replica's share, 1/%d of each limit (fail_open)", e.replicas)
			}
			e.log.Error("budget store unreachable: "+mode, zap.Error(err))
		}
	}
	if !e.failOpen {
		e.m.checks.WithLabelValues(app, "", "store_error").Inc()
		return Ticket{}, &Refusal{App: app, Rule: "budgets.store", api: bedrock.ServiceUnavailable(
			"warden: the budget store is unreachable and app %s has budgets (budgets.on_store_error: fail_closed); the call was not forwarded", app)}
	}
	e.m.fallback.WithLabelValues(app).Inc()
	t, ferr := e.fallback.Reserve(ctx, app, l.Divided(e.replicas), amt)
	if ferr != nil {
		var ex *Exceeded
		if errors.As(ferr, &ex) {
			ex.Fallback, ex.FallbackReplicas = true, e.replicas
			return Ticket{}, e.refused(ex)
		}
		return Ticket{}, &Refusal{App: app, Rule: "budgets.store", api: bedrock.InternalServer("warden: budget check failed: %v", ferr)}
	}
	e.m.checks.WithLabelValues(app, "", "ok_fallback").Inc()
	t.Fallback = true
	return t, nil
}

func (e *Enforcer) refused(ex *Exceeded) *Refusal {
	result := "exhausted"
	if ex.Kind.Throttle() {
		result = "throttled"
	}
	e.m.checks.WithLabelValues(ex.App, ex.Kind.Key(), result).Inc()
	return refuse(ex)
}

// Settle replaces what t reserved by what the call used. A shared store
// that fails leaves the reservation to expire (budgets.reservation_ttl).
func (e *Enforcer) Settle(ctx context.Context, t *Ticket, used Amount) {
	if t == nil || t.store == nil {
		return
	}
	if t.hold != nil {
		t.hold.stop()
	}
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	if err := t.store.Settle(ctx, t, used); err != nil {
		e.m.storeErrors.Inc()
		e.log.Warn("settling a budget reservation failed; it is given back when it expires", zap.String("app", t.App), zap.Error(err))
	}
}

// hold extends a running call's reservation in the shared store every
// third of budgets.reservation_ttl, so a call that outlives the TTL (a long
// stream) keeps its tokens, price and stream slot reserved: other calls
// cannot take them, and its settlement replaces them exactly. A call that
// ends sooner than a third of the TTL (nearly every call) never extends:
// the hot path stays one round trip. A reservation that expired anyway
// (the store unreachable for longer than the TTL) was given back, and the
// settlement then adds only what the call used (redis_settle.lua): never
// counted twice.
type hold struct {
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (e *Enforcer) startHold(app, id string) *hold {
	every := e.redis.TTL() / 3
	h := &hold{}
	var tick func()
	tick = func() {
		ctx, cancel := context.WithTimeout(context.Background(), max(e.timeout, time.Second))
		held, err := e.redis.Extend(ctx, app, id)
		cancel()
		switch {
		case err != nil:
			e.m.storeErrors.Inc()
			e.log.Warn("extending a running call's budget reservation failed; trying again", zap.String("app", app), zap.Error(err))
		case held:
			e.m.extended.Inc()
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.stopped || e.closed.Load() || (err == nil && !held) {
			if err == nil && !held && !h.stopped {
				e.log.Warn("a running call's budget reservation expired before it could be extended; its settlement adds what it used", zap.String("app", app))
			}
			return
		}
		h.timer = time.AfterFunc(every, tick)
	}
	h.mu.Lock()
	h.timer = time.AfterFunc(every, tick)
	h.mu.Unlock()
	return h
}

func (h *hold) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.timer.Stop()
}

// metrics are the budgets' on /metrics.
type metrics struct {
	checks      *prometheus.CounterVec
	fallback    *prometheus.CounterVec
	storeErrors prometheus.Counter
	storeUp     prometheus.Gauge
	extended    prometheus.Counter
}

var (
	usedDesc = prometheus.NewDesc("warden_budget_used",
		"What an app used of each budget in its current window (costs in USD; concurrent_streams: streams open), across the replicas sharing the store.",
		[]string{"app", "budget"}, nil)
	limitDesc = prometheus.NewDesc("warden_budget_limit", "An app's limit for each budget it sets (costs in USD).",
		[]string{"app", "budget"}, nil)
	remainingDesc = prometheus.NewDesc("warden_budget_remaining", "What an app has left of each budget in its current window (costs in USD).",
		[]string{"app", "budget"}, nil)
	resetDesc = prometheus.NewDesc("warden_budget_reset_timestamp_seconds", "When each of an app's budget windows ends (Unix seconds).",
		[]string{"app", "budget"}, nil)
)

func newMetrics(reg prometheus.Registerer, e *Enforcer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_budget_checks_total",
			Help: "Budget checks by app and result (ok, ok_fallback: decided on this replica's share while the store was down, throttled, exhausted, store_error) and the budget that refused."},
			[]string{"app", "budget", "result"}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_budget_fallback_total",
			Help: "Calls whose budgets this replica decided alone (fail_open, limit ÷ budgets.replicas) while the shared store was unreachable."},
			[]string{"app"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_budget_store_errors_total",
			Help: "Budget store calls that failed (unreachable, timed out)."}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warden_budget_store_up",
			Help: "1 when the budget store answers, 0 while this replica is deciding alone or refusing (budgets.on_store_error)."}),
		extended: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_budget_reservations_extended_total",
			Help: "Reservations of calls still running (long streams) extended by another budgets.reservation_ttl in the shared store."}),
	}
	m.storeUp.Set(1)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.checks, m.fallback, m.storeErrors, m.storeUp, m.extended, usageCollector{e}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("budget: metrics: %w", err)
		}
	}
	return m, nil
}

// usageCollector reads each app's usage from the store at scrape time (one
// round trip per app with Redis), off the calls' path.
type usageCollector struct{ e *Enforcer }

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- usedDesc
	ch <- limitDesc
	ch <- remainingDesc
	ch <- resetDesc
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	if c.e.apps == nil {
		return
	}
	apps := c.e.apps()
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := time.Now()
	for _, app := range names {
		l := apps[app]
		u, err := c.e.Usage(ctx, app, l)
		if err != nil {
			continue
		}
		for k := Kind(0); k < NumKinds; k++ {
			if !l.Tracked(k) {
				continue
			}
			scale := 1.0
			if k == CostPerDay || k == CostPerMonth {
				scale = MicroUSD
			}
			ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(u[k])*scale, app, k.Key())
			ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(l.Max[k])*scale, app, k.Key())
			ch <- prometheus.MustNewConstMetric(remainingDesc, prometheus.GaugeValue, float64(max(0, l.Max[k]-u[k]))*scale, app, k.Key())
			if p := k.Period(); p != PeriodNone {
				ch <- prometheus.MustNewConstMetric(resetDesc, prometheus.GaugeValue, float64(ResetAt(p, Window(p, now)).Unix()), app, k.Key())
			}
		}
	}
}

// Usage is what app used of l's budgets in the current windows: from the
// shared store, or this replica's fallback counts while it is down.
func (e *Enforcer) Usage(ctx context.Context, app string, l *Limits) (Amount, error) {
	if e.redis != nil && e.downUntil.Load() > time.Now().UnixNano() {
		return e.fallback.Usage(ctx, app, l)
	}
	return e.store.Usage(ctx, app, l)
}
