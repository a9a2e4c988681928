package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/stats"
	"github.com/warden-egress/warden/proxy"
)

// The bench's keys: the emulator accepts only benchKey. Direct and bare
// clients sign with it; Warden's client signs with anything and Warden
// re-signs with benchKey.
const (
	benchKey       = "AKIAWARDENBENCH00001"
	benchSecret    = "warden-bench-secret-key"
	benchAppKey    = "AKIAAPPKEYNOTTRUSTED"
	benchAppSecret = "app-secret"
	benchModel     = "anthropic.claude-3-5-haiku-20241022-v1:0"
)

// benchPolicy is the Warden configuration every bench runs: one static
// identity, one app, the same pipeline a sidecar runs. ${LISTEN} holds the
// listeners (the bench opens its own sockets), ${SIGNING} resign or
// passthrough.
const benchPolicy = `version: 1
listen:
${LISTEN}
upstream:
  region: us-east-1
  url: ${EMULATOR_URL}
  insecure: true
  signing: ${SIGNING}
identity:
  sources: [static]
  static: {app: bench, env: prod}
apps:
  - name: bench-prod
    allow_weak_identity: true # static sidecar tags
    match: {tags: {app: bench, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream]
`

// policyFor is benchPolicy with its placeholders filled in.
func policyFor(listen, signing, emulatorURL string) []byte {
	return []byte(strings.NewReplacer("${LISTEN}", listen, "${SIGNING}", signing, "${EMULATOR_URL}", emulatorURL).Replace(benchPolicy))
}

const (
	modeDirect = "direct"
	modeBare   = "bare"
	modeWarden = "warden"
)

var benchModes = [...]string{modeDirect, modeBare, modeWarden}

var benchModeTitle = map[string]string{
	modeDirect: "direct (SDK → emulator)",
	modeBare:   "bare reverse proxy",
	modeWarden: "Warden",
}

// loadOptions are the flags both benches share: how many calls, how
// concurrent, how big.
type loadOptions struct {
	runs, requests, concurrency, requests32, promptBytes, warmup int
	json                                                         bool
}

// register defines the shared flags on fs; requests32 is the default size
// of the throughput phase, which differs per bench.
func (o *loadOptions) register(fs *flag.FlagSet, requests32 int) {
	fs.IntVar(&o.runs, "runs", 7, "number of runs; each metric is the median across runs")
	fs.IntVar(&o.requests, "requests", 2000, "Converse calls per run per mode at concurrency 1")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrency of the throughput phase")
	fs.IntVar(&o.requests32, "requests32", requests32, "Converse calls per run per mode in the throughput phase")
	fs.IntVar(&o.promptBytes, "prompt-bytes", 4096, "size of the prompt text")
	fs.IntVar(&o.warmup, "warmup", 200, "warm-up Converse calls per mode before measuring")
	fs.BoolVar(&o.json, "json", false, "print machine-readable JSON instead of tables")
}

type benchOptions struct {
	loadOptions
	streamRequests, blocks int
	strict                 bool
	cpuProfile             string
	// budgets gives the bench app local budgets (in memory) on every kind,
	// high enough never to refuse: the cost of checking them.
	budgets bool
}

// benchBudgets are the app's budgets under -budgets: every kind, in
// memory, none ever reached by a bench run.
const benchBudgets = `    limits: {max_output_tokens: 4096}
    budgets: {requests_per_second: 1000000, requests_per_minute: 100000000, input_tokens_per_minute: 1000000000000,
      output_tokens_per_minute: 1000000000000, tokens_per_day: 1000000000000, cost_per_day_usd: 1000000000,
      cost_per_month_usd: 1000000000, concurrent_streams: 100000}
audit:
  prices: {"anthropic.claude-3-5-haiku-*": {input_per_mtok: 0.8, output_per_mtok: 4}}
`

// benchSample is one run's measurements for one mode.
type benchSample struct {
	P50us      float64 `json:"converse_p50_us"`
	P99us      float64 `json:"converse_p99_us"`
	Throughput float64 `json:"converse_c32_calls_per_s"`
	TTFEp50us  float64 `json:"stream_ttfe_p50_us"`
}

type benchModeResult struct {
	Median benchSample   `json:"median"`
	Runs   []benchSample `json:"runs"`
}

type benchTarget struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

type benchReport struct {
	GoVersion      string                      `json:"go_version"`
	GOMAXPROCS     int                         `json:"gomaxprocs"`
	NumCPU         int                         `json:"num_cpu"`
	Runs           int                         `json:"runs"`
	Requests       int                         `json:"requests_c1"`
	Concurrency    int                         `json:"concurrency"`
	Requests32     int                         `json:"requests_concurrent"`
	PromptBytes    int                         `json:"prompt_bytes"`
	StreamRequests int                         `json:"stream_requests"`
	Modes          map[string]*benchModeResult `json:"modes"`
	// Added latency over direct, from the medians.
	BareAddedP50us   float64  `json:"bare_added_p50_us"`
	WardenAddedP50us float64  `json:"warden_added_p50_us"`
	AddedRatio       *float64 `json:"warden_over_bare_added_p50,omitempty"`
	ThroughputRatio  float64  `json:"warden_over_bare_throughput"`
	// The same ratios taken within each run (the modes of a run share its
	// conditions), and their medians across runs.
	RunAddedRatios           []*float64    `json:"per_run_warden_over_bare_added_p50"`
	RunThroughputRatios      []float64     `json:"per_run_warden_over_bare_throughput"`
	MedianRunAddedRatio      *float64      `json:"median_per_run_warden_over_bare_added_p50,omitempty"`
	MedianRunThroughputRatio float64       `json:"median_per_run_warden_over_bare_throughput"`
	Blocks                   int           `json:"blocks"`
	BareAddedTTFEus          float64       `json:"bare_added_ttfe_us"`
	WardenAddedTTFEus        float64       `json:"warden_added_ttfe_us"`
	Targets                  []benchTarget `json:"targets"`
}

// cmdBench measures the same SDK calls three ways — straight at a local
// Bedrock emulator, through a bare httputil.ReverseProxy, and through Warden —
// and reports Warden's cost against the bare proxy's.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o benchOptions
	o.register(fs, 10000)
	fs.IntVar(&o.streamRequests, "stream-requests", 500, "ConverseStream calls per run per mode (time to first event)")
	fs.IntVar(&o.blocks, "blocks", 10, "interleave the modes within each phase of a run in this many blocks (1: each mode's phase in one piece)")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when a target is missed")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured runs (whole process) to this file")
	fs.BoolVar(&o.budgets, "budgets", false, "give the app local budgets (apps[].budgets in memory, every kind, never reached)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.runs < 1 || o.requests < 1 || o.concurrency < 1 || o.requests32 < 1 || o.streamRequests < 1 || o.promptBytes < 1 || o.warmup < 0 || o.blocks < 1 {
		return errors.New("--runs, --requests, --concurrency, --requests32, --stream-requests, --prompt-bytes and --blocks must be positive")
	}

	env, err := newBenchEnv(ctx, &o)
	if err != nil {
		return err
	}
	defer env.close()

	if !o.json {
		fmt.Fprintf(stderr, "bench: warming up (%d calls per mode)…\n", o.warmup)
	}
	for _, m := range benchModes {
		if err := env.warm(ctx, m); err != nil {
			return err
		}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	samples := make(map[string][]benchSample, len(benchModes))
	lat := make(map[string][]time.Duration, len(benchModes))
	for _, m := range benchModes {
		lat[m] = make([]time.Duration, max(o.requests, o.streamRequests))
	}
	for run := 0; run < o.runs; run++ {
		// Rotate the mode order per run (and per block within a run) so
		// drift (thermal, GC, page cache, neighbours) does not always favour
		// the same mode; interleaving the modes in blocks within each phase
		// lets every mode see the same conditions.
		order := make([]string, len(benchModes))
		for i := range benchModes {
			order[i] = benchModes[(i+run)%len(benchModes)]
		}
		cur := make(map[string]*benchSample, len(benchModes))
		for _, m := range order {
			cur[m] = &benchSample{}
		}
		env.emu.Reset()
		if err := env.interleave(run, o.requests, func(m string, from, to int) error {
			return env.converseC1(ctx, m, lat[m][from:to])
		}); err != nil {
			return err
		}
		for _, m := range order {
			l := lat[m][:o.requests]
			cur[m].P50us, cur[m].P99us = stats.PercentileUS(l, 0.50), stats.PercentileUS(l, 0.99)
		}
		elapsed := make(map[string]time.Duration, len(benchModes))
		if err := env.interleave(run, o.requests32, func(m string, from, to int) error {
			d, err := env.converseConcurrent(ctx, m, to-from)
			elapsed[m] += d
			return err
		}); err != nil {
			return err
		}
		for _, m := range order {
			cur[m].Throughput = float64(o.requests32) / elapsed[m].Seconds()
		}
		if err := env.interleave(run, o.streamRequests, func(m string, from, to int) error {
			return env.streamTTFE(ctx, m, lat[m][from:to])
		}); err != nil {
			return err
		}
		for _, m := range order {
			cur[m].TTFEp50us = stats.PercentileUS(lat[m][:o.streamRequests], 0.50)
		}
		for _, m := range benchModes {
			samples[m] = append(samples[m], *cur[m])
		}
		if !o.json {
			fmt.Fprintf(stderr, "bench: run %d/%d (order %s): p50 µs direct %.1f bare %.1f warden %.1f; c=%d calls/s direct %.0f bare %.0f warden %.0f\n",
				run+1, o.runs, strings.Join(order, ","),
				cur[modeDirect].P50us, cur[modeBare].P50us, cur[modeWarden].P50us, o.concurrency,
				cur[modeDirect].Throughput, cur[modeBare].Throughput, cur[modeWarden].Throughput)
		}
	}

	rep := buildBenchReport(&o, samples)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBenchReport(stdout, &o, rep)
	}
	if o.strict {
		var missed []string
		for _, t := range rep.Targets {
			if !t.Pass {
				missed = append(missed, t.Name)
			}
		}
		if len(missed) > 0 {
			return fmt.Errorf("missed target(s): %s", strings.Join(missed, "; "))
		}
	}
	return nil
}

// benchEnv is everything the bench runs in-process: the emulator, the bare
// reverse proxy, Warden, and one SDK client per mode.
type benchEnv struct {
	o        *benchOptions
	emu      *bedrocktest.Server
	bare     *http.Server
	warden   *proxy.Server
	auditDir string
	clients  map[string]*bedrockruntime.Client
	converse *bedrockruntime.ConverseInput
	stream   *bedrockruntime.ConverseStreamInput
	closers  []func()
}

func newBenchEnv(ctx context.Context, o *benchOptions) (_ *benchEnv, err error) {
	e := &benchEnv{o: o, clients: make(map[string]*bedrockruntime.Client, len(benchModes))}
	defer func() {
		if err != nil {
			e.close()
		}
	}()

	e.emu = bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{benchKey: benchSecret},
	})
	e.closers = append(e.closers, e.emu.Close)
	target, err := url.Parse(e.emu.URL)
	if err != nil {
		return nil, fmt.Errorf("emulator URL: %w", err)
	}

	// Bare reverse proxy: Warden's own pooled upstream transport, and the
	// client's Host header kept so the client's signature still verifies.
	bareTransport := proxy.NewUpstreamTransport()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
			// pr.Out.Host stays the client's Host (SetURL would clear it).
		},
		Transport: bareTransport,
		// Default flushing: streams at once, others when written whole
		// (see cmdBare).
		BufferPool: benchBufferPool{},
		ErrorLog:   zap.NewStdLog(zap.NewNop()),
	}
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.bare = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = e.bare.Serve(bareLn) }()
	e.closers = append(e.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.bare.Shutdown(sctx)
		bareTransport.CloseIdleConnections()
	})

	// Warden, auditing as it runs in production: every call through the
	// on-disk spool (process durability) into a file sink.
	pol := policyFor("  endpoint: 127.0.0.1:0", "resign", e.emu.URL)
	if o.budgets {
		pol = append(pol, benchBudgets...)
	}
	cfg, err := config.ParseConfig(pol)
	if err != nil {
		return nil, fmt.Errorf("bench policy: %w", err)
	}
	if e.auditDir, err = os.MkdirTemp("", "warden-bench-"); err != nil {
		return nil, err
	}
	dir := e.auditDir
	e.closers = append(e.closers, func() { _ = os.RemoveAll(dir) })
	aw, err := openBenchAudit(ctx, e.auditDir, "warden")
	if err != nil {
		return nil, err
	}
	e.warden, err = proxy.New(ctx, proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(benchKey, benchSecret, ""),
		Audit:       aw,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	wardenLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	go func() { _ = e.warden.ServeEndpoint(wardenLn, nil) }()
	srv := e.warden
	e.closers = append(e.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // also closes the audit writer
	})

	endpoints := map[string]string{
		modeDirect: e.emu.URL,
		modeBare:   "http://" + bareLn.Addr().String(),
		modeWarden: "http://" + wardenLn.Addr().String(),
	}
	for _, m := range benchModes {
		key, secret := benchKey, benchSecret
		if m == modeWarden {
			key, secret = benchAppKey, benchAppSecret
		}
		// The same client configuration for every mode; a pool large
		// enough that the concurrent phase does not churn connections.
		// Connections are tracked so they can be closed before the servers
		// shut down (a server waits 5 s for a dialled but unused one).
		tr := &connTracker{}
		hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 1024
			t.MaxIdleConnsPerHost = 256
			t.DialContext = tr.dial
		})
		e.closers = append(e.closers, tr.closeAll)
		e.clients[m] = bedrockruntime.New(bedrockruntime.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String(endpoints[m]),
			Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
			RetryMaxAttempts: 1,
			HTTPClient:       bedrocktest.BufferedClient(hc), // same for every mode; see its doc
		})
	}

	// Inputs are built once and shared (the SDK only reads them).
	prompt := benchPrompt(o.promptBytes)
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}}
	e.converse = &bedrockruntime.ConverseInput{ModelId: aws.String(benchModel), Messages: msgs}
	e.stream = &bedrockruntime.ConverseStreamInput{ModelId: aws.String(benchModel), Messages: msgs}
	return e, nil
}

func (e *benchEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// benchPrompt is n bytes of plain prose-like ASCII (no PII, nothing a
// guardrail would act on).
func benchPrompt(n int) string {
	const words = "Please summarise the quarterly operations review below in three short bullet points for the team. "
	var b strings.Builder
	b.Grow(n)
	for b.Len() < n {
		rest := n - b.Len()
		if rest >= len(words) {
			b.WriteString(words)
		} else {
			b.WriteString(words[:rest])
		}
	}
	return b.String()
}

// connTracker dials like the SDK's default dialer and remembers every
// connection so they can all be closed at the end.
type connTracker struct {
	mu    sync.Mutex
	conns []net.Conn
}

var benchDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

func (t *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := benchDialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return c, nil
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		_ = c.Close()
	}
	t.conns = nil
}

type benchBufferPool struct{}

var benchBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (benchBufferPool) Get() []byte { return *benchBufs.Get().(*[]byte) }
func (benchBufferPool) Put(b []byte) {
	if cap(b) >= 32<<10 {
		b = b[:32<<10]
		benchBufs.Put(&b)
	}
}

func (e *benchEnv) callConverse(ctx context.Context, m string) error {
	_, err := e.clients[m].Converse(ctx, e.converse)
	if err != nil {
		return fmt.Errorf("%s mode: Converse: %w", m, err)
	}
	return nil
}

// callStream makes one ConverseStream call and returns the time from the
// call's start to the first event received from the stream channel.
func (e *benchEnv) callStream(ctx context.Context, m string) (time.Duration, error) {
	start := time.Now()
	out, err := e.clients[m].ConverseStream(ctx, e.stream)
	if err != nil {
		return 0, fmt.Errorf("%s mode: ConverseStream: %w", m, err)
	}
	stream := out.GetStream()
	var ttfe time.Duration
	events := 0
	for range stream.Events() {
		if events == 0 {
			ttfe = time.Since(start)
		}
		events++
	}
	err = stream.Err()
	_ = stream.Close()
	if err != nil {
		return 0, fmt.Errorf("%s mode: ConverseStream: %w", m, err)
	}
	if events == 0 {
		return 0, fmt.Errorf("%s mode: ConverseStream: the stream ended without an event", m)
	}
	return ttfe, nil
}

func (e *benchEnv) warm(ctx context.Context, m string) error {
	for i := 0; i < e.o.warmup; i++ {
		if err := e.callConverse(ctx, m); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	// Fill the connection pools the concurrent phase will use.
	if e.o.warmup > 0 {
		if _, err := e.runConcurrent(ctx, m, min(e.o.concurrency*2, e.o.requests32)); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for i := 0; i < min(5, e.o.warmup); i++ {
		if _, err := e.callStream(ctx, m); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

// interleave splits n calls per mode into e.o.blocks blocks and runs them
// mode after mode, block after block: f(m, from, to) makes calls from..to
// of mode m. The mode order rotates with the run and the block. Every block
// starts from a fresh GC (untimed), as every mode's phase did before blocks
// existed, so each mode's own garbage is collected in its own blocks.
func (e *benchEnv) interleave(run, n int, f func(m string, from, to int) error) error {
	blocks := min(e.o.blocks, n)
	for k := 0; k < blocks; k++ {
		from, to := n*k/blocks, n*(k+1)/blocks
		for i := range benchModes {
			m := benchModes[(i+run+k)%len(benchModes)]
			runtime.GC()
			if err := f(m, from, to); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *benchEnv) converseC1(ctx context.Context, m string, lat []time.Duration) error {
	for i := range lat {
		start := time.Now()
		if err := e.callConverse(ctx, m); err != nil {
			return err
		}
		lat[i] = time.Since(start)
	}
	return nil
}

func (e *benchEnv) streamTTFE(ctx context.Context, m string, lat []time.Duration) error {
	for i := range lat {
		d, err := e.callStream(ctx, m)
		if err != nil {
			return err
		}
		lat[i] = d
	}
	return nil
}

// converseConcurrent makes n calls at e.o.concurrency and returns the wall
// time they took.
func (e *benchEnv) converseConcurrent(ctx context.Context, m string, n int) (time.Duration, error) {
	return e.runConcurrent(ctx, m, n)
}

func (e *benchEnv) runConcurrent(ctx context.Context, m string, n int) (time.Duration, error) {
	return concurrently(ctx, e.o.concurrency, n, func(ctx context.Context) error { return e.callConverse(ctx, m) })
}

func buildBenchReport(o *benchOptions, samples map[string][]benchSample) *benchReport {
	rep := &benchReport{
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Runs: o.runs, Requests: o.requests, Concurrency: o.concurrency, Requests32: o.requests32,
		PromptBytes: o.promptBytes, StreamRequests: o.streamRequests, Blocks: o.blocks,
		Modes: make(map[string]*benchModeResult, len(benchModes)),
	}
	for _, m := range benchModes {
		runs := samples[m]
		rep.Modes[m] = &benchModeResult{Runs: runs, Median: benchSample{
			P50us:      stats.MedianOf(runs, func(s benchSample) float64 { return s.P50us }),
			P99us:      stats.MedianOf(runs, func(s benchSample) float64 { return s.P99us }),
			Throughput: stats.MedianOf(runs, func(s benchSample) float64 { return s.Throughput }),
			TTFEp50us:  stats.MedianOf(runs, func(s benchSample) float64 { return s.TTFEp50us }),
		}}
	}
	d, b, w := rep.Modes[modeDirect].Median, rep.Modes[modeBare].Median, rep.Modes[modeWarden].Median
	rep.BareAddedP50us = b.P50us - d.P50us
	rep.WardenAddedP50us = w.P50us - d.P50us
	if rep.BareAddedP50us > 0 {
		r := rep.WardenAddedP50us / rep.BareAddedP50us
		rep.AddedRatio = &r
	}
	if b.Throughput > 0 {
		rep.ThroughputRatio = w.Throughput / b.Throughput
	}
	rep.BareAddedTTFEus = b.TTFEp50us - d.TTFEp50us
	rep.WardenAddedTTFEus = w.TTFEp50us - d.TTFEp50us

	// Per-run ratios. A run whose bare proxy added nothing has no added
	// ratio, and counts against Warden in the median (as +Inf) unless Warden
	// added nothing either.
	var added []float64
	for i := range samples[modeDirect] {
		rd, rb, rw := samples[modeDirect][i], samples[modeBare][i], samples[modeWarden][i]
		var r *float64
		if ba := rb.P50us - rd.P50us; ba > 0 {
			v := (rw.P50us - rd.P50us) / ba
			r = &v
			added = append(added, v)
		} else if rw.P50us-rd.P50us > 0 {
			added = append(added, math.Inf(1))
		} else {
			added = append(added, 0)
		}
		rep.RunAddedRatios = append(rep.RunAddedRatios, r)
		tr := 0.0
		if rb.Throughput > 0 {
			tr = rw.Throughput / rb.Throughput
		}
		rep.RunThroughputRatios = append(rep.RunThroughputRatios, tr)
	}
	if m := stats.Median(added); len(added) > 0 && !math.IsInf(m, 0) {
		rep.MedianRunAddedRatio = &m
	}
	rep.MedianRunThroughputRatio = stats.Median(rep.RunThroughputRatios)

	ratio := "n/a (bare proxy added ≤ 0 µs)"
	if rep.AddedRatio != nil {
		ratio = fmt.Sprintf("%.2f×", *rep.AddedRatio)
	}
	runRatio := "n/a"
	if rep.MedianRunAddedRatio != nil {
		runRatio = fmt.Sprintf("%.2f×", *rep.MedianRunAddedRatio)
	}
	// A target passes only if both estimates agree: the ratio of the
	// medians and the median of the per-run ratios.
	rep.Targets = []benchTarget{
		{
			Name: "(a) Warden added p50 at c=1 ≤ bare proxy added p50",
			Pass: rep.WardenAddedP50us <= rep.BareAddedP50us &&
				(rep.MedianRunAddedRatio != nil && *rep.MedianRunAddedRatio <= 1 || rep.MedianRunAddedRatio == nil && rep.WardenAddedP50us <= 0),
			Detail: fmt.Sprintf("Warden +%.1f µs vs bare +%.1f µs (ratio %s; median of per-run ratios %s)",
				rep.WardenAddedP50us, rep.BareAddedP50us, ratio, runRatio),
		},
		{
			Name: fmt.Sprintf("(b) Warden throughput at c=%d ≥ bare proxy throughput", o.concurrency),
			Pass: w.Throughput >= b.Throughput && rep.MedianRunThroughputRatio >= 1,
			Detail: fmt.Sprintf("Warden %.0f calls/s vs bare %.0f calls/s (ratio %.2f×; median of per-run ratios %.2f×)",
				w.Throughput, b.Throughput, rep.ThroughputRatio, rep.MedianRunThroughputRatio),
		},
	}
	return rep
}

func printBenchReport(out io.Writer, o *benchOptions, rep *benchReport) {
	fmt.Fprintf(out, "## Warden bench\n\n")
	fmt.Fprintf(out, "%s, GOMAXPROCS=%d (%d CPUs), client + proxy + emulator in one process; real aws-sdk-go-v2 bedrockruntime client, RetryMaxAttempts 1.\n",
		rep.GoVersion, rep.GOMAXPROCS, rep.NumCPU)
	fmt.Fprintf(out, "Median of %d runs; per run and mode: %d Converse calls at c=1, %d at c=%d, %d ConverseStream calls at c=1; prompt %d bytes. Warden audits through its on-disk spool (process durability) into a file sink.\n",
		o.runs, o.requests, o.requests32, o.concurrency, o.streamRequests, o.promptBytes)
	fmt.Fprintf(out, "Within each phase of a run the modes take turns in %d blocks (order rotating, a GC before each block).\n\n", o.blocks)

	d, b, w := rep.Modes[modeDirect].Median, rep.Modes[modeBare].Median, rep.Modes[modeWarden].Median
	fmt.Fprintf(out, "| metric | %s | %s | %s |\n", benchModeTitle[modeDirect], benchModeTitle[modeBare], benchModeTitle[modeWarden])
	fmt.Fprintf(out, "|---|---:|---:|---:|\n")
	fmt.Fprintf(out, "| Converse p50, c=1 (µs) | %.1f | %.1f | %.1f |\n", d.P50us, b.P50us, w.P50us)
	fmt.Fprintf(out, "| Converse p99, c=1 (µs) | %.1f | %.1f | %.1f |\n", d.P99us, b.P99us, w.P99us)
	fmt.Fprintf(out, "| added p50 vs direct (µs) | — | %+.1f | %+.1f |\n", rep.BareAddedP50us, rep.WardenAddedP50us)
	fmt.Fprintf(out, "| Converse throughput, c=%d (calls/s) | %.0f | %.0f | %.0f |\n", o.concurrency, d.Throughput, b.Throughput, w.Throughput)
	fmt.Fprintf(out, "| ConverseStream time to first event p50 (µs) | %.1f | %.1f | %.1f |\n", d.TTFEp50us, b.TTFEp50us, w.TTFEp50us)
	fmt.Fprintf(out, "| added TTFE vs direct (µs) | — | %+.1f | %+.1f |\n", rep.BareAddedTTFEus, rep.WardenAddedTTFEus)
	fmt.Fprintln(out)

	ratio := "n/a"
	if rep.AddedRatio != nil {
		ratio = fmt.Sprintf("%.2f", *rep.AddedRatio)
	}
	fmt.Fprintf(out, "- Warden added p50 / bare added p50: %s\n", ratio)
	fmt.Fprintf(out, "- Warden / bare throughput at c=%d: %.2f\n", o.concurrency, rep.ThroughputRatio)
	fmt.Fprintf(out, "- TTFE added: bare %+.1f µs, Warden %+.1f µs\n", rep.BareAddedTTFEus, rep.WardenAddedTTFEus)
	runRatio := "n/a"
	if rep.MedianRunAddedRatio != nil {
		runRatio = fmt.Sprintf("%.2f", *rep.MedianRunAddedRatio)
	}
	fmt.Fprintf(out, "- median of per-run ratios: added p50 %s, throughput %.2f\n\n", runRatio, rep.MedianRunThroughputRatio)

	fmt.Fprintf(out, "Per run (p50 µs / calls/s / TTFE p50 µs):\n\n")
	fmt.Fprintf(out, "| run | direct | bare | warden |\n|---:|---|---|---|\n")
	for i := 0; i < o.runs; i++ {
		fmt.Fprintf(out, "| %d", i+1)
		for _, m := range benchModes {
			s := rep.Modes[m].Runs[i]
			fmt.Fprintf(out, " | %.1f / %.0f / %.1f", s.P50us, s.Throughput, s.TTFEp50us)
		}
		fmt.Fprintln(out, " |")
	}
	fmt.Fprintf(out, "\nPer run, Warden / bare (added p50 / throughput):")
	for i := range rep.RunThroughputRatios {
		r := "n/a"
		if rep.RunAddedRatios[i] != nil {
			r = fmt.Sprintf("%.2f", *rep.RunAddedRatios[i])
		}
		fmt.Fprintf(out, " %s / %.2f", r, rep.RunThroughputRatios[i])
		if i < len(rep.RunThroughputRatios)-1 {
			fmt.Fprint(out, ";")
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out)
	for _, t := range rep.Targets {
		verdict := "PASS"
		if !t.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "%s target %s: %s\n", verdict, t.Name, t.Detail)
	}
}

// openBenchAudit is the audit pipeline the benchmarks run Warden with: the
// default durability (an mmap'd spool in dir/NAME-spool) shipping to a file
// sink (dir/NAME.jsonl).
func openBenchAudit(ctx context.Context, dir, name string) (*audit.Pipeline, error) {
	sink, err := audit.NewFileSink(audit.FileSinkOptions{Path: filepath.Join(dir, name+".jsonl")})
	if err != nil {
		return nil, err
	}
	return audit.Open(ctx, audit.Options{Dir: filepath.Join(dir, name+"-spool"), Instance: "bench-" + name, Sinks: []audit.Sink{sink},
		SegmentBytes: 64 << 20, MaxBytes: 1 << 30})
}
