package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memSink keeps delivered entries; fail makes the next n writes fail.
type memSink struct {
	mu      sync.Mutex
	lines   []string
	ids     []string
	fail    int
	calls   int
	block   chan struct{} // when set, Write waits on it
	written chan struct{}
}

func newMemSink() *memSink { return &memSink{written: make(chan struct{}, 1)} }

func (m *memSink) Name() string { return "mem" }
func (m *memSink) Close() error { return nil }
func (m *memSink) Write(ctx context.Context, batch []Entry) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail > 0 {
		m.fail--
		return errors.New("sink down")
	}
	for _, e := range batch {
		m.lines = append(m.lines, string(e.Line))
		m.ids = append(m.ids, e.ID)
	}
	select {
	case m.written <- struct{}{}:
	default:
	}
	return nil
}

func (m *memSink) snapshot() ([]string, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...), append([]string(nil), m.ids...)
}

func testOptions(dir string, sinks ...Sink) Options {
	return Options{Dir: dir, Instance: "test-1", SegmentBytes: 64 << 10, MaxBytes: 1 << 20, Sinks: sinks,
		BatchMax: 50, BatchWait: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, DrainWithin: 5 * time.Second,
		CheckpointEvery: 25, CheckpointInterval: time.Hour}
}

func callRecord(i int) *Record {
	return &Record{Time: time.Date(2026, 12, 1, 1, 2, 3, i, time.UTC), RequestID: fmt.Sprintf("req-%04d", i), App: "app",
		Operation: "Converse", Model: "m", Decision: "allow", Status: 200, BytesIn: int64(i)}
}

// verifyLines runs the verifier over lines as one source.
func verifyLines(lines []string, o VerifyOptions) *Verification {
	v := NewVerifier(o)
	for _, l := range lines {
		v.Add("mem", []byte(l))
	}
	return v.Finish()
}

func TestPipelineDeliversSealedChain(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run("dir="+dir, func(t *testing.T) {
			if dir != "" {
				dir = t.TempDir()
			}
			sink := newMemSink()
			p, err := Open(t.Context(), testOptions(dir, sink))
			if err != nil {
				t.Fatal(err)
			}
			const n = 120
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := callRecord(i)
					if err := p.Begin(r); err != nil {
						t.Error(err)
					}
					p.Write(r)
				}()
			}
			wg.Wait()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			lines, ids := sink.snapshot()
			calls := 0
			seen := map[string]bool{}
			for i, id := range ids {
				if strings.Contains(id, "/checkpoint/") {
					continue
				}
				calls++
				if seen[id] {
					t.Errorf("record %s delivered twice", id)
				}
				seen[id] = true
				if !strings.Contains(lines[i], `"instance":"test-1"`) {
					t.Errorf("line lacks the instance: %s", lines[i])
				}
			}
			if calls != n {
				t.Fatalf("%d call records delivered, want %d", calls, n)
			}
			if !strings.Contains(lines[0], `"reason":"start"`) || !strings.Contains(lines[len(lines)-1], `"final":true`) {
				t.Errorf("want a start checkpoint first and a final one last:\n%s\n%s", lines[0], lines[len(lines)-1])
			}
			res := verifyLines(lines, VerifyOptions{Keys: []string{p.PublicKey()}})
			// A start, a final and at least one periodic checkpoint: the
			// writers that cross checkpoint.every sign one after their
			// records are durable, and every record sealed meanwhile
			// joins it (a CI run under -race with fsync saw all 120
			// sealed before the first was signed: three checkpoints).
			if len(res.Problems) != 0 || len(res.Chains) != 1 || res.Chains[0].Records != n || res.Chains[0].Checkpoints < 3 {
				t.Fatalf("verification: %+v", res)
			}
		})
	}
}

func TestPipelineRetriesFailingSink(t *testing.T) {
	sink := newMemSink()
	sink.fail = 3
	p, err := Open(t.Context(), testOptions(t.TempDir(), sink))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		r := callRecord(i)
		p.Write(r)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines, _ := sink.snapshot()
	if sink.calls < 4 {
		t.Errorf("sink called %d times, want the failures retried", sink.calls)
	}
	if res := verifyLines(lines, VerifyOptions{}); len(res.Problems) != 0 || res.Chains[0].Records != 40 {
		t.Fatalf("after retries: %+v", res)
	}
}

// crash abandons a pipeline as a SIGKILL would: no final checkpoint, no
// drain, cursors as last saved.
func crash(p *Pipeline) {
	p.closed.Store(true)
	p.cancel()
	close(p.stop)
	p.wg.Wait()
	for _, sh := range p.shippers {
		if sh.cur != nil {
			sh.cur.Close()
		}
	}
	p.sp.unmapAll()
}

func TestPipelineRecoversAfterCrash(t *testing.T) {
	dir := t.TempDir()
	down := newMemSink()
	down.fail = 1 << 30 // the sink never accepts before the crash
	p, err := Open(t.Context(), testOptions(dir, down))
	if err != nil {
		t.Fatal(err)
	}
	var open []*Record
	for i := range 10 {
		r := callRecord(i)
		if err := p.Begin(r); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			open = append(open, r) // forwarded, never completed
			continue
		}
		p.Write(r)
	}
	p.Write(callRecord(100)) // a denial: no intent
	crash(p)

	sink := newMemSink()
	p2, err := Open(t.Context(), testOptions(dir, sink))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	lines, ids := sink.snapshot()
	got := map[string]string{}
	for i, id := range ids {
		got[id] = lines[i]
	}
	for i := range 10 {
		id := fmt.Sprintf("req-%04d", i)
		l, ok := got[id]
		if !ok {
			t.Errorf("no record for %s after the crash", id)
			continue
		}
		incomplete := strings.Contains(l, `"incomplete":true`)
		if incomplete != (i%3 == 0) {
			t.Errorf("%s incomplete=%v: %s", id, incomplete, l)
		}
	}
	if _, ok := got["req-0100"]; !ok {
		t.Error("the denial's record was lost")
	}
	if len(open) != 4 {
		t.Fatal("test setup")
	}
	res := verifyLines(lines, VerifyOptions{Keys: []string{p2.PublicKey()}})
	if len(res.Problems) != 0 || res.Chains[0].Records != 11 {
		t.Fatalf("chain across the crash: %+v", res)
	}
	// The spool keeps the instance and its key across restarts.
	if p2.Instance() != "test-1" || p2.PublicKey() != p.PublicKey() {
		t.Error("instance or key changed across a restart")
	}
}

func TestPipelineResumesFromCursor(t *testing.T) {
	dir := t.TempDir()
	sink := newMemSink()
	o := testOptions(dir, sink)
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		p.Write(callRecord(i))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	first, _ := sink.snapshot()

	sink2 := newMemSink()
	p2, err := Open(t.Context(), testOptions(dir, sink2))
	if err != nil {
		t.Fatal(err)
	}
	for i := 30; i < 40; i++ {
		p2.Write(callRecord(i))
	}
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	second, ids := sink2.snapshot()
	for _, id := range ids {
		if strings.HasPrefix(id, "req-00") && id < "req-0030" {
			t.Errorf("%s delivered again after a clean shutdown", id)
		}
	}
	res := verifyLines(append(first, second...), VerifyOptions{})
	if len(res.Problems) != 0 || res.Chains[0].Records != 40 {
		t.Fatalf("two runs: %+v", res)
	}
}

func TestPipelineSpoolFull(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprint("drop=", drop), func(t *testing.T) {
			sink := newMemSink()
			sink.block = make(chan struct{})
			o := testOptions(t.TempDir(), sink)
			o.MaxBytes = 2 * o.SegmentBytes
			o.DropWhenFull = drop
			o.DrainWithin = 50 * time.Millisecond
			p, err := Open(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			var full error
			n := 0
			for i := range 10000 {
				r := callRecord(i)
				r.Reason = strings.Repeat("x", 500)
				if full = p.Begin(r); full != nil {
					break
				}
				p.Write(r)
				n++
			}
			if drop {
				if full != nil {
					t.Fatalf("drop mode refused: %v", full)
				}
			} else if !errors.Is(full, ErrSpoolFull) {
				t.Fatalf("after %d calls Begin = %v, want ErrSpoolFull", n, full)
			}
			close(sink.block)
			_ = p.Close()
		})
	}
}

func TestSpoolTornTailIsDropped(t *testing.T) {
	dir := t.TempDir()
	p, err := Open(t.Context(), testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		p.Write(callRecord(i))
	}
	seg := p.sp.segs[len(p.sp.segs)-1]
	end := seg.end.Load()
	crash(p)
	// Corrupt the last frame's payload: recovery must stop before it.
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XX"), end-3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(seg.path)
	if got := scanEnd(data); got >= end || got == 0 {
		t.Fatalf("scanEnd = %d, want less than %d", got, end)
	}
	sink := newMemSink()
	p2, err := Open(t.Context(), testOptions(dir, sink))
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
	_, ids := sink.snapshot()
	if len(ids) == 0 {
		t.Fatal("nothing recovered")
	}
	_ = binary.LittleEndian
	_ = filepath.Join
}
