package audit

import (
	"net"
	"slices"
	"sync"
	"time"
)

// denials folds repeated denials so that a client hammering Warden with
// calls it refuses costs the spool a record or two per second, not one per
// call: the first denial of a (client, reason) is written at once, the
// repeats within the window after it become one record with a count,
// written when the window ends (or at Close). Only calls never forwarded
// are folded (no intent, no findings, no usage): they carry nothing that
// differs between repeats but their id, time, size and hashes.
type denials struct {
	p      *Pipeline
	window time.Duration
	mu     sync.Mutex
	open   map[denialKey]*denialAgg
	stop   chan struct{}
	done   sync.WaitGroup
}

// denialKey is what repeats share: the client's address (without its port:
// a flood opens a connection per call), its identity and app, the call and
// the answer. For calls no app selected the model and the reason's text
// are left out: the caller chooses them (an unknown route's reason quotes
// its path), so they must not let a flood open a window per call; the
// rule still tells the kinds of denial apart.
type denialKey struct {
	app, client, vpce, source, op, model, rule, reason, errType string
	status                                                      int
}

type denialAgg struct {
	start time.Time // of the window, opened by a denial written on its own
	rec   Record    // the first folded call's, bytes summed; set once n > 0
	n     int       // calls folded in
	// varied says the folded calls differed in model or reason (callers no
	// app selected): the record then says so rather than name only one.
	varied bool
}

// maxDenialWindows bounds the open windows (and their memory); beyond it a
// denial is written on its own, bounded by its share of the spool.
const maxDenialWindows = 4096

func newDenials(p *Pipeline, window time.Duration) *denials {
	d := &denials{p: p, window: window, open: map[denialKey]*denialAgg{}, stop: make(chan struct{})}
	d.done.Add(1)
	go d.run()
	return d
}

// foldable says r is a denial of a call never forwarded.
func foldable(r *Record) bool {
	return r.Decision == DecisionDeny && r.pending == nil && !r.Incomplete && len(r.Findings) == 0 && !r.Usage.Known && r.Count <= 1
}

func keyOf(r *Record) denialKey {
	k := denialKey{app: r.App, client: clientHost(r.Client), vpce: r.Path.VPCEndpoint, source: r.IdentitySource, op: r.Operation,
		rule: r.Rule, errType: r.ErrorType, status: r.Status}
	if r.App != "" {
		k.model, k.reason = r.Model, r.Reason
	}
	return k
}

// clientHost is a client address without its port.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// add folds r into its open window and reports true, or opens a window
// (the caller writes r on its own) and reports false.
func (d *denials) add(r *Record, now time.Time) bool {
	k := keyOf(r)
	d.mu.Lock()
	e := d.open[k]
	if e != nil && now.Sub(e.start) < d.window {
		e.fold(r)
		d.mu.Unlock()
		d.p.m.aggregated.Inc()
		return true
	}
	if e != nil { // ended, not yet flushed: it goes in before r
		delete(d.open, k)
	}
	if len(d.open) < maxDenialWindows {
		d.open[k] = &denialAgg{start: now}
	}
	d.mu.Unlock()
	if e != nil && e.n > 0 {
		d.p.writeAggregate(e)
	}
	return false
}

// keep folds r, whose own record found its share full, into its window so
// the window's record retries it; false if no window is open for it.
func (d *denials) keep(r *Record) bool {
	d.mu.Lock()
	e := d.open[keyOf(r)]
	if e != nil {
		e.fold(r)
	}
	d.mu.Unlock()
	if e != nil {
		d.p.m.aggregated.Inc()
	}
	return e != nil
}

func (e *denialAgg) fold(r *Record) {
	if e.n == 0 {
		e.rec = *r
		e.rec.pending = nil
	} else {
		if e.rec.Model != r.Model || e.rec.Reason != r.Reason {
			e.varied = true
		}
		e.rec.BytesIn += r.BytesIn
		e.rec.BytesOut += r.BytesOut
		// A hash stands for every call only if they all had it.
		if e.rec.PromptSHA256 != r.PromptSHA256 {
			e.rec.PromptSHA256 = ""
		}
		if e.rec.ResponseSHA256 != r.ResponseSHA256 {
			e.rec.ResponseSHA256 = ""
		}
	}
	e.n++
}

func (d *denials) run() {
	defer d.done.Done()
	t := time.NewTicker(max(d.window/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.flush(now, false)
		}
	}
}

// flush writes the windows that ended by now (all of them if all).
func (d *denials) flush(now time.Time, all bool) {
	d.mu.Lock()
	var out []*denialAgg
	for k, e := range d.open {
		if all || now.Sub(e.start) >= d.window {
			delete(d.open, k)
			if e.n > 0 {
				out = append(out, e)
			}
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b *denialAgg) int { return a.rec.Time.Compare(b.rec.Time) })
	for _, e := range out {
		d.p.writeAggregate(e)
	}
}

// close stops the flusher and writes every open window: Close calls it
// once no Write can start, before the final checkpoint.
func (d *denials) close() {
	close(d.stop)
	d.done.Wait()
	d.flush(time.Time{}, true)
}

// writeAggregate writes a window's record: count and the client's address
// without a port when it stands for several calls.
func (p *Pipeline) writeAggregate(e *denialAgg) {
	r := e.rec
	if e.n > 1 {
		r.Count = e.n
		r.Client = clientHost(r.Client)
	}
	if e.varied {
		r.Reason = "(reasons and models vary; the first call's) " + r.Reason
	}
	if err := p.write(&r, roomNew); err != nil {
		p.lose(&r, err)
	}
}
