package main

// warden-bench stream: what the output guard's hold-back (issue 13) costs a
// streamed answer. The emulator streams a ConverseStream answer in
// model-sized tokens, one event per token, --token-gap apart; the real Go
// SDK reads it through Warden's endpoint with an output guard (every PII
// type, mask) and without one, the two taking turns in the same run. For
// every token the bench knows when the emulator flushed it
// (bedrocktest.Config.EventSent) and when the SDK handed its text to the
// caller, so it reports:
//
//   - time to first text byte: from the call's start to the first
//     contentBlockDelta carrying text;
//   - delay per token: from the emulator's flush of a token to the SDK's
//     delivery of it (the relay, plus the hold-back under the guard);
//   - tokens held: how many later tokens the emulator had sent when a
//     token reached the caller (the hold-back in tokens, whatever the gap;
//     the gap actually measured is reported too, a busy machine's timers
//     being late).
//
// The answers hold nothing the guard masks, so every event passes whole and
// the k-th text the caller reads is the k-th token sent (checked per call).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/stats"
	"github.com/warden-egress/warden/proxy"
)

const (
	bsNoGuard = "noguard"
	bsGuard   = "guard"
)

// bsModes: bsNoGuard is the baseline of every ratio.
var bsModes = [...]string{bsNoGuard, bsGuard}

var bsModeTitle = map[string]string{
	bsNoGuard: "Warden, no output guard",
	bsGuard:   "Warden, output guard",
}

// bsGuards is the output guard of the guard mode: every built-in PII type
// (URL and email included, so the hold bound is max_hold_bytes' default),
// with action (mask by default; record sends every event as it arrives).
func bsGuards(action string) string {
	return "guards:\n  out: {pii: {action: " + action + "}, unscannable: allow, applies_to: [output]}\n"
}

// bsText is one answer the emulator streams.
type bsText struct {
	Name   string `json:"name"`
	Title  string `json:"title"`
	Bytes  int    `json:"bytes"`
	Tokens int    `json:"tokens"`
	text   string
	tokens []string
}

// bsTexts: prose without a digit, and number-dense text (dates, amounts,
// order numbers, versions, a table) holding no value a PII type matches.
func bsTexts() []*bsText {
	prose := "The quarterly operations review found that the new onboarding flow reduced support tickets " +
		"noticeably, while the warehouse team asked for clearer guidance on returns. Customers praised the " +
		"faster checkout but several mentioned that the delivery estimates were too optimistic during the " +
		"holiday season. The team recommends three changes: publish realistic delivery windows, simplify " +
		"the returns policy, and train the support staff on the revised process before the spring launch. " +
		"Overall, satisfaction improved and the backlog of open issues is smaller than at any point this year, " +
		"although the mobile application still lags behind the website in both speed and reliability."
	numbers := "Order 48213 shipped on 2024-03-15 with 12 items for 1,249.50 EUR; invoice INV-20931 is due on " +
		"2024-04-14. Build 3.14.2 replaced 3.13.9 on 2024-02-02 at 09:30 and cut p95 latency from 412 ms to 287 ms.\n" +
		"| month | orders | returns | revenue | growth |\n" +
		"| 2024-01 | 3,180 | 214 | 17,940.25 | 4.2% |\n" +
		"| 2024-02 | 3,412 | 198 | 19,305.80 | 7.6% |\n" +
		"| 2024-03 | 3,877 | 231 | 22,118.10 | 14.6% |\n" +
		"| 2024-04 | 3,654 | 240 | 20,871.45 | -5.6% |\n" +
		"Totals: 14,123 orders, 883 returns, 80,235.60 EUR; 6.3% returned, 27 regions, 118 stores, 4 warehouses."
	var out []*bsText
	for _, t := range []struct{ name, title, text string }{
		{"prose", "prose", prose},
		{"numbers", "number-dense", numbers},
	} {
		toks := modelTokens(t.text)
		out = append(out, &bsText{Name: t.name, Title: t.title, Bytes: len(t.text), Tokens: len(toks), text: t.text, tokens: toks})
	}
	return out
}

// modelTokens cuts ASCII text roughly as a model's tokenizer does: a word
// with its leading space, at most 4 letters a token; at most 3 digits a
// token; any other character alone.
func modelTokens(text string) []string {
	letter := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	var out []string
	for i := 0; i < len(text); {
		j := i
		if text[j] == ' ' && j+1 < len(text) && (letter(text[j+1]) || digit(text[j+1])) {
			j++
		}
		run := func(in func(byte) bool, n int) {
			k := j
			for k < len(text) && in(text[k]) && k-j < n {
				k++
			}
			j = k
		}
		switch c := text[j]; {
		case letter(c):
			run(letter, 4)
		case digit(c):
			run(digit, 3)
		default:
			j++
		}
		out = append(out, text[i:j])
		i = j
	}
	return out
}

type bsOptions struct {
	runs, calls, blocks, warmup int
	gap                         time.Duration
	json                        bool
	action                      string // the output guard's action
}

// bsSample is one run's measurements for one mode and text.
type bsSample struct {
	TTFTp50us  float64 `json:"first_text_p50_us"`
	TTFTp99us  float64 `json:"first_text_p99_us"`
	Delayp50us float64 `json:"token_delay_p50_us"`
	Delayp99us float64 `json:"token_delay_p99_us"`
	Heldp50    int     `json:"tokens_held_p50"`
	Heldp99    int     `json:"tokens_held_p99"`
	HeldMax    int     `json:"tokens_held_max"`
	// GapP50us is the median time between two tokens as the emulator
	// sent them (--token-gap plus the timer's lateness on a busy machine).
	GapP50us float64 `json:"token_gap_p50_us"`
}

type bsModeResult struct {
	Title  string     `json:"title"`
	Median bsSample   `json:"median"`
	Runs   []bsSample `json:"runs"`
}

// bsRatios are guard over no guard, taken within each run (the modes of a
// run share its conditions), and their medians.
type bsRatios struct {
	TTFTp50  float64   `json:"first_text_p50"`
	TTFTp99  float64   `json:"first_text_p99"`
	Delayp50 float64   `json:"token_delay_p50"`
	Delayp99 float64   `json:"token_delay_p99"`
	Runs     []bsRatio `json:"runs"`
}

type bsRatio struct {
	TTFTp50, TTFTp99, Delayp50, Delayp99 float64
}

type bsTextResult struct {
	bsText
	Modes map[string]*bsModeResult `json:"modes"`
	// Guard minus no guard, from the medians.
	AddedTTFTp50us  float64  `json:"added_first_text_p50_us"`
	AddedTTFTp99us  float64  `json:"added_first_text_p99_us"`
	AddedDelayp50us float64  `json:"added_token_delay_p50_us"`
	AddedDelayp99us float64  `json:"added_token_delay_p99_us"`
	Ratios          bsRatios `json:"guard_over_noguard"`
}

type bsReport struct {
	GoVersion  string          `json:"go_version"`
	GOMAXPROCS int             `json:"gomaxprocs"`
	NumCPU     int             `json:"num_cpu"`
	Runs       int             `json:"runs"`
	Calls      int             `json:"calls"`
	Blocks     int             `json:"blocks"`
	GapUs      float64         `json:"token_gap_us"`
	Action     string          `json:"guard_action"`
	Baseline   string          `json:"baseline"`
	Texts      []*bsTextResult `json:"texts"`
}

// cmdBenchStream is `warden-bench stream`.
func cmdBenchStream(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench stream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bsOptions
	fs.IntVar(&o.runs, "runs", 5, "number of runs; each metric is the median across runs")
	fs.IntVar(&o.calls, "calls", 20, "ConverseStream calls per run, mode and text")
	fs.IntVar(&o.blocks, "blocks", 4, "the modes take turns in this many blocks of calls per run and text")
	fs.IntVar(&o.warmup, "warmup", 3, "warm-up calls per mode and text")
	fs.DurationVar(&o.gap, "token-gap", 2*time.Millisecond, "the emulator's time between tokens (a model's time per token)")
	fs.StringVar(&o.action, "action", "mask", "the output guard's action: mask, block (nothing in the texts is found, so neither changes an event) or record (no hold-back)")
	fs.BoolVar(&o.json, "json", false, "print machine-readable JSON instead of tables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.action != "mask" && o.action != "block" && o.action != "record" {
		return fmt.Errorf("--action %q: want mask, block or record", o.action)
	}
	if o.runs < 1 || o.calls < 1 || o.blocks < 1 || o.warmup < 0 || o.gap <= 0 {
		return errors.New("--runs, --calls, --blocks and --token-gap must be positive, --warmup not negative")
	}
	if o.blocks > o.calls {
		return errors.New("--blocks must not exceed --calls")
	}
	texts := bsTexts()
	env, err := newBSEnv(ctx, &o)
	if err != nil {
		return err
	}
	defer env.close()
	progress := func(format string, a ...any) {
		if !o.json {
			fmt.Fprintf(stderr, format, a...)
		}
	}

	progress("bench-stream: warming up (%d calls per mode and text)…\n", o.warmup)
	for _, tx := range texts {
		for _, m := range bsModes {
			for i := 0; i < o.warmup; i++ {
				if _, err := env.call(ctx, m, tx); err != nil {
					return fmt.Errorf("warm-up: %w", err)
				}
			}
		}
	}

	samples := map[string]map[string][]bsSample{}
	for _, tx := range texts {
		samples[tx.Name] = map[string][]bsSample{}
	}
	for run := 0; run < o.runs; run++ {
		for _, tx := range texts {
			got := map[string][]*bsCall{}
			for c := 0; c < o.blocks; c++ {
				lo, hi := chunk(o.calls, o.blocks, c)
				for _, m := range rotate(bsModes[:], run+c) {
					runtime.GC()
					for i := lo; i < hi; i++ {
						r, err := env.call(ctx, m, tx)
						if err != nil {
							return err
						}
						got[m] = append(got[m], r)
					}
				}
			}
			for _, m := range bsModes {
				samples[tx.Name][m] = append(samples[tx.Name][m], summarise(got[m]))
			}
			g, n := samples[tx.Name][bsGuard][run], samples[tx.Name][bsNoGuard][run]
			progress("bench-stream: run %d/%d, %s: first text p50 %.0f / %.0f µs, token delay p50 %.0f / %.0f µs, p99 %.0f / %.0f µs (no guard / guard)\n",
				run+1, o.runs, tx.Name, n.TTFTp50us, g.TTFTp50us, n.Delayp50us, g.Delayp50us, n.Delayp99us, g.Delayp99us)
		}
	}

	rep := buildBSReport(&o, texts, samples)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBSReport(stdout, rep)
	return nil
}

// bsCall is one call's timings.
type bsCall struct {
	ttft  time.Duration
	delay []time.Duration // per token: delivered − sent
	held  []int           // per token: tokens sent after it by its delivery
	gaps  []time.Duration // between two tokens sent
}

func summarise(calls []*bsCall) bsSample {
	var ttft, delay []time.Duration
	var held []int
	var gaps []time.Duration
	for _, c := range calls {
		ttft = append(ttft, c.ttft)
		delay = append(delay, c.delay...)
		held = append(held, c.held...)
		gaps = append(gaps, c.gaps...)
	}
	s := bsSample{
		TTFTp50us: stats.PercentileUS(ttft, 0.50), TTFTp99us: stats.PercentileUS(ttft, 0.99),
		Delayp50us: stats.PercentileUS(delay, 0.50), Delayp99us: stats.PercentileUS(delay, 0.99),
		Heldp50: stats.Percentile(held, 0.50), Heldp99: stats.Percentile(held, 0.99),
	}
	s.HeldMax = stats.Percentile(held, 1)
	s.GapP50us = stats.PercentileUS(gaps, 0.50)
	return s
}

// bsEnv is the emulator, a Warden per mode and an SDK client per mode.
type bsEnv struct {
	o       *bsOptions
	emu     *bedrocktest.Server
	clients map[string]*bedrockruntime.Client
	input   *bedrockruntime.ConverseStreamInput
	closers []func()

	mu   sync.Mutex
	text *bsText     // the answer the emulator streams next
	sent []time.Time // when the emulator flushed each token of the current call
}

func newBSEnv(ctx context.Context, o *bsOptions) (_ *bsEnv, err error) {
	e := &bsEnv{o: o, clients: map[string]*bedrockruntime.Client{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.emu = bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{benchKey: benchSecret},
		Reply: func(_, _, _ string) string {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.text.text
		},
		Deltas: func(_, _ string) []string {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.text.tokens
		},
		EventDelay: o.gap,
		EventSent: func(_ int, typ string) {
			if typ != "contentBlockDelta" {
				return
			}
			now := time.Now()
			e.mu.Lock()
			e.sent = append(e.sent, now)
			e.mu.Unlock()
		},
	})
	e.closers = append(e.closers, e.emu.Close)

	auditDir, err := os.MkdirTemp("", "warden-bench-stream-")
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(auditDir) })
	for _, m := range bsModes {
		p := string(policyFor("  endpoint: 127.0.0.1:0", "resign", e.emu.URL))
		if m == bsGuard {
			p = strings.Replace(p, "    allow:\n", "    guards: [out]\n    allow:\n", 1) + bsGuards(o.action)
		}
		cfg, err := config.ParseConfig([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("bench-stream policy (%s): %w", m, err)
		}
		aw, err := openBenchAudit(ctx, auditDir, m)
		if err != nil {
			return nil, err
		}
		srv, err := proxy.New(ctx, proxy.Options{
			Config:      cfg,
			Credentials: credentials.NewStaticCredentialsProvider(benchKey, benchSecret, ""),
			Audit:       aw,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			_ = aw.Close()
			return nil, err
		}
		e.closers = append(e.closers, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx) // also closes the audit writer
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		go func() { _ = srv.ServeEndpoint(ln, nil) }()

		tr := &connTracker{}
		e.closers = append(e.closers, tr.closeAll)
		hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.DialContext = tr.dial })
		e.clients[m] = bedrockruntime.New(bedrockruntime.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String("http://" + ln.Addr().String()),
			Credentials:      credentials.NewStaticCredentialsProvider(benchAppKey, benchAppSecret, ""),
			RetryMaxAttempts: 1,
			HTTPClient:       bedrocktest.BufferedClient(hc),
		})
	}
	e.input = &bedrockruntime.ConverseStreamInput{ModelId: aws.String(benchModel), Messages: []types.Message{{
		Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: benchPrompt(256)}},
	}}}
	return e, nil
}

func (e *bsEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// call streams tx once through mode m's Warden and times every token.
func (e *bsEnv) call(ctx context.Context, m string, tx *bsText) (*bsCall, error) {
	e.mu.Lock()
	e.text, e.sent = tx, e.sent[:0]
	e.mu.Unlock()
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s mode, %s text: ConverseStream: %s", m, tx.Name, fmt.Sprintf(format, a...))
	}
	start := time.Now()
	out, err := e.clients[m].ConverseStream(ctx, e.input)
	if err != nil {
		return nil, fail("%v", err)
	}
	st := out.GetStream()
	recv := make([]time.Time, 0, len(tx.tokens))
	var texts []string
	for ev := range st.Events() {
		d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta)
		if !ok {
			continue
		}
		if t, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok && t.Value != "" {
			recv = append(recv, time.Now())
			texts = append(texts, t.Value)
		}
	}
	err = st.Err()
	_ = st.Close()
	if err != nil {
		return nil, fail("%v", err)
	}
	if len(texts) != len(tx.tokens) {
		return nil, fail("%d text events, the emulator sent %d tokens (%q)", len(texts), len(tx.tokens), strings.Join(texts, ""))
	}
	for k, t := range texts {
		if t != tx.tokens[k] {
			return nil, fail("text event %d is %q, the emulator sent %q (did the guard mask something?)", k, t, tx.tokens[k])
		}
	}
	e.mu.Lock()
	sent := append([]time.Time(nil), e.sent...)
	e.mu.Unlock()
	if len(sent) != len(tx.tokens) {
		return nil, fail("the emulator reported %d tokens sent, want %d", len(sent), len(tx.tokens))
	}
	c := &bsCall{ttft: recv[0].Sub(start), delay: make([]time.Duration, len(recv)), held: make([]int, len(recv))}
	j := 0
	for k, r := range recv {
		c.delay[k] = r.Sub(sent[k])
		for j < len(sent) && !sent[j].After(r) {
			j++
		}
		c.held[k] = max(0, j-(k+1))
	}
	for k := 1; k < len(sent); k++ {
		c.gaps = append(c.gaps, sent[k].Sub(sent[k-1]))
	}
	return c, nil
}

func buildBSReport(o *bsOptions, texts []*bsText, samples map[string]map[string][]bsSample) *bsReport {
	rep := &bsReport{
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Runs: o.runs, Calls: o.calls, Blocks: o.blocks, GapUs: float64(o.gap.Nanoseconds()) / 1e3, Action: o.action, Baseline: bsNoGuard,
	}
	for _, tx := range texts {
		r := &bsTextResult{bsText: *tx, Modes: map[string]*bsModeResult{}}
		for _, m := range bsModes {
			runs := samples[tx.Name][m]
			r.Modes[m] = &bsModeResult{Title: bsModeTitle[m], Runs: runs, Median: bsSample{
				TTFTp50us:  stats.MedianOf(runs, func(s bsSample) float64 { return s.TTFTp50us }),
				TTFTp99us:  stats.MedianOf(runs, func(s bsSample) float64 { return s.TTFTp99us }),
				Delayp50us: stats.MedianOf(runs, func(s bsSample) float64 { return s.Delayp50us }),
				Delayp99us: stats.MedianOf(runs, func(s bsSample) float64 { return s.Delayp99us }),
				Heldp50:    int(stats.MedianOf(runs, func(s bsSample) float64 { return float64(s.Heldp50) })),
				Heldp99:    int(stats.MedianOf(runs, func(s bsSample) float64 { return float64(s.Heldp99) })),
				HeldMax:    int(stats.MedianOf(runs, func(s bsSample) float64 { return float64(s.HeldMax) })),
				GapP50us:   stats.MedianOf(runs, func(s bsSample) float64 { return s.GapP50us }),
			}}
		}
		g, n := r.Modes[bsGuard].Median, r.Modes[bsNoGuard].Median
		r.AddedTTFTp50us, r.AddedTTFTp99us = g.TTFTp50us-n.TTFTp50us, g.TTFTp99us-n.TTFTp99us
		r.AddedDelayp50us, r.AddedDelayp99us = g.Delayp50us-n.Delayp50us, g.Delayp99us-n.Delayp99us
		ratio := func(a, b float64) float64 {
			if b <= 0 {
				return 0
			}
			return a / b
		}
		for i := range samples[tx.Name][bsGuard] {
			g, n := samples[tx.Name][bsGuard][i], samples[tx.Name][bsNoGuard][i]
			r.Ratios.Runs = append(r.Ratios.Runs, bsRatio{
				TTFTp50: ratio(g.TTFTp50us, n.TTFTp50us), TTFTp99: ratio(g.TTFTp99us, n.TTFTp99us),
				Delayp50: ratio(g.Delayp50us, n.Delayp50us), Delayp99: ratio(g.Delayp99us, n.Delayp99us),
			})
		}
		rs := r.Ratios.Runs
		r.Ratios.TTFTp50 = stats.MedianOf(rs, func(x bsRatio) float64 { return x.TTFTp50 })
		r.Ratios.TTFTp99 = stats.MedianOf(rs, func(x bsRatio) float64 { return x.TTFTp99 })
		r.Ratios.Delayp50 = stats.MedianOf(rs, func(x bsRatio) float64 { return x.Delayp50 })
		r.Ratios.Delayp99 = stats.MedianOf(rs, func(x bsRatio) float64 { return x.Delayp99 })
		rep.Texts = append(rep.Texts, r)
	}
	return rep
}

func printBSReport(out io.Writer, rep *bsReport) {
	fmt.Fprintf(out, "## Warden bench-stream\n\n")
	fmt.Fprintf(out, "%s, GOMAXPROCS=%d (%d CPUs), SDK + Warden + emulator in one process; real aws-sdk-go-v2 ConverseStream through Warden's endpoint (plain HTTP/1.1, keep-alive).\n",
		rep.GoVersion, rep.GOMAXPROCS, rep.NumCPU)
	fmt.Fprintf(out, "The emulator streams one token per event, %.0f µs apart. Output guard: `{pii: {action: %s}, unscannable: allow, applies_to: [output]}` (every PII type; nothing in the texts is found, so every event passes whole).\n",
		rep.GapUs, rep.Action)
	fmt.Fprintf(out, "Median of %d runs; per run, mode and text %d calls, the modes taking turns in %d blocks (order rotated). Ratios are guard / no guard within each run, then the median across runs.\n\n",
		rep.Runs, rep.Calls, rep.Blocks)
	for _, r := range rep.Texts {
		n, g := r.Modes[bsNoGuard], r.Modes[bsGuard]
		fmt.Fprintf(out, "### %s (%d bytes, %d tokens)\n\n", r.Title, r.Bytes, r.Tokens)
		fmt.Fprintf(out, "| metric | %s | %s | added | guard / no guard |\n|---|---:|---:|---:|---:|\n", n.Title, g.Title)
		fmt.Fprintf(out, "| time to first text byte p50 (µs) | %.0f | %.0f | %+.0f | %.2f |\n", n.Median.TTFTp50us, g.Median.TTFTp50us, r.AddedTTFTp50us, r.Ratios.TTFTp50)
		fmt.Fprintf(out, "| time to first text byte p99 (µs) | %.0f | %.0f | %+.0f | %.2f |\n", n.Median.TTFTp99us, g.Median.TTFTp99us, r.AddedTTFTp99us, r.Ratios.TTFTp99)
		fmt.Fprintf(out, "| delay per token p50 (µs) | %.0f | %.0f | %+.0f | %.2f |\n", n.Median.Delayp50us, g.Median.Delayp50us, r.AddedDelayp50us, r.Ratios.Delayp50)
		fmt.Fprintf(out, "| delay per token p99 (µs) | %.0f | %.0f | %+.0f | %.2f |\n", n.Median.Delayp99us, g.Median.Delayp99us, r.AddedDelayp99us, r.Ratios.Delayp99)
		fmt.Fprintf(out, "| tokens held p50 / p99 / max | %d / %d / %d | %d / %d / %d | | |\n",
			n.Median.Heldp50, n.Median.Heldp99, n.Median.HeldMax, g.Median.Heldp50, g.Median.Heldp99, g.Median.HeldMax)
		fmt.Fprintf(out, "| time between tokens sent p50 (µs) | %.0f | %.0f | | |\n\n", n.Median.GapP50us, g.Median.GapP50us)
	}
}
