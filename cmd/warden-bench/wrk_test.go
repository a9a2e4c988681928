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
	"github.com/warden-egress/warden/internal/benchtext"
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
	needWrkAndNginx(t)
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
	needWrkAndNginx(t)
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
	text := detect.Normalize(benchtext.Prose(64 << 10))
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
	// The target is 500 MB, so the projection is in MB (10^6 bytes), not
	// the MiB of the table: 10^6 MiB are 1.048576 × 10^6 MB.
	kib := float64(rep.Baseline.RSSKiB) + rep.PerStreamKiB*10000
	if mb := kib * 1024 / 1e6; rep.ProjectedMB10k < mb*0.999 || rep.ProjectedMB10k > mb*1.001 {
		t.Errorf("projected %.1f MB for 10,000 streams, want %.1f (%.0f KiB)", rep.ProjectedMB10k, mb, kib)
	}
}

// TestBenchWrkGoFloor runs the two Go-floor proxies of --go-floor (a
// synchronous upstream client under net/http's server, and no net/http
// server at all): every call through them must succeed like through the
// other modes, so the floor they measure is a working proxy's.
func TestBenchWrkGoFloor(t *testing.T) {
	needWrkAndNginx(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--runs", "1", "--duration", "1s", "--json", "--go-floor", "--scenarios", "4KB-c32,800KB-c1"}
	if err := cmdBenchWrk(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("wrk bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep wrkReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	for _, sc := range []string{"4KB-c32", "800KB-c1"} {
		for _, m := range []string{wmStore, wmGoSync, wmGoRaw} {
			s := rep.Median[sc][m]
			if s.RPS <= 0 || s.P50 <= 0 || s.P99 < s.P50 {
				t.Errorf("%s %s: implausible sample %+v", sc, m, s)
			}
		}
	}
}

// TestWrkAddedRatio pins how the report compares tails: Warden's added
// metric over the bare proxy's, and the whole metric in runs where the
// direct call's own is at or above the bare proxy's (added is undefined).
func TestWrkAddedRatio(t *testing.T) {
	run := func(direct, bare, warden float64) map[string]wrkSample {
		return map[string]wrkSample{wmDirect: {P99: direct, P50: 1, RPS: 1}, wmBare: {P99: bare, P50: 2, RPS: 1},
			wmNginx: {P99: 1, P50: 1, RPS: 1}, wmWarden: {P99: warden, P50: 3, RPS: 1}, wmNoGuard: {P99: 1, P50: 1, RPS: 1}}
	}
	cases := []struct {
		name     string
		runs     []map[string]wrkSample
		want     float64 // median of per-run ratios
		pass     bool
		wholeTag bool
	}{
		{"added", []map[string]wrkSample{run(100, 300, 400), run(100, 300, 400), run(100, 300, 400)}, 1.5, true, false},
		{"added, over", []map[string]wrkSample{run(100, 200, 400), run(100, 200, 400), run(100, 200, 400)}, 3, false, false},
		{"direct above", []map[string]wrkSample{run(900, 300, 600), run(900, 300, 600), run(900, 300, 600)}, 2, false, true},
		{"mixed", []map[string]wrkSample{run(100, 300, 350), run(900, 300, 330), run(100, 300, 350)}, 1.25, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			samples := map[string]map[string][]wrkSample{"4KB-c32": {}}
			for _, r := range tc.runs {
				for m, s := range r {
					samples["4KB-c32"][m] = append(samples["4KB-c32"][m], s)
				}
			}
			o := &wrkOptions{runs: len(tc.runs), modes: wrkModes}
			rep := buildWrkReport(o, []wrkScenario{{Name: "4KB-c32"}}, samples, nil)
			var got *wrkRatio
			for i := range rep.Ratios {
				if strings.HasPrefix(rep.Ratios[i].Name, "4KB-c32: Warden added p99") {
					got = &rep.Ratios[i]
				}
			}
			if got == nil || got.PerRunMed == nil {
				t.Fatalf("no p99 ratio in %+v", rep.Ratios)
			}
			if d := *got.PerRunMed - tc.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("median of per-run ratios %v, want %v (%s)", *got.PerRunMed, tc.want, got.Name)
			}
			if got.Pass != tc.pass {
				t.Errorf("pass %v, want %v (%s)", got.Pass, tc.pass, got.Name)
			}
			if strings.Contains(got.Name, "whole p99") != tc.wholeTag {
				t.Errorf("row %q: want the whole-metric note %v", got.Name, tc.wholeTag)
			}
		})
	}
}

// needWrkAndNginx fails (in CI) or skips the test without Debian's wrk and
// nginx-light, which the wrk bench drives and compares with.
func needWrkAndNginx(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"/usr/bin/wrk", "/usr/sbin/nginx"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, "%s is missing (apt-get install wrk nginx-light; scripts/test installs them as root)", bin)
		}
	}
}
