package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/audit/audittest"
	"github.com/warden-egress/warden/internal/testenv"
	"github.com/warden-egress/warden/proxy"
)

// TestSoak is CI's soak: a minute of mixed unary and streaming calls from
// the real Go SDK (a fifth of them hanging up mid-stream), a reload every
// 3 s (one in three an invalid file), the HTTP audit sink down 4 s in every
// 15 s. No call may fail because of a reload, the sink or anything else;
// the sink must receive every call's record in one unbroken chain, records
// under both policies included; and once the load stops, goroutines, open
// fds and the post-GC heap must come back to their warmed-up baseline.
func TestSoak(t *testing.T) {
	o := DefaultOptions()
	o.OutageEvery, o.OutageFor = 15*time.Second, 4*time.Second
	if testing.Short() {
		o.Duration = 20 * time.Second
	}
	var out testenv.Buffer
	rep, err := Soak(context.Background(), o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	// The verdict covers these; they are spelled out so a change to it
	// cannot quietly drop one.
	if n := rep.Calls.failedTotal(causeReload); n != 0 {
		t.Errorf("%d calls failed because of a reload", n)
	}
	if n := rep.Calls.failedTotal(causeOther); n != 0 {
		t.Errorf("%d calls failed for another reason", n)
	}
	if rep.Reloads.Applied < 3 || rep.Reloads.Rejected < 1 {
		t.Errorf("reloads: %d applied, %d rejected; want at least 3 and 1", rep.Reloads.Applied, rep.Reloads.Rejected)
	}
	if rep.Sink.Outages < 1 || rep.Sink.Resumed != rep.Sink.Outages {
		t.Errorf("sink outages %d, delivery resumed after %d", rep.Sink.Outages, rep.Sink.Resumed)
	}
	if want := rep.Calls.Calls; rep.Sink.Records < want {
		t.Errorf("the sink has %d call records for %d calls", rep.Sink.Records, want)
	}
	if !rep.Settled {
		t.Errorf("not back to baseline: %+v, limits %+v (baseline %+v)", rep.Final, rep.Limits, rep.Baseline)
	}
}

// TestSoakCatchesLeaks shows the resource check has teeth: with every
// call leaking a goroutine, a file descriptor and 128 KB of heap (a bug the
// soak exists to find), a short soak fails its verdict on all three.
func TestSoakCatchesLeaks(t *testing.T) {
	o := DefaultOptions()
	o.Duration, o.Warmup, o.Settle, o.ReportEvery = 4*time.Second, time.Second, 2*time.Second, 2*time.Second
	o.ReloadEvery, o.OutageEvery = 0, 0
	stop := make(chan struct{})
	var (
		mu    sync.Mutex
		held  [][]byte
		files []*os.File
	)
	o.afterCall = func() {
		// What a relay that never notices its client left would keep: a
		// goroutine, a file and some memory.
		go func() { <-stop }()
		f, err := os.Open(os.DevNull)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			files = append(files, f)
		}
		if len(held) < 256 { // 32 MB in all, however fast the calls go
			held = append(held, make([]byte, 128<<10))
		}
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	defer close(stop)
	var out bytes.Buffer
	rep, err := Soak(context.Background(), o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settled {
		t.Fatalf("a soak leaking per call settled: final %+v, limits %+v", rep.Final, rep.Limits)
	}
	if rep.Final.Goroutines <= rep.Limits.Goroutines || rep.Final.Heap <= rep.Limits.HeapBytes {
		t.Errorf("the leak was not seen in goroutines and heap: final %+v, limits %+v", rep.Final, rep.Limits)
	}
	if runtime.GOOS == "linux" && rep.Final.FDs <= rep.Limits.FDs {
		t.Errorf("the fd leak was not seen: final %d fds, limit %d", rep.Final.FDs, rep.Limits.FDs)
	}
	if !strings.Contains(out.String(), "verdict: FAIL") {
		t.Error("the verdict did not fail")
	}
	mu.Lock()
	runtime.KeepAlive(held)
	mu.Unlock()
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		hungUp bool
		want   string
	}{
		{"hang-up", fmt.Errorf("operation error: %w", context.Canceled), true, causeDisconnect},
		{"canceled without a hang-up", context.Canceled, false, causeOther},
		{"denied", &types.AccessDeniedException{Message: ptr("no app matches")}, false, causeReload},
		{"denied after a hang-up", &types.AccessDeniedException{Message: ptr("x")}, true, causeReload},
		{"guard mid-stream", &types.ModelStreamErrorException{Message: ptr("guard no-competitors: the response holds WORDS")}, false, causeReload},
		{"model stream error", &types.ModelStreamErrorException{Message: ptr("model failed")}, false, causeOther},
		{"spool full", &types.ServiceUnavailableException{Message: ptr("warden: the audit spool is full (its sinks are behind)")}, false, causeSink},
		{"upstream down", &types.ServiceUnavailableException{Message: ptr("warden: the upstream Bedrock endpoint could not be reached (refused)")}, false, causeOther},
		{"throttled", &types.ThrottlingException{Message: ptr("slow down")}, false, causeOther},
		{"network", errors.New("read: connection reset by peer"), false, causeOther},
		{"no first event", errors.New(disconnectNoEvent), false, causeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err, tc.hungUp); got != tc.want {
				t.Errorf("classify(%v, %v) = %s, want %s", tc.err, tc.hungUp, got, tc.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// chainLines seals n call records through a real (memory-spooled) audit
// pipeline and returns the lines its sink got: records and checkpoints.
func chainLines(t *testing.T, n int) [][]byte {
	t.Helper()
	sink := &audittest.Sink{}
	p, err := audit.Open(context.Background(), audit.Options{Instance: "receiver-test", Sinks: []audit.Sink{sink}, BatchWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &audit.Record{Time: time.Now(), RequestID: fmt.Sprintf("req-%d", i), App: "soak", PolicyHash: "abc", Decision: "allow", Status: 200}
		if err := p.Begin(r); err != nil {
			t.Fatal(err)
		}
		p.Write(r)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range sink.Lines() {
		out = append(out, []byte(l))
	}
	return out
}

// TestReceiverChain: the sink's far end counts each record once however
// often it is delivered, and names a lost, reordered or altered line.
func TestReceiverChain(t *testing.T) {
	lines := chainLines(t, 6)
	if len(lines) < 7 {
		t.Fatalf("want 6 records and checkpoints, got %d lines", len(lines))
	}
	cp := func(ls ...[]byte) [][]byte { return append([][]byte(nil), ls...) } // a copy: cases must not share lines' array
	edited := bytes.Replace(bytes.Clone(lines[3]), []byte(`"app":"soak"`), []byte(`"app":"evil"`), 1)
	for _, tc := range []struct {
		name    string
		lines   [][]byte
		records int64
		dups    int64
		problem string
	}{
		{"in order", lines, 6, 0, ""},
		{"delivered twice", append(append([][]byte{}, lines[:4]...), lines...), 6, 4, ""},
		{"a line lost", append(cp(lines[:2]...), lines[3:]...), 5, 0, "chain gap"},
		{"reordered", append(cp(lines[0], lines[2], lines[1]), lines[3:]...), 6, 1, "chain gap"},
		{"edited", append(append(cp(lines[:3]...), edited), lines[4:]...), 6, 0, "altered"},
		{"not a chain start", lines[1:], 6, 0, "does not start a chain"},
		{"garbage", cp([]byte("{not json")), 0, 0, "undecodable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &receiver{policies: map[string]int64{}}
			for _, l := range tc.lines {
				r.add(l)
			}
			s := r.stats()
			if tc.problem == "" && s.Broken != 0 || tc.problem != "" && !strings.Contains(strings.Join(s.Problems, "|"), tc.problem) {
				t.Errorf("problems %q, want one with %q", s.Problems, tc.problem)
			}
			if tc.problem == "" && (s.Records != tc.records || s.Duplicates != tc.dups) {
				t.Errorf("records %d, duplicates %d; want %d, %d", s.Records, s.Duplicates, tc.records, tc.dups)
			}
		})
	}
}

// FuzzReceiverAdd: no line, however broken, panics the sink's far end.
func FuzzReceiverAdd(f *testing.F) {
	f.Add([]byte(`{"kind":"checkpoint","seq":1,"prev":"00","hash":"00"}`), []byte(`{}`))
	f.Add([]byte(`{"v":2,"seq":18446744073709551615,"prev":"","hash":""}`), []byte(`,"sig":"`))
	f.Add([]byte(`}`), []byte(``))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		r := &receiver{policies: map[string]int64{}}
		r.add(a)
		r.add(b)
		r.add(a)
	})
}

// TestEmulatorOutlastsWardenPool: the emulator keeps idle connections
// longer than Warden's upstream pool, and serves HTTP/1 to it (turning
// keep-alives off closes only HTTP/1 idle connections; Warden's pool
// speaks HTTP/1 to a plain http:// upstream). Were the pool to keep them
// longer, a request Warden writes on a connection the emulator is closing
// would fail the soak again (9ccd2d0).
func TestEmulatorOutlastsWardenPool(t *testing.T) {
	tr := proxy.NewUpstreamTransport()
	if tr.IdleConnTimeout <= 0 || tr.IdleConnTimeout >= emulatorIdleTimeout {
		t.Fatalf("Warden's upstream pool keeps idle connections %s, the soak's emulator %s: the emulator must outlast the pool",
			tr.IdleConnTimeout, emulatorIdleTimeout)
	}
	if tr.Protocols != nil && tr.Protocols.UnencryptedHTTP2() {
		t.Fatal("Warden's upstream pool speaks h2c: closeIdle (SetKeepAlivesEnabled) does not close idle HTTP/2 connections")
	}
}
