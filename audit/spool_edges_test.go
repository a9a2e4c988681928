package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A call that began in an old segment (kept alive by a longer call) and
// completed in a later one is not sealed as incomplete after a crash, even
// when gc has removed segments in between.
func TestSpoolGCKeepsCompletionOfOldIntent(t *testing.T) {
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

// With fsync on, a Write racing Close after the flusher has exited returns
// instead of waiting forever for durability.
func TestSpoolFsyncWriteAfterFlusherExitReturns(t *testing.T) {
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

// Records written without Begin (refusals and denials) cannot use the reserve
// kept for completing calls that began: the begun call's completion still fits
// once the spool is full.
func TestSpoolReserveKeptForBegunCalls(t *testing.T) {
	sink := newMemSink()
	sink.block = make(chan struct{})
	o := testOptions(t.TempDir(), sink)
	o.MaxBytes = 4 * o.SegmentBytes
	o.DrainWithin = 50 * time.Millisecond
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	// an in-flight call that began
	inflight := callRecord(999999)
	if err := p.Begin(inflight); err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; ; i++ {
		r := callRecord(i)
		r.Reason = strings.Repeat("x", 500)
		if err := p.Begin(r); err != nil {
			if !errors.Is(err, ErrSpoolFull) {
				t.Fatal(err)
			}
			break
		}
		p.Write(r)
	}
	// now: spool full for Begin. Refused calls still write their record (proxy finish()).
	for j := 0; j < 200; j++ {
		r := callRecord(100000 + j)
		r.Reason = strings.Repeat("y", 500)
		r.Decision = "deny"
		p.Write(r)
	}
	err = p.write(inflight, roomComplete)
	t.Logf("completion of begun call: %v", err)
	if errors.Is(err, ErrSpoolFull) {
		t.Errorf("begun call's completion lost: %v", err)
	}
	close(sink.block)
	_ = p.Close()
}

// A failed segment creation (the spool directory briefly replaced by a file)
// makes Begin fail, not deadlock the next rotation, and the spool recovers when
// the directory is back.
func TestSpoolSegmentCreationFailureRecovers(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "spool")
	sink := newMemSink()
	o := testOptions(sdir, sink)
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Closed before t.TempDir's cleanup (cleanups run last-registered first), so
	// the spool's background segment creation is not racing the removal.
	t.Cleanup(func() { _ = p.Close() })
	// make the spare's and the appender's creation fail once: remove the spare file... simulate by
	// taking the spare and replacing the dir with a file.
	time.Sleep(100 * time.Millisecond)
	// Remove current spare file from channel to force failure: rename the dir away and put a file.
	os.Rename(sdir, sdir+".away")
	os.WriteFile(sdir, []byte("x"), 0o600)
	// spare was created before rename; it is valid, so first rotation takes it. Fill to rotate twice.
	done := make(chan struct{})
	var failures, lastErrAt int
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			r := callRecord(i)
			r.Reason = strings.Repeat("x", 500)
			if err := p.Begin(r); err != nil {
				if errors.Is(err, ErrSpoolFull) { // nothing ships in this test: the spool fills
					break
				}
				if failures == 0 {
					t.Logf("Begin %d: %v", i, err)
				}
				failures++
				lastErrAt = i
			}
			if i == 300 {
				os.Remove(sdir)
				os.Rename(sdir+".away", sdir)
			}
			p.Write(r)
		}
	}()
	select {
	case <-done:
		if failures == 0 || lastErrAt > 400 {
			t.Errorf("segment creation failed %d times, last at call %d: want failures while the directory was away, and recovery after", failures, lastErrAt)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("DEADLOCK: appends blocked (spare channel)")
	}
}

// With the smallest spool the config allows (two segments) and a sink that
// keeps up, no call is refused with ErrSpoolFull at a segment boundary.
func TestSpoolMinimumSizeAcceptsWhileSinkKeepsUp(t *testing.T) {
	sink := newMemSink()
	o := testOptions(t.TempDir(), sink)
	o.MaxBytes = 2 * o.SegmentBytes // the minimum config validation allows
	o.ShareApp = 1                  // the spool's boundary is under test, not one app's share of it
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := 0; i < 2000; i++ {
		r := callRecord(i)
		r.Reason = strings.Repeat("x", 300)
		if err := p.Begin(r); err != nil {
			refused++
		}
		p.Write(r)
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // sink keeps up
		}
	}
	p.Close()
	if refused > 0 {
		t.Errorf("%d calls refused with ErrSpoolFull though the sink keeps up", refused)
	}
}

// Close while eight goroutines Begin and Write does not panic them.
func TestSpoolCloseDuringInflightWrites(t *testing.T) {
	for iter := 0; iter < 30; iter++ {
		sink := newMemSink()
		o := testOptions(t.TempDir(), sink)
		o.DrainWithin = 200 * time.Millisecond
		p, err := Open(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var panics atomic.Int32
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if r := recover(); r != nil {
						panics.Add(1)
						t.Logf("panic: %v", r)
					}
				}()
				for i := 0; !stop.Load(); i++ {
					r := callRecord(i)
					r.Reason = strings.Repeat("x", 200)
					if p.Begin(r) == nil {
						p.Write(r)
					}
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		p.Close()
		time.Sleep(5 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		lines, _ := sink.snapshot()
		res := verifyLines(lines, VerifyOptions{})
		if panics.Load() > 0 {
			t.Errorf("iter %d: %d writers panicked when Close raced them", iter, panics.Load())
		}
		if len(res.Problems) > 0 {
			t.Logf("iter %d: panics=%d problems=%d first=%v", iter, panics.Load(), len(res.Problems), res.Problems[:min(2, len(res.Problems))])
		}
	}
}
