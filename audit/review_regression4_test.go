package audit

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReviewCloseVsInflight(t *testing.T) {
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
		if len(res.Problems) > 0 || panics.Load() > 0 {
			t.Logf("iter %d: panics=%d problems=%d first=%v", iter, panics.Load(), len(res.Problems), res.Problems[:min(2, len(res.Problems))])
		}
	}
}
