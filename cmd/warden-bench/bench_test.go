package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var tinyBench = []string{"--runs", "1", "--requests", "20", "--requests32", "64", "--stream-requests", "5", "--warmup", "5"}

// TestBenchSmoke runs the whole bench with tiny numbers. It checks the shape
// of the output, never the timings.
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBench(ctx, tinyBench, &stdout, &stderr); err != nil {
		t.Fatalf("cmdBench: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		benchModeTitle[modeDirect], benchModeTitle[modeBare], benchModeTitle[modeWarden],
		"Converse p50, c=1", "Converse throughput, c=32", "time to first event",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	targets := 0
	for _, line := range strings.Split(out, "\n") {
		if (strings.HasPrefix(line, "PASS target ") || strings.HasPrefix(line, "FAIL target ")) &&
			(strings.Contains(line, "(a) Warden added p50") || strings.Contains(line, "(b) Warden throughput")) {
			targets++
		}
	}
	if targets != 2 {
		t.Errorf("want 2 PASS/FAIL target lines, got %d:\n%s", targets, out)
	}
}

func TestBenchJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBench(ctx, append([]string{"--json"}, tinyBench...), &stdout, &stderr); err != nil {
		t.Fatalf("cmdBench --json: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	for _, m := range benchModes {
		r := rep.Modes[m]
		if r == nil || len(r.Runs) != 1 {
			t.Errorf("mode %s: missing or wrong number of runs: %+v", m, r)
		}
	}
	if len(rep.Targets) != 2 {
		t.Errorf("want 2 targets, got %+v", rep.Targets)
	}
	if len(rep.RunAddedRatios) != 1 || len(rep.RunThroughputRatios) != 1 || rep.Blocks != 10 {
		t.Errorf("per-run ratios or blocks missing: %+v %+v %d", rep.RunAddedRatios, rep.RunThroughputRatios, rep.Blocks)
	}
}

func TestBenchFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := cmdBench(context.Background(), []string{"--runs", "0"}, &stdout, &stderr); err == nil {
		t.Error("--runs 0 accepted")
	}
	if err := cmdBench(context.Background(), []string{"--blocks", "0"}, &stdout, &stderr); err == nil {
		t.Error("--blocks 0 accepted")
	}
	if err := cmdBench(context.Background(), []string{"extra"}, &stdout, &stderr); err == nil {
		t.Error("stray argument accepted")
	}
}

// The command routes to the endpoint bench by default and to the forward-
// proxy bench with "proxy"; errors name which, help exits 0.
func TestRunCommands(t *testing.T) {
	for _, c := range []struct {
		args       []string
		code       int
		out, inErr string
	}{
		{[]string{"help"}, 0, "warden-bench proxy [flags]", ""},
		{[]string{"-h"}, 0, "", "-stream-requests"},
		{[]string{"proxy", "-h"}, 0, "", "-handshakes"},
		{[]string{"--runs", "0"}, 1, "", "warden-bench: --runs"},
		{[]string{"proxy", "--proto", "h3"}, 1, "", `warden-bench proxy: --proto "h3"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.inErr) {
			t.Errorf("run %q: exit %d, want %d; stdout %q (want %q), stderr %q (want %q)",
				c.args, code, c.code, stdout.String(), c.out, stderr.String(), c.inErr)
		}
	}
}

// TestBudgetsBenchSmoke runs the budgets bench with tiny numbers: the
// shape of the output, both arms measured in every block, never timings.
func TestBudgetsBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--blocks", "2", "--block-requests", "40", "--c1-requests", "5", "--warmup", "5", "--json"}
	if err := cmdBenchBudgets(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("budgets bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep budgetsBenchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Blocks) != 2 || rep.Blocks[0].First == rep.Blocks[1].First {
		t.Fatalf("blocks %+v: want 2, alternating which arm goes first", rep.Blocks)
	}
	for _, b := range rep.Blocks {
		if b.OffCallsPerS <= 0 || b.OnCallsPerS <= 0 || b.OffP50us <= 0 || b.OnP50us <= 0 || b.ThroughputRatio <= 0 {
			t.Errorf("block not measured: %+v", b)
		}
	}
	stdout.Reset()
	if err := cmdBenchBudgets(ctx, []string{"--blocks", "1", "--block-requests", "20", "--c1-requests", "2", "--warmup", "0"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "target throughput with local budgets within 5 %") {
		t.Errorf("text output lacks the target line:\n%s", stdout.String())
	}
	if err := cmdBenchBudgets(ctx, []string{"--blocks", "0"}, &stdout, &stderr); err == nil {
		t.Error("--blocks 0 accepted")
	}
}
