package calltrace

import (
	"bytes"
	"context"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// record traces n calls shaped like Warden's (a task per call, a region
// per stage, a wait on a channel in "forward") and returns the trace.
func record(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatalf("starting an execution trace: %v (is the test run with -trace?)", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ctx, task := trace.NewTask(context.Background(), TaskType)
		for _, st := range []string{"parse", "identify", "authorize", "inspect"} {
			trace.WithRegion(ctx, st, func() { spin(20 * time.Microsecond) })
		}
		done := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); time.Sleep(200 * time.Microsecond); close(done) }()
		trace.WithRegion(ctx, "forward", func() { <-done })
		if i == n/2 {
			runtime.GC() // one call overlaps a collection
		}
		trace.WithRegion(ctx, "record", func() { spin(10 * time.Microsecond) })
		task.End()
	}
	wg.Wait()
	trace.Stop()
	return buf.Bytes()
}

func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

func TestReadSplitsCalls(t *testing.T) {
	data := record(t, 40)
	tr, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Calls) != 40 {
		t.Fatalf("%d calls, want 40", len(tr.Calls))
	}
	if tr.GCs < 1 || len(tr.Pauses) < 1 || tr.Span <= 0 {
		t.Errorf("GCs %d, pauses %d, span %v: the forced collection is missing", tr.GCs, len(tr.Pauses), tr.Span)
	}
	gcCalls := 0
	for i, c := range tr.Calls {
		d := c.Duration()
		var states time.Duration
		for _, v := range c.States {
			states += v
		}
		if states < d*9/10 || states > d {
			t.Errorf("call %d: %v long, states sum to %v (%v)", i, d, states, c.States)
		}
		if c.Stages["forward"] < 200*time.Microsecond || c.Stages["parse"] < 20*time.Microsecond || c.Stages["record"] == 0 {
			t.Errorf("call %d: stages %v", i, c.Stages)
		}
		// The forward stage blocks on a channel: the goroutine waits.
		var waited time.Duration
		for k, v := range c.States {
			if strings.HasPrefix(k, "waiting: ") {
				waited += v
			}
		}
		if waited < 150*time.Microsecond {
			t.Errorf("call %d: waited %v in %v; the forward stage blocks ≥ 200 µs", i, waited, c.States)
		}
		if c.STW > 0 || c.GCMark > 0 {
			gcCalls++
		}
	}
	if gcCalls == 0 {
		t.Error("no call overlapped the collection forced inside one")
	}
	s, err := Summarize([]*Trace{tr}, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if s.Calls != 40 || s.TailCalls != 4 || s.Rows[0].Name != "wall (task begin to end)" || s.PauseMax < s.PauseP50 {
		t.Errorf("summary %+v", s)
	}
	var out strings.Builder
	s.Format(&out, "t")
	for _, want := range []string{"| stage parse |", "| stage forward |", "| goroutine running |", "overlapped a GC", "stop-the-world pauses"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := Summarize([]*Trace{{Calls: tr.Calls[:5]}}, 0.9); err == nil {
		t.Error("5 calls summarized; want an error (too few)")
	}
	if _, err := Summarize([]*Trace{tr}, 1); err == nil {
		t.Error("quantile 1 accepted")
	}
}

// FuzzRead: any bytes give calls or an error, never a panic or a hang.
func FuzzRead(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("go 1.26 trace\x00\x00\x00"))
	f.Add(record(f, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Read(bytes.NewReader(data))
		if err == nil {
			for _, c := range tr.Calls {
				if c.End < c.Start {
					t.Fatalf("a call ends before it starts: %+v", c)
				}
			}
		}
	})
}
