package audit

import (
	"strings"
	"testing"
	"time"
)

func TestReviewRedelivery2(t *testing.T) {
	sink := newMemSink()
	p, err := Open(t.Context(), testOptions("", sink))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r := callRecord(i)
		p.Begin(r)
		p.Write(r)
	}
	p.Close()
	lines, _ := sink.snapshot()
	// file sink partial write: lines[0..5] written, error, retry writes the whole batch again
	all := append(append([]string{}, lines[:5]...), lines...)
	res := verifyLines(all, VerifyOptions{})
	t.Logf("dups=%d problems=%v", res.Duplicates, res.Problems)
	for _, p := range res.Problems {
		if p.Kind == ProblemReordered {
			t.Errorf("false positive on at-least-once re-delivery: %v", p)
			break
		}
	}
}

// An intent in an old segment kept alive by a long call; the completion of
// another intent in that segment lives in a later segment that gc removes.
func TestReviewSpuriousIncompleteAfterGC(t *testing.T) {
	dir := t.TempDir()
	sink := newMemSink()
	o := testOptions(dir, sink)
	o.MaxBytes = 64 * o.SegmentBytes
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	long := callRecord(1)
	if err := p.Begin(long); err != nil {
		t.Fatal(err)
	}
	short := callRecord(2)
	if err := p.Begin(short); err != nil {
		t.Fatal(err)
	}
	// fill several segments before short completes
	for i := 10; i < 300; i++ {
		r := callRecord(i)
		r.Reason = strings.Repeat("x", 500)
		p.Begin(r)
		p.Write(r)
	}
	p.Write(short) // completion lands in a later segment
	for i := 300; i < 800; i++ {
		r := callRecord(i)
		r.Reason = strings.Repeat("x", 500)
		p.Begin(r)
		p.Write(r)
	}
	time.Sleep(300 * time.Millisecond) // let shippers deliver and gc
	p.sp.mu.Lock()
	var ns []uint64
	for _, s := range p.sp.segs {
		ns = append(ns, s.n)
	}
	p.sp.mu.Unlock()
	t.Logf("live segments: %v", ns)
	crash(p)
	sink2 := newMemSink()
	p2, err := Open(t.Context(), testOptions(dir, sink2))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	p2.Close()
	lines, _ := sink2.snapshot()
	for _, l := range lines {
		if strings.Contains(l, `"incomplete":true`) {
			r, _ := DecodeRecord([]byte(l))
			t.Logf("incomplete sealed for %s", r.RequestID)
			if r.RequestID == short.RequestID {
				t.Errorf("spurious incomplete record for a call completed before the crash")
			}
		}
	}
}

// fsync: a Write that races Close after the flusher exits hangs forever.
func TestReviewFsyncWriteAfterFlusherExitHangs(t *testing.T) {
	o := testOptions(t.TempDir())
	o.Fsync = true
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	// emulate the interleaving: Close has stopped the flusher but not yet unmapped
	p.sp.syncMu.Lock()
	p.sp.closing = true
	p.sp.syncCond.Broadcast()
	p.sp.syncMu.Unlock()
	p.sp.flusher.Wait()
	done := make(chan struct{})
	go func() { r := callRecord(1); p.Write(r); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Errorf("Write hangs in waitDurable once the flusher has exited")
	}
}
