package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"os"
	"strings"
	"testing"
	"time"
)

var tinyBenchProxy = []string{"--runs", "1", "--requests", "10", "--requests32", "40", "--warmup", "3",
	"--handshakes", "6", "--leaf-signs", "3", "--chunks", "2"}

// TestBenchProxySmoke runs bench-proxy with tiny numbers and checks the shape
// of the output, never the timings.
func TestBenchProxySmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// goproxy's HTTP/2 server logs through the standard logger.
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	var stdout, stderr bytes.Buffer
	if err := cmdBenchProxy(ctx, tinyBenchProxy, &stdout, &stderr); err != nil {
		t.Fatalf("cmdBenchProxy: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, m := range bpModes {
		if !strings.Contains(out, bpModeTitle[m]) {
			t.Errorf("output lacks mode %q:\n%s", bpModeTitle[m], out)
		}
	}
	for _, want := range []string{
		"Converse p50, c=1", "Converse p99, c=1", "Converse throughput, c=32", "throughput / goproxy",
		"CONNECT + handshake p50", "Warden proxy, warm leaf cache", "cold cache", "warm cache",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s := logged.String(); strings.Contains(s, "http2: server") {
		t.Errorf("a proxy logged an HTTP/2 error:\n%s", s)
	}
}

// TestBenchProxyJSON checks every number is there and positive, with
// proxy-mode clients on HTTP/1.1 this time.
func TestBenchProxyJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchProxy(ctx, append([]string{"--json", "--proto", "h1"}, tinyBenchProxy...), &stdout, &stderr); err != nil {
		t.Fatalf("cmdBenchProxy --json: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep bpReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if rep.Baseline != bpGoproxy || rep.Proto != "h1" {
		t.Errorf("baseline %q, proto %q", rep.Baseline, rep.Proto)
	}
	for _, m := range bpModes {
		r := rep.Modes[m]
		if r == nil || len(r.Runs) != 1 {
			t.Fatalf("mode %s: missing or wrong number of runs: %+v", m, r)
		}
		if r.Median.P50us <= 0 || r.Median.P99us < r.Median.P50us || r.Median.Throughput <= 0 || r.P50Ratio <= 0 || r.ThroughputRatio <= 0 {
			t.Errorf("mode %s: implausible numbers %+v", m, r)
		}
	}
	if r := rep.Modes[bpGoproxy]; r.P50Ratio != 1 || r.ThroughputRatio != 1 {
		t.Errorf("baseline ratios %v / %v, want 1", r.P50Ratio, r.ThroughputRatio)
	}
	for _, m := range bpHandshakeModes {
		h := rep.Handshake[m]
		if h == nil || len(h.Runs) != 1 || h.Median.P50us <= 0 || h.Median.PerSecond <= 0 || h.Median.MeanUsEach <= 0 {
			t.Errorf("handshake %s: %+v", m, h)
		}
	}
	if rep.HandshakeRatio <= 0 || rep.Leaf.ColdP50us <= 0 || rep.Leaf.WarmNs <= 0 || len(rep.LeafRuns) != 1 {
		t.Errorf("handshake ratio %v, leaf %+v", rep.HandshakeRatio, rep.Leaf)
	}
}

func TestBenchProxyFlags(t *testing.T) {
	for _, args := range [][]string{{"--runs", "0"}, {"--handshakes", "0"}, {"--proto", "h3"}, {"--chunks", "0"}, {"--requests", "2", "--chunks", "3"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		if err := cmdBenchProxy(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
