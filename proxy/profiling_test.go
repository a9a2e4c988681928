package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/warden-egress/warden/internal/calltrace"
)

// TestProfilingOffByDefault: without Options.Profiling the admin listener
// serves no profiler (whoever reaches it could load the process).
func TestProfilingOffByDefault(t *testing.T) {
	e := startEnv(t)
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/trace?seconds=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		resp, err := http.Get(admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without profiling: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestProfilingTracesCalls: with profiling on, an execution trace taken
// from the admin listener holds every call as a task with one region per
// pipeline stage, which internal/calltrace splits (warden-bench trace).
func TestProfilingTracesCalls(t *testing.T) {
	e := &env{emu: newEmulator(t), cp: newControlPlane(t), audit: newRecorder(), profiling: true}
	p := strings.ReplaceAll(basePolicy, "${UPSTREAM}", e.emu.URL)
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()

	// cmdline (the process's arguments) is not among the served profiles.
	for p, want := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/heap": 200, "/debug/pprof/cmdline": 404} {
		resp, err := http.Get(admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", p, resp.StatusCode, want)
		}
	}

	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(admin.URL + "/debug/pprof/trace?seconds=2")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = &httpStatusError{resp.StatusCode, string(b)}
		}
		got <- result{b, err}
	}()
	// The handler starts the trace in this process: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for !trace.IsEnabled() {
		if time.Now().After(deadline) {
			t.Fatal("the execution trace did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	client := e.client(t, nil)
	const calls = 25
	for i := 0; i < calls; i++ {
		if _, err := client.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello")}); err != nil {
			t.Fatalf("Converse %d: %v", i, err)
		}
	}
	e.audit.wait(t, calls)
	r := <-got
	if r.err != nil {
		t.Fatalf("GET /debug/pprof/trace: %v", r.err)
	}
	tr, err := calltrace.Read(bytes.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	cs := tr.Calls
	if len(cs) != calls {
		t.Fatalf("%d %s tasks in the trace, want %d (one per call)", len(cs), calltrace.TaskType, calls)
	}
	for i, c := range cs {
		for _, st := range []string{"parse", "identify", "authorize", "inspect", "budget", "forward", "record"} {
			if _, ok := c.Stages[st]; !ok {
				t.Errorf("call %d: no %q region (stages %v)", i, st, c.Stages)
			}
		}
		var states, stages time.Duration
		for _, d := range c.States {
			states += d
		}
		for _, d := range c.Stages {
			stages += d
		}
		// The goroutine's states cover the task; the stages lie inside it.
		if d := c.Duration(); states < d*9/10 || states > d || stages > d {
			t.Errorf("call %d: %v long, its goroutine's states sum to %v and its stages to %v", i, d, states, stages)
		}
		if c.Stages["forward"] == 0 || c.States["running"] == 0 {
			t.Errorf("call %d: forward %v, running %v: both must be > 0", i, c.Stages["forward"], c.States["running"])
		}
	}
	s, err := calltrace.Summarize([]*calltrace.Trace{tr}, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s.Format(&out, "Converse")
	if tr.Span <= 0 || tr.Span > 10*time.Second {
		t.Errorf("trace span %v", tr.Span)
	}
	if !strings.Contains(out.String(), "| stage forward |") || !strings.Contains(out.String(), "| goroutine running |") ||
		!strings.Contains(out.String(), "stop-the-world pauses") {
		t.Errorf("summary lacks the forward stage or the running state:\n%s", out.String())
	}
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string { return http.StatusText(e.code) + ": " + e.body }
