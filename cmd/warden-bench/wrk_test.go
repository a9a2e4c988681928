package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/guard/detect"
	"github.com/warden-egress/warden/internal/testenv"
)

// TestMain lets the test binary be the bench's own child processes, as
// warden-bench is for itself (startChild runs os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchWrkSmoke runs the wrk bench for one short run of the small and
// long scenarios: every mode answers every call with a 2xx (the bench fails
// otherwise: a guard false positive on the prose, nginx refusing 800 KB), and
// the report has every row and target. It checks shapes, never timings.
func TestBenchWrkSmoke(t *testing.T) {
	for _, bin := range []string{"/usr/bin/wrk", "/usr/sbin/nginx"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, "%s is missing (apt-get install wrk nginx-light; scripts/test installs them as root)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchWrk(ctx, []string{"--runs", "1", "--duration", "1s", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("wrk bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep wrkReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	for _, sc := range wrkScenarios {
		for _, m := range wrkModes {
			s := rep.Median[sc.Name][m]
			if s.RPS <= 0 || s.P50 <= 0 || s.P99 < s.P50 {
				t.Errorf("%s %s: implausible sample %+v", sc.Name, m, s)
			}
		}
	}
	if len(rep.Ratios) != 5 {
		t.Errorf("want 5 target ratios, got %+v", rep.Ratios)
	}
}

// TestBenchWrkTrace runs one scenario with --trace: Warden runs with
// --pprof, each Warden mode's run leaves an execution trace, and the report
// splits its calls by stage and goroutine state. Shapes only, no timings.
func TestBenchWrkTrace(t *testing.T) {
	for _, bin := range []string{"/usr/bin/wrk", "/usr/sbin/nginx"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, "%s is missing (apt-get install wrk nginx-light; scripts/test installs them as root)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchWrk(ctx, []string{"--runs", "1", "--duration", "2s", "--scenarios", "4KB-c32", "--trace", dir, "--trace-quantile", "0.9", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("wrk bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep wrkReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if len(rep.Traces) != 2 {
		t.Fatalf("traces for %d modes, want the two Warden modes: %v", len(rep.Traces), rep.Traces)
	}
	for _, m := range []string{wmWarden, wmNoGuard} {
		s := rep.Traces["4KB-c32/"+m]
		if s == nil {
			t.Fatalf("no trace summary for %s", m)
		}
		rows := map[string]bool{}
		for _, r := range s.Rows {
			rows[r.Name] = true
		}
		if s.Calls < 100 || s.TailCalls < 1 || !rows["stage forward"] || !rows["stage inspect"] || !rows["goroutine running"] {
			t.Errorf("%s: %d calls, %d in the tail, rows %v", m, s.Calls, s.TailCalls, rows)
		}
		if _, err := os.Stat(dir + "/4KB-c32-" + m + "-run1.trace"); err != nil {
			t.Errorf("%s: the trace file is missing: %v", m, err)
		}
	}
}

// The prose the wrk bench sends holds nothing the PII guard blocks: a
// finding would turn every Warden call into a 403.
func TestWrkProseIsClean(t *testing.T) {
	p, err := detect.NewPII(detect.PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	text := detect.Normalize(wrkProse(64 << 10))
	if f := p.Detect(text, nil); len(f) > 0 {
		t.Fatalf("the bench prose holds %d findings, first %s at %d", len(f), f[0].Type, f[0].Start)
	}
}

func TestBenchWrkFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--runs", "0"}, {"--duration", "10ms"}, {"--scenarios", "nope"}, {"extra"},
		{"--trace", "x", "--duration", "1s"},
	} {
		var stdout, stderr bytes.Buffer
		if err := cmdBenchWrk(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

// TestBenchStreamsSmoke holds a few streams open through the warden binary:
// every one ends whole after release, and Warden's goroutines come back to
// their baseline. It checks shapes, never sizes.
func TestBenchStreamsSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchStreams(ctx, []string{"--n", "40", "--ramp", "10", "--hold", "100ms", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("streams bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep streamsReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if rep.EndedWhole != 40 || rep.Open.OpenStreams != 40 || rep.Open.StandinHolds != 40 {
		t.Errorf("ended whole %d, open %d, held by the stand-in %d; want 40 each", rep.EndedWhole, rep.Open.OpenStreams, rep.Open.StandinHolds)
	}
	if rep.Open.Goroutines < rep.Baseline.Goroutines+40 || rep.After.Goroutines > rep.Baseline.Goroutines+8 {
		t.Errorf("goroutines baseline %d, open %d, after %d", rep.Baseline.Goroutines, rep.Open.Goroutines, rep.After.Goroutines)
	}
	if rep.Open.RSSKiB <= 0 || rep.Open.HeapInuse <= 0 || rep.Collected.HeapInuse <= 0 {
		t.Errorf("no readings: open %+v, collected %+v", rep.Open, rep.Collected)
	}
}
