package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// Options configure a soak.
type Options struct {
	Duration, Warmup, Settle time.Duration
	Concurrency              int
	Rate                     float64 // calls per second in all; 0 = unpaced
	ReloadEvery              time.Duration
	OutageEvery, OutageFor   time.Duration
	ReportEvery              time.Duration
	EventDelay               time.Duration
	Log                      bool
	LogTo                    io.Writer // Warden's warnings and errors; nil discards them (they are counted either way)
	afterCall                func()    // tests: runs after each call of the measured load
}

// The emulator accepts only Warden's key; clients sign with anything.
const (
	wardenKey    = "AKIAWARDENSOAK000001"
	wardenSecret = "warden-soak-secret-key"
)

// The policies the soak reloads between. Both allow every call it makes:
// the second puts a decoy app first, adds guards on input and output that
// never match the soak's text, and a token clamp. A call that fails with a
// denial is therefore the reload's fault.
const policyHead = `version: 1
listen:
  endpoint: 127.0.0.1:0    # the soak opens its own listener
upstream:
  region: us-east-1
  url: ${EMULATOR_URL}
  insecure: true
  signing: resign
identity:
  sources: [static]
  static: {app: soak, env: prod}
`

const policyA = policyHead + `apps:
  - name: soak
    allow_weak_identity: true    # static sidecar tags
    match: {tags: {app: soak, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream]
`

const policyB = policyHead + `apps:
  - name: decoy
    allow_weak_identity: true
    match: {tags: {app: somebody-else}}
    allow:
      models: ["amazon.nova-*"]
      operations: [Converse]
  - name: soak
    allow_weak_identity: true
    match: {tags: {app: soak, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-*"]
      operations: [Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream]
    guards: [no-competitors, ssn-mask]
    limits: {max_output_tokens: 4096, on_exceed: clamp}
guards:
  no-competitors: {words: {list: [acme corp], action: block}, applies_to: [input, output]}
  ssn-mask: {pii: {types: [US_SOCIAL_SECURITY_NUMBER], action: mask}}
`

// policyBad fails validation (an app names a guard nobody defined): the
// reload must be rejected and the running policy must stay.
const policyBad = policyA + `    guards: [no-such-guard]
`

// reloadPlan is the order the reloader writes the files in (the start
// policy is A).
var reloadPlan = []string{"B", "A", "invalid"}

// Report is what a soak saw.
type Report struct {
	Options  Options
	Started  time.Time
	Baseline usage
	Limits   limits
	Final    usage
	Settled  bool          // Final is within Limits
	SettleIn time.Duration // how long after the drain it took
	Peak     usage         // the largest of each measure under load
	Samples  []Sample
	Calls    callStats
	Reloads  reloadStats
	Sink     sinkStats
	// Delivered says the sink got a record for every call (checked
	// before the resources settle); DeliverErr says why not.
	DeliverErr   string
	Hashes       map[string]string // policy name → hash
	Hangups      int64             // hang-ups by design, warm-up included (each should be audited as one)
	WardenErrors int64             // error-level log lines from Warden
	WardenWarns  int64
}

// Sample is one row of the table.
type Sample struct {
	At      time.Duration
	Use     usage
	Calls   callStats
	Reloads int
	Sink    sinkStats
}

type reloadStats struct {
	Applied, Rejected int
	Problems          []string
}

// Problems is the verdict: empty when the soak passed.
func (r *Report) Problems() []string {
	var p []string
	for _, c := range []string{causeReload, causeSink, causeOther} {
		if n := r.Calls.failedTotal(c); n > 0 {
			p = append(p, fmt.Sprintf("%d calls failed (%s): %s", n, c, strings.Join(r.Calls.Examples[c], "; ")))
		}
	}
	for _, k := range Kinds() {
		if r.Calls.OK[k] == 0 && (k != kindStreamHangup && k != kindInvokeHangup) {
			p = append(p, fmt.Sprintf("no %s call succeeded", k))
		}
	}
	if r.Calls.failedTotal(causeDisconnect) == 0 {
		p = append(p, "no client hung up mid-stream")
	}
	p = append(p, r.Reloads.Problems...)
	if r.Options.ReloadEvery > 0 && r.Options.Duration >= 3*r.Options.ReloadEvery && (r.Reloads.Applied < 2 || r.Reloads.Rejected < 1) {
		p = append(p, fmt.Sprintf("too few reloads: %d applied, %d rejected", r.Reloads.Applied, r.Reloads.Rejected))
	}
	if r.Sink.Broken > 0 {
		p = append(p, fmt.Sprintf("the audit chain the sink received is broken (%d problems): %s", r.Sink.Broken, strings.Join(r.Sink.Problems, "; ")))
	}
	if r.DeliverErr != "" {
		p = append(p, "audit delivery: "+r.DeliverErr)
	}
	if r.Sink.Resumed < r.Sink.Outages {
		p = append(p, fmt.Sprintf("the sink got nothing after %d of %d outages", r.Sink.Outages-r.Sink.Resumed, r.Sink.Outages))
	}
	if r.Options.OutageEvery > 0 && r.Options.Duration > r.Options.OutageEvery+r.Options.OutageFor && r.Sink.Outages == 0 {
		p = append(p, "no sink outage happened")
	}
	if r.Options.ReloadEvery > 0 && r.Options.Duration >= 3*r.Options.ReloadEvery {
		for _, name := range []string{"A", "B"} {
			if r.Sink.Policies[r.Hashes[name]] == 0 {
				p = append(p, fmt.Sprintf("no audit record names policy %s (%s)", name, r.Hashes[name]))
			}
		}
	}
	// A hang-up normally lands mid-stream (the emulator paces its events),
	// so its record must say the client left, not that the answer was
	// delivered. A client slowed by a loaded machine may cancel only after
	// Warden has written the whole stream, which is rightly a 200: the bound
	// is half, which the pre-fix code (0 of 1064) fails by far.
	if rec := r.Sink.ErrorTypes[hangupRecord]; rec < r.Hangups/2 {
		p = append(p, fmt.Sprintf("only %d of %d hang-ups are audited as %q", rec, r.Hangups, hangupRecord))
	}
	if !r.Settled {
		p = append(p, fmt.Sprintf("resources did not return to baseline within %s: goroutines %d (limit %d), fds %d (limit %d), heap %.1f MB (limit %.1f MB)",
			r.Options.Settle, r.Final.Goroutines, r.Limits.Goroutines, r.Final.FDs, r.Limits.FDs, mb(r.Final.Heap), mb(r.Limits.HeapBytes)))
	}
	return p
}

// env is everything the soak runs in one process.
type env struct {
	o        Options
	dir      string
	emu      *bedrocktest.Server
	upstream *http.Server // the emulator's handler; closeIdle empties its idle pool
	emuURL   string
	sink     *receiver
	warden   *proxy.Server
	endpoint string
	cfgPath  string
	trigger  chan struct{}
	results  chan proxy.ReloadResult
	hashes   map[string]string
	files    map[string][]byte
	current  string // the policy in force
	tr       []*http.Transport
	clients  []*bedrockruntime.Client
	errs     atomic.Int64
	warns    atomic.Int64
	stopBg   context.CancelFunc
	bg       sync.WaitGroup
	closers  []func()
}

func newEnv(ctx context.Context, o Options) (_ *env, err error) {
	e := &env{o: o, trigger: make(chan struct{}, 1), results: make(chan proxy.ReloadResult, 16),
		hashes: map[string]string{}, files: map[string][]byte{}, current: "A"}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "warden-soak-"); err != nil {
		return nil, err
	}
	dir := e.dir
	e.closers = append(e.closers, func() { _ = os.RemoveAll(dir) })

	// The emulator, served by our own server so that idle upstream
	// connections can be closed before each measurement (closeIdle) instead
	// of lingering into it. Its idle timeout is longer than Warden's
	// upstream pool's (90 s), as Bedrock's is: a server that closes an idle
	// connection first races the next request Warden writes on it, which
	// then fails (net/http retries a POST only when nothing was written).
	// Streams pause between events so hang-ups land mid-stream.
	e.emu = bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Reply: func(op, model, prompt string) string {
			return "Here is a summary of the meeting notes: the roadmap was reviewed, priorities were agreed and a follow-up was scheduled for next week."
		},
		Deltas: func(op, text string) []string { return splitWords(text, 16) },
	})
	e.closers = append(e.closers, e.emu.Close)
	e.injectDelays()
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	e.upstream = &http.Server{Handler: e.emu.Handler(), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: emulatorIdleTimeout}
	go func() { _ = e.upstream.Serve(uln) }()
	e.closers = append(e.closers, func() { _ = e.upstream.Close() })
	e.emuURL = "http://" + uln.Addr().String()

	e.sink, err = newReceiver()
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.sink.close)

	for name, text := range map[string]string{"A": policyA, "B": policyB, "invalid": policyBad} {
		data := []byte(strings.ReplaceAll(text, "${EMULATOR_URL}", e.emuURL))
		e.files[name] = data
		if name == "invalid" {
			continue
		}
		cfg, err := config.ParseConfig(data)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
		e.hashes[name] = config.PolicyHash(cfg)
	}
	e.cfgPath = filepath.Join(e.dir, "warden.yaml")
	if err := os.WriteFile(e.cfgPath, e.files["A"], 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.ParseConfig(e.files["A"])
	if err != nil {
		return nil, err
	}

	// Warden's logs are counted by level; shown only with --log.
	out := o.LogTo
	if out == nil {
		out = io.Discard
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(out), zap.WarnLevel)
	log := zap.New(zapcore.RegisterHooks(core, func(en zapcore.Entry) error {
		switch {
		case en.Level >= zap.ErrorLevel:
			e.errs.Add(1)
		case en.Level == zap.WarnLevel:
			e.warns.Add(1)
		}
		return nil
	}))

	// The audit pipeline as production runs it: an on-disk spool
	// (process durability) shipping to an HTTP sink, retrying quickly.
	sink, err := audit.NewHTTPSink(audit.HTTPSinkOptions{URL: e.sink.URL(), Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	pipe, err := audit.Open(ctx, audit.Options{
		Dir: filepath.Join(e.dir, "spool"), Instance: "soak", Sinks: []audit.Sink{sink}, Logger: log.Named("audit"),
		SegmentBytes: 8 << 20, MaxBytes: 1 << 30, BatchWait: 200 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		_ = sink.Close()
		return nil, err
	}
	e.warden, err = proxy.New(ctx, proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       pipe,
		Logger:      log,
	})
	if err != nil {
		_ = pipe.Close()
		return nil, err
	}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = pipe.Close()
		return nil, err
	}
	go func() { _ = e.warden.ServeEndpoint(wln, nil) }()
	srv := e.warden
	e.closers = append(e.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // closes the audit pipeline too
	})
	e.endpoint = "http://" + wln.Addr().String()

	// Reloads as `warden serve` does them on SIGHUP.
	bctx, stop := context.WithCancel(context.Background())
	e.stopBg = stop
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.warden.WatchConfig(bctx, e.cfgPath, proxy.WatchOptions{
			Interval: 365 * 24 * time.Hour, FullEvery: 365 * 24 * time.Hour, // signals only
			Trigger: e.trigger, Loaded: e.files["A"],
			OnReload: func(r proxy.ReloadResult) { e.results <- r },
		})
	}()
	e.closers = append(e.closers, func() { stop(); e.bg.Wait() })

	// Clients: the real Go SDK, half over HTTP/1.1 and half over h2c (one
	// multiplexed connection), no SDK retries so every failure is seen.
	// One client per worker: an SDK client's event-stream codec is shared
	// by its streams and races when two run at once (aws/smithy-go#714).
	for _, h2c := range []bool{false, true} {
		t := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
		if h2c {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			t.Protocols = &p
		}
		e.tr = append(e.tr, t)
		e.closers = append(e.closers, t.CloseIdleConnections)
	}
	for i := range o.Concurrency {
		e.clients = append(e.clients, bedrockruntime.New(bedrockruntime.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String(e.endpoint),
			Credentials:      credentials.NewStaticCredentialsProvider("AKIAAPPKEYNOTTRUSTED", "app-secret", ""),
			RetryMaxAttempts: 1,
			HTTPClient:       bedrocktest.BufferedClient(&http.Client{Transport: e.tr[i%len(e.tr)]}),
		}))
	}
	return e, nil
}

// injectDelays makes every stream pause between events; Reset drops the
// faults, so this follows each Reset.
func (e *env) injectDelays() {
	for _, op := range []string{"ConverseStream", "InvokeModelWithResponseStream"} {
		e.emu.Inject(bedrocktest.Fault{Op: op, Times: 1 << 30, EventDelay: e.o.EventDelay})
	}
}

// resetEmulator drops the emulator's record of calls (it keeps every
// request otherwise, which would read as a leak).
func (e *env) resetEmulator() {
	e.emu.Reset()
	e.injectDelays()
}

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// emulatorIdleTimeout is how long the emulator keeps an idle connection:
// longer than Warden's upstream pool does (TestEmulatorOutlastsWardenPool),
// so that Warden, not the emulator, closes an idle connection, and never
// while it writes a request on it.
const emulatorIdleTimeout = 5 * time.Minute

// closeIdle closes the clients' idle connections to Warden and, with no
// load running, Warden's idle connections to the emulator (from the
// emulator's side: turning keep-alives off closes the idle ones at once).
func (e *env) closeIdle() {
	for _, t := range e.tr {
		t.CloseIdleConnections()
	}
	e.upstream.SetKeepAlivesEnabled(false)
	e.upstream.SetKeepAlivesEnabled(true)
}

// reload writes the named policy file (atomically, as an operator or a
// ConfigMap update would), signals Warden as SIGHUP does, and checks the
// outcome: a valid file must be applied, an invalid one rejected with the
// previous policy still running.
func (e *env) reload(name string, st *reloadStats) error {
	tmp := e.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, e.files[name], 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, e.cfgPath); err != nil {
		return err
	}
	e.trigger <- struct{}{}
	var res proxy.ReloadResult
	select {
	case res = <-e.results:
	case <-time.After(30 * time.Second):
		st.Problems = append(st.Problems, fmt.Sprintf("reload of policy %s: no result within 30s", name))
		return nil
	}
	running := e.warden.PolicyHash()
	switch {
	case name == "invalid" && res.Err == nil:
		st.Problems = append(st.Problems, "the invalid policy was accepted")
	case name == "invalid" && running != e.hashes[e.current]:
		st.Problems = append(st.Problems, fmt.Sprintf("after a rejected reload policy %s (%s) should run, %s does", e.current, e.hashes[e.current], running))
	case name == "invalid":
		st.Rejected++
	case res.Err != nil:
		st.Problems = append(st.Problems, fmt.Sprintf("policy %s was rejected: %v", name, res.Err))
	case running != e.hashes[name]:
		st.Problems = append(st.Problems, fmt.Sprintf("after reloading policy %s (%s), %s runs", name, e.hashes[name], running))
	default:
		st.Applied++
		e.current = name
	}
	return nil
}

// splitWords cuts text into at most n pieces at spaces (the emulator's
// stream events).
func splitWords(text string, n int) []string {
	words := strings.SplitAfter(text, " ")
	per := (len(words) + n - 1) / n
	var out []string
	for i := 0; i < len(words); i += per {
		out = append(out, strings.Join(words[i:min(i+per, len(words))], ""))
	}
	return out
}

// Soak runs the whole soak and writes the table and verdict to w.
func Soak(ctx context.Context, o Options, w io.Writer) (*Report, error) {
	if o.Duration <= 0 || o.Concurrency < 1 || o.ReportEvery <= 0 || o.Settle <= 0 || o.Warmup < 0 || o.Rate < 0 {
		return nil, fmt.Errorf("--duration, --concurrency, --report-every and --settle must be positive")
	}
	if o.OutageEvery > 0 && (o.OutageFor <= 0 || o.OutageFor >= o.OutageEvery) {
		return nil, fmt.Errorf("--outage-for must be positive and shorter than --outage-every")
	}
	e, err := newEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep := &Report{Options: o, Started: time.Now(), Hashes: e.hashes}
	fmt.Fprintf(w, "soak: Warden %s ← %d workers (Go SDK: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream; some hang up mid-stream)\n", e.endpoint, o.Concurrency)
	fmt.Fprintf(w, "soak: %s of load; reload every %s (policies A %s, B %s, and an invalid file); HTTP audit sink down %s of every %s\n",
		o.Duration, o.ReloadEvery, e.hashes["A"], e.hashes["B"], o.OutageFor, o.OutageEvery)

	// Warm up every path, then measure the baseline at rest.
	c := newCounters()
	if o.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.Warmup)
		runLoad(ctx, wctx.Done(), e.clients, nil, c, nil)
		cancel()
	}
	if err := e.sink.waitRecords(c.calls.Load(), time.Now().Add(time.Minute)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	warmHangups := c.snapshot().failedTotal(causeDisconnect)
	e.closeIdle()
	time.Sleep(3 * time.Second) // past the sink's idle timeout
	e.resetEmulator()
	rep.Baseline = measure()
	rep.Limits = limitsFor(rep.Baseline)
	fmt.Fprintf(w, "soak: baseline after %s warm-up (%d calls): rss %.1f MB, heap after GC %.1f MB, %d goroutines, %d fds\n\n",
		o.Warmup, c.calls.Load(), mb(rep.Baseline.RSS), mb(rep.Baseline.Heap), rep.Baseline.Goroutines, rep.Baseline.FDs)

	c = newCounters()
	lctx, stopLoad := context.WithTimeout(ctx, o.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	var rmu sync.Mutex // guards rep.Reloads
	var pace <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		pace = t.C
	}
	wg.Add(1)
	go func() { defer wg.Done(); runLoad(ctx, lctx.Done(), e.clients, pace, c, o.afterCall) }()
	if o.ReloadEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.ReloadEvery)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-lctx.Done():
					return
				case <-t.C:
				}
				rmu.Lock()
				err := e.reload(reloadPlan[i%len(reloadPlan)], &rep.Reloads)
				if err != nil {
					rep.Reloads.Problems = append(rep.Reloads.Problems, err.Error())
				}
				rmu.Unlock()
			}
		}()
	}
	var sinkErr error
	if o.OutageEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-lctx.Done():
					return
				case <-time.After(o.OutageEvery - o.OutageFor):
				}
				e.sink.stop()
				select {
				case <-lctx.Done():
				case <-time.After(o.OutageFor):
				}
				if err := e.sink.start(); err != nil {
					sinkErr = err
					return
				}
			}
		}()
	}

	fmt.Fprintf(w, "%7s %7s %8s %6s %5s %9s %6s %7s %5s %6s %8s %6s %9s\n",
		"time", "rss_MB", "heap_MB", "gorout", "fds", "calls_ok", "hangup", "f_reload", "f_sink", "f_other", "reloads", "sink", "audited")
	row := func(at time.Duration, u usage, s callStats, sk sinkStats, reloads int) {
		state := "up"
		if sk.Down {
			state = "DOWN"
		}
		fmt.Fprintf(w, "%7s %7.1f %8.1f %6d %5d %9d %6d %7d %5d %6d %8d %6s %9d\n",
			at.Round(time.Second), mb(u.RSS), mb(u.Heap), u.Goroutines, u.FDs, s.okTotal(), s.failedTotal(causeDisconnect),
			s.failedTotal(causeReload), s.failedTotal(causeSink), s.failedTotal(causeOther), reloads, state, sk.Records)
	}
	start := time.Now()
	tick := time.NewTicker(o.ReportEvery)
	for done := false; !done; {
		select {
		case <-lctx.Done():
			done = true
		case <-tick.C:
		}
		e.resetEmulator()
		u := measure()
		rep.Peak = usage{RSS: max(rep.Peak.RSS, u.RSS), Heap: max(rep.Peak.Heap, u.Heap),
			Goroutines: max(rep.Peak.Goroutines, u.Goroutines), FDs: max(rep.Peak.FDs, u.FDs)}
		rmu.Lock()
		n := rep.Reloads.Applied + rep.Reloads.Rejected
		rmu.Unlock()
		s := Sample{At: time.Since(start), Use: u, Calls: c.snapshot(), Reloads: n, Sink: e.sink.stats()}
		rep.Samples = append(rep.Samples, s)
		if !done {
			row(s.At, s.Use, s.Calls, s.Sink, s.Reloads)
		}
	}
	tick.Stop()
	wg.Wait()
	if sinkErr != nil {
		return nil, sinkErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Load over: every call must reach the sink, then goroutines, fds and
	// heap must come back to where they were at rest.
	if err := e.sink.waitRecords(c.calls.Load(), time.Now().Add(2*time.Minute)); err != nil {
		rep.DeliverErr = err.Error()
	}
	e.closeIdle()
	e.resetEmulator()
	settleStart := time.Now()
	for {
		rep.Final = measure()
		rep.SettleIn = time.Since(settleStart)
		if rep.Limits.hold(rep.Final) {
			rep.Settled = true
			break
		}
		if rep.SettleIn >= o.Settle || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
		e.closeIdle()
	}
	rep.Calls = c.snapshot()
	rep.Hangups = warmHangups + rep.Calls.failedTotal(causeDisconnect)
	rep.Sink = e.sink.stats()
	rep.WardenErrors, rep.WardenWarns = e.errs.Load(), e.warns.Load()
	if rep.Settled {
		row(time.Since(start), rep.Final, rep.Calls, rep.Sink, rep.Reloads.Applied+rep.Reloads.Rejected)
	}
	printSummary(w, rep)
	return rep, nil
}

func printSummary(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\nsoak: %d calls in %s (%.0f/s)\n", r.Calls.Calls, r.Options.Duration, float64(r.Calls.Calls)/r.Options.Duration.Seconds())
	for _, k := range Kinds() {
		fmt.Fprintf(w, "  %-24s ok %7d", k, r.Calls.OK[k])
		for _, cause := range []string{causeDisconnect, causeReload, causeSink, causeOther} {
			if n := r.Calls.Failed[cause][k]; n > 0 {
				fmt.Fprintf(w, "  %s %d", cause, n)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  reloads: %d applied, %d invalid files rejected (the last good policy kept)\n", r.Reloads.Applied, r.Reloads.Rejected)
	pols := make([]string, 0, len(r.Sink.Policies))
	for name, h := range r.Hashes {
		pols = append(pols, fmt.Sprintf("%s %s: %d", name, h, r.Sink.Policies[h]))
	}
	slices.Sort(pols)
	fmt.Fprintf(w, "  audit sink: %d call records + %d checkpoints in an unbroken chain, %d re-delivered, %d POSTs; %d outages, delivery resumed after %d; records by policy: %s\n",
		r.Sink.Records, r.Sink.Checkpoints, r.Sink.Duplicates, r.Sink.Posts, r.Sink.Outages, r.Sink.Resumed, strings.Join(pols, ", "))
	var ets []string
	for et, n := range r.Sink.ErrorTypes {
		ets = append(ets, fmt.Sprintf("%s: %d", et, n))
	}
	slices.Sort(ets)
	fmt.Fprintf(w, "  audit records by status and error type: %s (the clients hung up %d times, warm-up included)\n", strings.Join(ets, ", "), r.Hangups)
	fmt.Fprintf(w, "  Warden logged %d errors and %d warnings (rejected reloads and sink retries are expected ones)\n", r.WardenErrors, r.WardenWarns)
	fmt.Fprintf(w, "  peak under load: rss %.1f MB, heap after GC %.1f MB, %d goroutines, %d fds\n", mb(r.Peak.RSS), mb(r.Peak.Heap), r.Peak.Goroutines, r.Peak.FDs)
	fmt.Fprintf(w, "  baseline: heap %.1f MB, %d goroutines, %d fds; after the load (%s to settle): heap %.1f MB, %d goroutines, %d fds, rss %.1f MB\n",
		mb(r.Baseline.Heap), r.Baseline.Goroutines, r.Baseline.FDs, r.SettleIn.Round(100*time.Millisecond), mb(r.Final.Heap), r.Final.Goroutines, r.Final.FDs, mb(r.Final.RSS))
	if p := r.Problems(); len(p) > 0 {
		fmt.Fprintln(w, "verdict: FAIL")
		for _, s := range p {
			fmt.Fprintln(w, "  - "+s)
		}
		return
	}
	fmt.Fprintln(w, "verdict: PASS (no call failed for a reload, the sink or any other reason; every call audited; goroutines, fds and heap back to baseline)")
}
