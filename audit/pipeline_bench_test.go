package audit

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countSink discards entries and counts them.
type countSink struct{ n atomic.Int64 }

func (c *countSink) Name() string { return "count" }
func (c *countSink) Close() error { return nil }
func (c *countSink) Write(_ context.Context, b []Entry) error {
	c.n.Add(int64(len(b)))
	return nil
}

// benchRecord is a typical allowed Converse call's record (~700 bytes).
func benchRecord() *Record {
	return &Record{Time: time.Now(), RequestID: "6f1c1c0e-8d7b-4b0a-9f4e-2b8a3c1d5e7f", UpstreamRequestID: "b1c2d3e4-aaaa-bbbb-cccc-1234567890ab",
		Client: "10.1.2.3:45678", Protocol: "HTTP/1.1", IdentitySource: "kubernetes",
		Tags: map[string]string{"k8s.namespace": "payments", "k8s.serviceaccount": "api", "k8s.label.app": "checkout"},
		App:  "payments-prod", Operation: "Converse", Model: "anthropic.claude-3-5-sonnet-20240620-v1:0", ModelCanonical: "anthropic.claude-3-5-sonnet-20240620-v1:0",
		PolicyHash: "0123456789abcdef", Decision: "allow", Rule: "apps[3].allow[0]", Reason: "allowed by app payments-prod", Status: 200,
		PromptSHA256:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ResponseSHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
		Usage:          Usage{Known: true, Input: 812, Output: 233}, CostUSD: 0.0059, CostKnown: true,
		BytesIn: 4096, BytesOut: 1500, Latency: 2 * time.Second, UpstreamLatency: 1900 * time.Millisecond, UpstreamTotal: 1990 * time.Millisecond}
}

// BenchmarkPipelineCall is the audit hot path of one forwarded call: the
// intent before forwarding and the sealed record after, with a shipper
// draining to a discarding sink concurrently. Parallel, like the proxy.
func BenchmarkPipelineCall(b *testing.B) {
	for _, mode := range []string{"memory", "process", "fsync", "fsync-64-callers"} {
		b.Run(mode, func(b *testing.B) {
			dir := ""
			if mode != "memory" {
				dir = b.TempDir()
			}
			if mode == "fsync-64-callers" {
				b.SetParallelism(32) // × GOMAXPROCS goroutines share each group commit
			}
			sink := &countSink{}
			o := Options{Dir: dir, Instance: "bench", Fsync: strings.HasPrefix(mode, "fsync"), SegmentBytes: 64 << 20, MaxBytes: 1 << 30,
				Sinks: []Sink{sink}, BatchMax: 1000, BatchWait: 10 * time.Millisecond, CheckpointEvery: 1000, CheckpointInterval: time.Second}
			p, err := Open(b.Context(), o)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := benchRecord()
					if err := p.Begin(r); err != nil {
						b.Error(err)
						return
					}
					p.Write(r)
				}
			})
			b.StopTimer()
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if got := sink.n.Load(); got < int64(b.N) {
				b.Fatalf("sink got %d lines for %d calls", got, b.N)
			}
		})
	}
}

// BenchmarkVerify measures `warden audit verify` per line.
func BenchmarkVerify(b *testing.B) {
	sink := newMemSink()
	p, err := Open(b.Context(), Options{Instance: "bench", Sinks: []Sink{sink}, BatchMax: 1000, BatchWait: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	for range 10000 {
		p.Write(benchRecord())
	}
	p.Close()
	lines, _ := sink.snapshot()
	b.SetBytes(int64(len(strings.Join(lines, "\n"))))
	b.ResetTimer()
	for range b.N {
		v := NewVerifier(VerifyOptions{})
		for _, l := range lines {
			v.Add("b", []byte(l))
		}
		if res := v.Finish(); len(res.Problems) != 0 {
			b.Fatal(res.Problems)
		}
	}
}

// BenchmarkPipelineToFile is sustained delivery: records go through the
// spool (process durability) and a shipper into the file sink; the clock
// stops when the last one is in the file. Reports records/s.
func BenchmarkPipelineToFile(b *testing.B) {
	dir := b.TempDir()
	sink, err := NewFileSink(FileSinkOptions{Path: dir + "/audit.jsonl"})
	if err != nil {
		b.Fatal(err)
	}
	counted := &countingSink{Sink: sink}
	p, err := Open(b.Context(), Options{Dir: dir + "/spool", Instance: "bench", SegmentBytes: 64 << 20, MaxBytes: 4 << 30,
		Sinks: []Sink{counted}, BatchMax: 1000, BatchWait: 5 * time.Millisecond, CheckpointEvery: 1000, CheckpointInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	rec := benchRecord()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		r := *rec
		for pb.Next() {
			p.Write(&r)
		}
	})
	for counted.calls.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
}

// countingSink counts call records (not checkpoints) a sink accepted.
type countingSink struct {
	Sink
	calls atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, b []Entry) error {
	if err := c.Sink.Write(ctx, b); err != nil {
		return err
	}
	n := 0
	for _, e := range b {
		if !strings.Contains(e.ID, "/checkpoint/") {
			n++
		}
	}
	c.calls.Add(int64(n))
	return nil
}
