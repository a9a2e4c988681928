package main

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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/stats"
	"github.com/warden-egress/warden/proxy"
)

// The budgets bench: two Wardens in one process, identical but for
// apps[].budgets (local, in memory, every kind, never reached), in front of
// one emulator, driven by the real Go SDK. Their calls are interleaved in
// blocks (the order alternating block by block, a fresh GC before each
// arm's part of a block), so both arms see the same machine; each block
// gives one on/off ratio, and the report is the median of those ratios.
// This is issue 18's "warden bench with local limits on within 5 % of
// throughput without them" on a machine whose load moves absolute numbers.

const (
	armOff = "off"
	armOn  = "on"
)

// budgetsBenchCaps are what both arms share: the output cap a token budget
// needs and the prices a cost budget needs, so the arms differ by the
// budgets alone.
const (
	budgetsBenchCaps  = "    limits: {max_output_tokens: 4096}\n"
	budgetsBenchAudit = "audit:\n  prices: {\"anthropic.claude-3-5-haiku-*\": {input_per_mtok: 0.8, output_per_mtok: 4}}\n"
	budgetsBenchOn    = "    budgets: {requests_per_second: 1000000, requests_per_minute: 100000000, input_tokens_per_minute: 1000000000000,\n" +
		"      output_tokens_per_minute: 1000000000000, tokens_per_day: 1000000000000, cost_per_day_usd: 1000000000,\n" +
		"      cost_per_month_usd: 1000000000, concurrent_streams: 100000}\n"
)

type budgetsBenchOptions struct {
	blocks, blockRequests, c1Requests, concurrency, promptBytes, warmup int
	json                                                                bool
}

// budgetsBlock is one block's measurements: each arm's throughput at
// concurrency and p50 at c=1, and the on/off ratios.
type budgetsBlock struct {
	First           string  `json:"first"`
	OffCallsPerS    float64 `json:"off_calls_per_s"`
	OnCallsPerS     float64 `json:"on_calls_per_s"`
	ThroughputRatio float64 `json:"on_over_off_throughput"`
	OffP50us        float64 `json:"off_p50_us"`
	OnP50us         float64 `json:"on_p50_us"`
	P50Ratio        float64 `json:"on_over_off_p50"`
}

type budgetsBenchReport struct {
	GoVersion     string         `json:"go_version"`
	GOMAXPROCS    int            `json:"gomaxprocs"`
	Blocks        []budgetsBlock `json:"blocks"`
	Concurrency   int            `json:"concurrency"`
	BlockRequests int            `json:"block_requests"`
	C1Requests    int            `json:"c1_requests"`
	PromptBytes   int            `json:"prompt_bytes"`
	// Medians across blocks.
	OffCallsPerS         float64 `json:"median_off_calls_per_s"`
	OnCallsPerS          float64 `json:"median_on_calls_per_s"`
	MedianThroughputRate float64 `json:"median_on_over_off_throughput"`
	MedianP50Ratio       float64 `json:"median_on_over_off_p50"`
	Within5Percent       bool    `json:"within_5_percent"`
}

func cmdBenchBudgets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench budgets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o budgetsBenchOptions
	fs.IntVar(&o.blocks, "blocks", 20, "number of blocks; each gives one on/off ratio, the report is their median")
	fs.IntVar(&o.blockRequests, "block-requests", 2000, "Converse calls per arm per block at --concurrency")
	fs.IntVar(&o.c1Requests, "c1-requests", 200, "Converse calls per arm per block at concurrency 1 (p50)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrency of the throughput part")
	fs.IntVar(&o.promptBytes, "prompt-bytes", 4096, "size of the prompt text")
	fs.IntVar(&o.warmup, "warmup", 500, "warm-up Converse calls per arm")
	fs.BoolVar(&o.json, "json", false, "print machine-readable JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.blocks < 1 || o.blockRequests < 1 || o.c1Requests < 1 || o.concurrency < 1 || o.promptBytes < 1 || o.warmup < 0 {
		return errors.New("--blocks, --block-requests, --c1-requests, --concurrency and --prompt-bytes must be positive")
	}

	emu := bedrocktest.NewServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{benchKey: benchSecret}})
	defer emu.Close()
	auditDir, err := os.MkdirTemp("", "warden-bench-budgets-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(auditDir) }()

	prompt := benchPrompt(o.promptBytes)
	in := &bedrockruntime.ConverseInput{ModelId: aws.String(benchModel),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}}}
	clients := map[string]*bedrockruntime.Client{}
	var closers []func() // run last first
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	for _, arm := range []string{armOff, armOn} {
		pol := append(policyFor("  endpoint: 127.0.0.1:0", "resign", emu.URL), budgetsBenchCaps...)
		if arm == armOn {
			pol = append(pol, budgetsBenchOn...)
		}
		pol = append(pol, budgetsBenchAudit...)
		cfg, err := config.ParseConfig(pol)
		if err != nil {
			return fmt.Errorf("%s policy: %w", arm, err)
		}
		set := 0
		if l := budget.Compile(cfg.Apps[0].Budgets); l != nil {
			for _, m := range l.Max {
				if m > 0 {
					set++
				}
			}
		}
		if arm == armOn && set != int(budget.NumKinds) || arm == armOff && set != 0 {
			return fmt.Errorf("%s arm: %d budgets set", arm, set)
		}
		aw, err := openBenchAudit(ctx, auditDir, arm)
		if err != nil {
			return err
		}
		srv, err := proxy.New(ctx, proxy.Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider(benchKey, benchSecret, ""),
			Audit: aw, Logger: zap.NewNop()})
		if err != nil {
			_ = aw.Close()
			return err
		}
		closers = append(closers, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx) // also closes the audit writer
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = srv.ServeEndpoint(ln, nil) }()
		tr := &connTracker{}
		closers = append(closers, tr.closeAll)
		hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns, t.MaxIdleConnsPerHost, t.DialContext = 1024, 256, tr.dial
		})
		clients[arm] = bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ln.Addr().String()),
			Credentials: credentials.NewStaticCredentialsProvider(benchAppKey, benchAppSecret, ""), RetryMaxAttempts: 1,
			HTTPClient: bedrocktest.BufferedClient(hc)})
	}
	call := func(arm string) func(context.Context) error {
		return func(ctx context.Context) error {
			if _, err := clients[arm].Converse(ctx, in); err != nil {
				return fmt.Errorf("%s arm: Converse: %w", arm, err)
			}
			return nil
		}
	}
	for _, arm := range []string{armOff, armOn} {
		if _, err := concurrently(ctx, o.concurrency, o.warmup, call(arm)); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	rep := &budgetsBenchReport{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), Concurrency: o.concurrency,
		BlockRequests: o.blockRequests, C1Requests: o.c1Requests, PromptBytes: o.promptBytes}
	lat := make([]time.Duration, o.c1Requests)
	for k := 0; k < o.blocks; k++ {
		order := []string{armOff, armOn}
		if k%2 == 1 {
			order = []string{armOn, armOff}
		}
		b := budgetsBlock{First: order[0]}
		for _, arm := range order {
			runtime.GC()
			d, err := concurrently(ctx, o.concurrency, o.blockRequests, call(arm))
			if err != nil {
				return err
			}
			tput := float64(o.blockRequests) / d.Seconds()
			runtime.GC()
			for i := range lat {
				start := time.Now()
				if err := call(arm)(ctx); err != nil {
					return err
				}
				lat[i] = time.Since(start)
			}
			p50 := stats.PercentileUS(lat, 0.5)
			if arm == armOn {
				b.OnCallsPerS, b.OnP50us = tput, p50
			} else {
				b.OffCallsPerS, b.OffP50us = tput, p50
			}
		}
		b.ThroughputRatio, b.P50Ratio = b.OnCallsPerS/b.OffCallsPerS, b.OnP50us/b.OffP50us
		rep.Blocks = append(rep.Blocks, b)
		if !o.json {
			fmt.Fprintf(stderr, "budgets bench: block %d/%d (%s first): off %.0f calls/s, on %.0f calls/s (×%.3f); p50 off %.1f µs, on %.1f µs (×%.3f)\n",
				k+1, o.blocks, order[0], b.OffCallsPerS, b.OnCallsPerS, b.ThroughputRatio, b.OffP50us, b.OnP50us, b.P50Ratio)
		}
	}
	rep.OffCallsPerS = stats.MedianOf(rep.Blocks, func(b budgetsBlock) float64 { return b.OffCallsPerS })
	rep.OnCallsPerS = stats.MedianOf(rep.Blocks, func(b budgetsBlock) float64 { return b.OnCallsPerS })
	rep.MedianThroughputRate = stats.MedianOf(rep.Blocks, func(b budgetsBlock) float64 { return b.ThroughputRatio })
	rep.MedianP50Ratio = stats.MedianOf(rep.Blocks, func(b budgetsBlock) float64 { return b.P50Ratio })
	rep.Within5Percent = rep.MedianThroughputRate >= 0.95
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "Warden with local budgets (every kind, in memory, never reached) vs without; %d blocks, interleaved; %s, GOMAXPROCS %d\n",
		o.blocks, rep.GoVersion, rep.GOMAXPROCS)
	fmt.Fprintf(stdout, "throughput at c=%d (%d calls per arm per block): median off %.0f calls/s, on %.0f calls/s; median of per-block on/off ratios %.3f\n",
		o.concurrency, o.blockRequests, rep.OffCallsPerS, rep.OnCallsPerS, rep.MedianThroughputRate)
	fmt.Fprintf(stdout, "p50 at c=1 (%d calls per arm per block): median of per-block on/off ratios %.3f\n", o.c1Requests, rep.MedianP50Ratio)
	verdict := "FAIL"
	if rep.Within5Percent {
		verdict = "PASS"
	}
	fmt.Fprintf(stdout, "%s target throughput with local budgets within 5 %% of without (median ratio %.3f ≥ 0.95)\n", verdict, rep.MedianThroughputRate)
	return nil
}
