// Package calltrace splits the time of each call Warden served under a Go
// execution trace (warden serve --pprof; GET /debug/pprof/trace) by
// pipeline stage and by what the call's goroutine was doing: running,
// waiting for a CPU, in a system call, or blocked (on the network, a lock,
// a channel), and how much of it overlapped a garbage collection. It is how
// the tail of the latency distribution is explained (warden-bench trace,
// docs/performance.md): compare the slowest calls with the median one.
//
// Each call is a runtime/trace task of type "warden.call" that begins and
// ends on the handler goroutine, with one region per stage (proxy/pipeline.go).
package calltrace

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// TaskType is the task every call runs as.
const TaskType = "warden.call"

// Call is one traced call.
type Call struct {
	Start, End trace.Time
	// Stages is the time spent in each stage's region (parse, identify,
	// authorize, inspect, budget, forward, record).
	Stages map[string]time.Duration
	// States is the time the call's goroutine spent in each state between
	// the task's begin and end: "running", "runnable" (ready, waiting for a
	// CPU), "syscall", or "waiting: <reason>" (network, select, sync, …).
	States map[string]time.Duration
	// STW and GCMark are how much of the call overlapped a stop-the-world
	// pause and a concurrent mark phase; Assist is the mark assist its
	// goroutine was made to do.
	STW, GCMark, Assist time.Duration
	// STWBy splits STW by the pause's reason ("stop-the-world (GC mark
	// termination)", "stop-the-world (start trace)", …).
	STWBy map[string]time.Duration
}

// Duration is the call's wall time (task begin to end).
func (c *Call) Duration() time.Duration { return c.End.Sub(c.Start) }

type goState struct {
	state  trace.GoState
	reason string
	since  trace.Time
}

type interval struct {
	from, to trace.Time
	name     string
}

// Trace is what Read found in one execution trace.
type Trace struct {
	// Calls are the complete calls (begun and ended inside the trace),
	// ordered by start.
	Calls []*Call
	// Span is the time from the first event to the last; GCs the mark
	// phases that ended in it; Pauses every stop-the-world pause's length.
	Span   time.Duration
	GCs    int
	Pauses []time.Duration
}

// Read reads an execution trace and returns its calls and its GC pauses.
func Read(r io.Reader) (*Trace, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("calltrace: not a Go execution trace: %w", err)
	}
	var (
		gs      = map[trace.GoID]*goState{}
		active  = map[trace.GoID]*Call{}    // the call running on a goroutine
		regions = map[trace.GoID][]region{} // open regions, innermost last
		calls   []*Call
		stw     []interval
		mark    []interval
		openSTW            = map[string]trace.Time{}
		openGC  trace.Time = -1
		assist             = map[trace.GoID]trace.Time{}
		first   trace.Time = -1
		last    trace.Time
	)
	// account adds the goroutine's time in its current state, from
	// max(since, the call's start) to now, to its call.
	account := func(g trace.GoID, now trace.Time) {
		c, st := active[g], gs[g]
		if c == nil || st == nil {
			return
		}
		from := max(st.since, c.Start)
		if now > from {
			c.States[stateName(st.state, st.reason)] += now.Sub(from)
		}
	}
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("calltrace: reading the trace: %w", err)
		}
		if first < 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			_, to := st.Goroutine()
			account(g, ev.Time())
			gs[g] = &goState{state: to, reason: st.Reason, since: ev.Time()}
		case trace.EventTaskBegin:
			if t := ev.Task(); t.Type == TaskType {
				g := ev.Goroutine()
				if g == trace.NoGoroutine {
					continue
				}
				c := &Call{Start: ev.Time(), Stages: map[string]time.Duration{}, States: map[string]time.Duration{}}
				active[g] = c
				if gs[g] == nil { // first seen: it is running, since it began the task
					gs[g] = &goState{state: trace.GoRunning, since: ev.Time()}
				}
			}
		case trace.EventTaskEnd:
			g := ev.Goroutine()
			c := active[g]
			if c == nil || ev.Task().Type != TaskType && ev.Task().Type != "" {
				continue
			}
			account(g, ev.Time())
			c.End = ev.Time()
			calls = append(calls, c)
			delete(active, g)
		case trace.EventRegionBegin:
			g := ev.Goroutine()
			regions[g] = append(regions[g], region{typ: ev.Region().Type, from: ev.Time()})
		case trace.EventRegionEnd:
			g := ev.Goroutine()
			open := regions[g]
			if len(open) == 0 {
				continue // begun before the trace started
			}
			top := open[len(open)-1]
			regions[g] = open[:len(open)-1]
			if c := active[g]; c != nil && top.typ == ev.Region().Type && top.from >= c.Start {
				c.Stages[top.typ] += ev.Time().Sub(top.from)
			}
		case trace.EventRangeBegin, trace.EventRangeActive:
			name := ev.Range().Name
			switch {
			case name == "GC concurrent mark phase":
				openGC = ev.Time()
			case strings.HasPrefix(name, "stop-the-world"):
				openSTW[name] = ev.Time()
			case name == "GC mark assist":
				assist[ev.Goroutine()] = ev.Time()
			}
		case trace.EventRangeEnd:
			name := ev.Range().Name
			switch {
			case name == "GC concurrent mark phase":
				if openGC >= 0 {
					mark = append(mark, interval{openGC, ev.Time(), name})
					openGC = -1
				}
			case strings.HasPrefix(name, "stop-the-world"):
				if from, ok := openSTW[name]; ok {
					stw = append(stw, interval{from, ev.Time(), name})
					delete(openSTW, name)
				}
			case name == "GC mark assist":
				g := ev.Goroutine()
				if from, ok := assist[g]; ok {
					if c := active[g]; c != nil {
						c.Assist += ev.Time().Sub(max(from, c.Start))
					}
					delete(assist, g)
				}
			}
		}
	}
	slices.SortFunc(calls, func(a, b *Call) int { return cmp.Compare(a.Start, b.Start) })
	for _, c := range calls {
		c.STW, c.STWBy = overlap(stw, c.Start, c.End)
		c.GCMark, _ = overlap(mark, c.Start, c.End)
	}
	t := &Trace{Calls: calls, GCs: len(mark)}
	if first >= 0 {
		t.Span = last.Sub(first)
	}
	for _, i := range stw {
		t.Pauses = append(t.Pauses, i.to.Sub(i.from))
	}
	return t, nil
}

type region struct {
	typ  string
	from trace.Time
}

func stateName(s trace.GoState, reason string) string {
	switch s {
	case trace.GoRunning:
		return "running"
	case trace.GoRunnable:
		return "runnable"
	case trace.GoSyscall:
		return "syscall"
	case trace.GoWaiting:
		if reason == "" {
			reason = "other"
		}
		return "waiting: " + reason
	}
	return s.String()
}

// overlap is how much of [from, to] the intervals cover (they do not
// overlap each other: one GC and one stop-the-world at a time), in all and
// by the intervals' names.
func overlap(iv []interval, from, to trace.Time) (time.Duration, map[string]time.Duration) {
	var d time.Duration
	var by map[string]time.Duration
	for _, i := range iv {
		lo, hi := max(i.from, from), min(i.to, to)
		if hi > lo {
			d += hi.Sub(lo)
			if by == nil {
				by = map[string]time.Duration{}
			}
			by[i.name] += hi.Sub(lo)
		}
	}
	return d, by
}

// Row is one component of a call's time: its mean over the calls around
// the median (p45–p55 of the duration) and over the slowest calls (≥ the
// tail quantile).
type Row struct {
	Name   string        `json:"name"`
	Median time.Duration `json:"median_ns"`
	Tail   time.Duration `json:"tail_ns"`
}

// Summary compares the calls around the median with the slowest ones.
type Summary struct {
	Calls     int           `json:"calls"`
	TailCalls int           `json:"tail_calls"`
	Quantile  float64       `json:"quantile"` // the tail's lower bound, e.g. 0.99
	P50       time.Duration `json:"p50_ns"`
	PTail     time.Duration `json:"p_tail_ns"`
	Rows      []Row         `json:"rows"` // wall, then stages, states, GC overlaps
	// Over the whole traces: their summed span, GC cycles, and the
	// stop-the-world pauses' median, 99th percentile and longest.
	Span     time.Duration `json:"span_ns"`
	GCs      int           `json:"gc_cycles"`
	Pauses   int           `json:"stw_pauses"`
	PauseP50 time.Duration `json:"stw_p50_ns"`
	PauseP99 time.Duration `json:"stw_p99_ns"`
	PauseMax time.Duration `json:"stw_max_ns"`
	// MedianInGC and TailInGC are the shares of the calls around the
	// median and of the tail that overlapped a GC mark phase or pause.
	MedianInGC float64 `json:"median_in_gc"`
	TailInGC   float64 `json:"tail_in_gc"`
}

// Summarize compares the calls of the traces (read as one sample) around
// the median with those at or above quantile q of the duration (q in
// (0.5, 1)).
func Summarize(ts []*Trace, q float64) (*Summary, error) {
	var calls []*Call
	var stwLens []time.Duration
	var span time.Duration
	gcs := 0
	for _, t := range ts {
		calls = append(calls, t.Calls...)
		stwLens = append(stwLens, t.Pauses...)
		span += t.Span
		gcs += t.GCs
	}
	if len(calls) < 20 {
		return nil, fmt.Errorf("calltrace: %d complete %s tasks in the trace; at least 20 are needed (was the server run with --pprof and busy during the trace?)", len(calls), TaskType)
	}
	if q <= 0.5 || q >= 1 {
		return nil, fmt.Errorf("calltrace: tail quantile %v is not in (0.5, 1)", q)
	}
	byDur := slices.Clone(calls)
	slices.SortFunc(byDur, func(a, b *Call) int { return cmp.Compare(a.Duration(), b.Duration()) })
	n := len(byDur)
	mid := byDur[n*45/100 : max(n*55/100, n*45/100+1)]
	tail := byDur[min(int(float64(n)*q), n-1):]
	s := &Summary{Calls: n, TailCalls: len(tail), Quantile: q, P50: byDur[n/2].Duration(), PTail: tail[0].Duration(), Span: span, GCs: gcs, Pauses: len(stwLens)}
	if n := len(stwLens); n > 0 {
		slices.Sort(stwLens)
		s.PauseP50, s.PauseP99, s.PauseMax = stwLens[n/2], stwLens[min(n*99/100, n-1)], stwLens[n-1]
	}
	names := map[string]bool{}
	var stages, states, pauses []string
	for _, c := range calls {
		for k := range c.STWBy {
			if !names[k] {
				names[k] = true
				pauses = append(pauses, k)
			}
		}
		for k := range c.Stages {
			if !names["stage "+k] {
				names["stage "+k] = true
				stages = append(stages, k)
			}
		}
		for k := range c.States {
			if !names["state "+k] {
				names["state "+k] = true
				states = append(states, k)
			}
		}
	}
	slices.SortFunc(stages, func(a, b string) int { return cmp.Compare(stageOrder(a), stageOrder(b)) })
	slices.Sort(states)
	slices.Sort(pauses)
	mean := func(cs []*Call, f func(*Call) time.Duration) time.Duration {
		var d time.Duration
		for _, c := range cs {
			d += f(c)
		}
		return d / time.Duration(len(cs))
	}
	add := func(name string, f func(*Call) time.Duration) {
		s.Rows = append(s.Rows, Row{Name: name, Median: mean(mid, f), Tail: mean(tail, f)})
	}
	inGC := func(cs []*Call) float64 {
		k := 0
		for _, c := range cs {
			if c.GCMark > 0 || c.STW > 0 {
				k++
			}
		}
		return float64(k) / float64(len(cs))
	}
	s.MedianInGC, s.TailInGC = inGC(mid), inGC(tail)
	add("wall (task begin to end)", (*Call).Duration)
	for _, k := range stages {
		add("stage "+k, func(c *Call) time.Duration { return c.Stages[k] })
	}
	for _, k := range states {
		add("goroutine "+k, func(c *Call) time.Duration { return c.States[k] })
	}
	add("overlapping a stop-the-world pause", func(c *Call) time.Duration { return c.STW })
	for _, k := range pauses {
		add("… "+k, func(c *Call) time.Duration { return c.STWBy[k] })
	}
	add("overlapping a GC mark phase", func(c *Call) time.Duration { return c.GCMark })
	add("GC mark assist on its goroutine", func(c *Call) time.Duration { return c.Assist })
	return s, nil
}

func stageOrder(s string) int {
	i := slices.Index([]string{"parse", "identify", "authorize", "inspect", "budget", "forward", "record"}, s)
	if i < 0 {
		return 100
	}
	return i
}

// Format writes s as a Markdown table: µs around the median, in the tail,
// and the tail's excess.
func (s *Summary) Format(w io.Writer, title string) {
	fmt.Fprintf(w, "%s: %d calls, p50 %.0f µs, p%g %.0f µs; mean µs of the calls around the median (p45–p55) and of the %d at or above p%g\n\n",
		title, s.Calls, us(s.P50), s.Quantile*100, us(s.PTail), s.TailCalls, s.Quantile*100)
	fmt.Fprintf(w, "| component | around p50 | ≥ p%g | excess |\n|---|---:|---:|---:|\n", s.Quantile*100)
	for _, r := range s.Rows {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %+.0f |\n", r.Name, us(r.Median), us(r.Tail), us(r.Tail-r.Median))
	}
	fmt.Fprintf(w, "\n%.0f %% of the calls around the median and %.0f %% of the tail overlapped a GC (mark phase or pause).", s.MedianInGC*100, s.TailInGC*100)
	fmt.Fprintf(w, "\nIn %.1f s of trace: %d GC cycles (%.1f/s), %d stop-the-world pauses, p50 %.0f µs, p99 %.0f µs, longest %.0f µs.\n\n",
		s.Span.Seconds(), s.GCs, float64(s.GCs)/max(s.Span.Seconds(), 1e-9), s.Pauses, us(s.PauseP50), us(s.PauseP99), us(s.PauseMax))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
