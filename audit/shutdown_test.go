package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// seqsOf reads the chain seqs of delivered lines.
func seqsOf(t *testing.T, lines []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, l := range lines {
		tr, err := ParseTrailer([]byte(l))
		if err != nil {
			t.Fatalf("line without a trailer: %v: %s", err, l)
		}
		out = append(out, tr.Seq)
	}
	return out
}

// TestShutdownLeftover: a shutdown that ends before a sink caught up
// reports exactly the lines that sink lacks (count and seq range, in the
// return, the final log line and the gauges), across restarts; a sink that
// caught up reports none.
func TestShutdownLeftover(t *testing.T) {
	cases := []struct {
		name string
		// the second sink's lines delivered before it goes down (0: dead
		// from the start)
		deliverFirst int
		spool        bool
	}{
		{"dead from the start", 0, true},
		{"dies after some batches", 20, true},
		{"no spool: lost", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := newMemSink()
			bad := &namedSink{memSink: newMemSink(), name: "bad"}
			dir := ""
			if tc.spool {
				dir = t.TempDir()
			}
			core, logs := observer.New(zap.InfoLevel)
			reg := prometheus.NewRegistry()
			o := testOptions(dir, good, bad)
			o.BatchMax = 10
			o.Logger, o.Registry = zap.New(core), reg
			if tc.deliverFirst == 0 {
				bad.fail = 1 << 30
			}
			p, err := Open(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 30 {
				p.Write(callRecord(i))
			}
			if tc.deliverFirst > 0 {
				waitUntil(t, func() bool { l, _ := bad.snapshot(); return len(l) >= tc.deliverFirst })
				bad.mu.Lock()
				bad.fail = 1 << 30
				bad.mu.Unlock()
				for i := 30; i < 45; i++ {
					p.Write(callRecord(i))
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			// The good sink catches up at once; the bad one never will.
			go func() {
				waitUntil(t, func() bool { return p.shippers[0].delivered.Load() == p.seqNow()[0] && p.draining.Load() })
				cancel()
			}()
			left, err := p.Shutdown(ctx)
			if err != nil {
				t.Fatal(err)
			}
			goodLines, _ := good.snapshot()
			badLines, _ := bad.snapshot()
			all := seqsOf(t, goodLines)
			head := all[len(all)-1]
			if uint64(len(all)) != head || all[0] != 1 {
				t.Fatalf("good sink got seqs %v", all)
			}
			gotBad := seqsOf(t, badLines)
			wantFirst := uint64(len(gotBad)) + 1
			want := Leftover{Kept: tc.spool, Lines: head - wantFirst + 1, FirstSeq: wantFirst, LastSeq: head,
				Sinks: []SinkLeftover{{Sink: "mem"}, {Sink: "bad", Lines: head - wantFirst + 1, FirstSeq: wantFirst, LastSeq: head}}}
			if tc.deliverFirst > 0 && len(gotBad) < tc.deliverFirst {
				t.Fatalf("bad sink got %d lines before dying, want ≥ %d", len(gotBad), tc.deliverFirst)
			}
			if !equalLeftover(left, want) {
				t.Errorf("leftover %+v, want %+v", left, want)
			}
			for _, s := range []struct {
				sink      string
				delivered uint64
			}{{"mem", head}, {"bad", wantFirst - 1}} {
				m, err := testutil.GatherAndCount(reg, "warden_audit_undelivered_lines")
				if err != nil || m != 2 {
					t.Fatalf("undelivered series: %d %v", m, err)
				}
				if got := gaugeValue(t, reg, "warden_audit_sink_delivered_seq", s.sink); got != float64(s.delivered) {
					t.Errorf("%s delivered_seq %v, want %d", s.sink, got, s.delivered)
				}
				if got := gaugeValue(t, reg, "warden_audit_undelivered_lines", s.sink); got != float64(head-s.delivered) {
					t.Errorf("%s undelivered %v, want %d", s.sink, got, head-s.delivered)
				}
			}
			final := logs.FilterMessageSnippet("audit shutdown").All()
			if len(final) != 1 {
				t.Fatalf("%d final lines: %v", len(final), logs.All())
			}
			f := final[0].ContextMap()
			if f["undelivered_lines"] != want.Lines || f["first_seq"] != want.FirstSeq || f["last_seq"] != want.LastSeq || f["kept_in_spool"] != tc.spool {
				t.Errorf("final log line %q %v, want %+v", final[0].Message, f, want)
			}
			if tc.spool != strings.Contains(final[0].Message, "next start") {
				t.Errorf("final line %q does not say where the lines are", final[0].Message)
			}
			if !tc.spool {
				return
			}
			// The next start delivers exactly what was left.
			again := &namedSink{memSink: newMemSink(), name: "bad"}
			o2 := testOptions(dir, newMemSink(), again)
			p2, err := Open(t.Context(), o2)
			if err != nil {
				t.Fatal(err)
			}
			if d := p2.shippers[1].delivered.Load(); d != wantFirst-1 {
				t.Errorf("restarted bad sink starts at delivered %d, want %d", d, wantFirst-1)
			}
			if err := p2.Close(); err != nil {
				t.Fatal(err)
			}
			re, _ := again.snapshot()
			seqs := seqsOf(t, re)
			if len(seqs) == 0 || seqs[0] != wantFirst {
				t.Errorf("after restart the bad sink got seqs from %v, want from %d", seqs[:min(3, len(seqs))], wantFirst)
			}
		})
	}
}

// TestShutdownSlowSinkDeliversAll: a slow sink still gets every line when the
// drain has the time.
func TestShutdownSlowSinkDeliversAll(t *testing.T) {
	slow := newMemSink()
	slow.block = make(chan struct{})
	go func() {
		for {
			select {
			case slow.block <- struct{}{}:
			case <-t.Context().Done():
				return
			}
		}
	}()
	o := testOptions(t.TempDir(), slow)
	o.BatchMax = 3
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		p.Write(callRecord(i))
	}
	left, err := p.Shutdown(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := slow.snapshot()
	seqs := seqsOf(t, lines)
	if left.Lines != 0 || left.Sinks[0].Lines != 0 || uint64(len(seqs)) != seqs[len(seqs)-1] {
		t.Errorf("leftover %+v with %d lines delivered (last seq %d)", left, len(seqs), seqs[len(seqs)-1])
	}
	if again, err := p.Shutdown(t.Context()); err != nil || again.Lines != 0 || again.Sinks != nil {
		t.Errorf("second Shutdown: %+v %v", again, err)
	}
}

// waitUntil polls cond (no wall-clock assertion: the test's own deadline
// bounds it).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type namedSink struct {
	*memSink
	name string
}

func (n *namedSink) Name() string { return n.name }

func (p *Pipeline) seqNow() []uint64 {
	p.sp.mu.Lock()
	defer p.sp.mu.Unlock()
	return []uint64{p.seq}
}

func equalLeftover(a, b Leftover) bool {
	if a.Lines != b.Lines || a.FirstSeq != b.FirstSeq || a.LastSeq != b.LastSeq || a.Kept != b.Kept || len(a.Sinks) != len(b.Sinks) {
		return false
	}
	for i := range a.Sinks {
		if a.Sinks[i] != b.Sinks[i] {
			return false
		}
	}
	return true
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{sink=%q}", name, sink)
	return 0
}
