package audit

import (
	"strings"
	"testing"
	"time"
)

func TestReviewTwoSegmentsRefusesAtBoundary(t *testing.T) {
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
