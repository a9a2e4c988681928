package proxy

import (
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
)

type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors prometheus.Counter
	// connections counts forward-proxy CONNECTs and transparent connections
	// by listener mode and what Warden did (intercept, tunnel, refuse).
	connections *prometheus.CounterVec
	// What the calls consumed and what the guards found, from the record.
	tokens   *prometheus.CounterVec
	cost     *prometheus.CounterVec
	findings *prometheus.CounterVec
	// detached counts the event streams relayed off their handlers now
	// (detach.go).
	detached prometheus.Gauge
	reloadMetrics

	// Label lookups hash and compare every label on each call; the label
	// sets are few (apps × operations × outcomes), so cache the children.
	counters  sync.Map // requestKey -> prometheus.Counter
	observers sync.Map // durationKey -> prometheus.Observer
}

type requestKey struct {
	app, op, decision string
	code              int
}

type durationKey struct{ op, decision string }

// Token kinds of warden_tokens_total.
var tokenKinds = [...]string{"input", "output", "cache_read", "cache_write"}

func newMetrics(reg *prometheus.Registry, version string) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_requests_total",
			Help: "Calls handled, by app, operation, decision and HTTP status.",
		}, []string{"app", "operation", "decision", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warden_request_duration_seconds",
			Help:    "Time from request to the end of the response, by operation and decision.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"operation", "decision"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_upstream_errors_total",
			Help: "Upstream requests that failed before a response arrived.",
		}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_intercept_connections_total",
			Help: "Forward-proxy CONNECTs and transparent connections, by mode and action (intercept, tunnel, refuse).",
		}, []string{"mode", "action"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_tokens_total",
			Help: "Tokens the upstream reported for calls, by app, model (canonical id) and kind (input, output, cache_read, cache_write).",
		}, []string{"app", "model", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_cost_usd_total",
			Help: "Estimated cost in USD of calls whose model has a price in audit.prices, by app and model (canonical id).",
		}, []string{"app", "model"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_guard_findings_total",
			Help: "What the apps' guards found, by app, guard, finding type, action (block, mask, record) and phase (input, output); counts only, never values.",
		}, []string{"app", "guard", "type", "action", "phase"}),
		detached: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_streams_detached",
			Help: "Event streams to HTTP/1.1 clients open now on connections Warden took over from net/http (each closed when its stream ends).",
		}),
	}
	if version == "" {
		version = "(devel)"
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "warden_build_info",
		Help:        "1, labelled with the Warden version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.upstreamErrors, m.connections, m.tokens, m.cost, m.findings, m.detached, buildInfo} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Process and Go runtime metrics; ignore "already registered" when a
	// caller shares a registry between servers.
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, nil
}

func (m *metrics) observe(r *audit.Record) {
	op := r.Operation
	if op == "" {
		op = "unknown"
	}
	rk := requestKey{r.App, op, r.Decision, r.Status}
	c, ok := m.counters.Load(rk)
	if !ok {
		c, _ = m.counters.LoadOrStore(rk, m.requests.WithLabelValues(r.App, op, r.Decision, strconv.Itoa(r.Status)))
	}
	c.(prometheus.Counter).Inc()
	dk := durationKey{op, r.Decision}
	o, ok := m.observers.Load(dk)
	if !ok {
		o, _ = m.observers.LoadOrStore(dk, m.duration.WithLabelValues(op, r.Decision))
	}
	o.(prometheus.Observer).Observe(r.Latency.Seconds())
	model := r.ModelCanonical
	if model == "" {
		model = r.Model
	}
	if u := r.Usage; u.Known {
		for i, n := range [...]int64{u.Input, u.Output, u.CacheRead, u.CacheWrite} {
			if n > 0 {
				m.tokens.WithLabelValues(r.App, model, tokenKinds[i]).Add(float64(n))
			}
		}
	}
	if r.CostKnown && r.CostUSD > 0 {
		m.cost.WithLabelValues(r.App, model).Add(r.CostUSD)
	}
	for _, f := range r.Findings {
		phase := f.Phase
		if phase == "" {
			phase = "input"
		}
		m.findings.WithLabelValues(r.App, f.Guard, f.Type, f.Action, phase).Add(float64(f.Count))
	}
}

// AdminHandler serves health and metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		ok, detail := s.ready()
		if !ok {
			http.Error(w, detail, http.StatusServiceUnavailable)
			return
		}
		if detail != "" {
			_, _ = w.Write([]byte("ready: " + detail + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.profiling {
		// Named so no other handler of net/http/pprof (cmdline: the
		// process's arguments) is served.
		mux.HandleFunc("GET /debug/pprof/{$}", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		for _, name := range []string{"heap", "allocs", "goroutine", "block", "mutex", "threadcreate"} {
			mux.Handle("GET /debug/pprof/"+name, pprof.Handler(name))
		}
	}
	return mux
}

func zapErr(err error) zap.Field { return zap.Error(err) }
func zapReq(id string) zap.Field { return zap.String("request_id", id) }
