package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/audit"
)

// receiver is the HTTP audit sink's far end: a loopback server that can be
// stopped and restarted on the same address (a sink outage). It checks the
// hash chain as lines arrive — each new line must carry the next seq and
// link to the previous line's hash — so a lost or reordered record is seen
// with O(1) memory however long the soak runs; a line seen before (the
// pipeline delivers at least once) counts as a duplicate.
type receiver struct {
	addr string

	mu       sync.Mutex
	srv      *http.Server
	down     bool
	next     uint64 // seq of the next new line; 0 before the first
	prev     [32]byte
	records  int64 // call records, each counted once
	ckpts    int64
	dups     int64
	problems []string // chain breaks and undecodable lines (the first few)
	broken   int64
	policies map[string]int64 // records by policy_hash
	errTypes map[string]int64 // records by status and error_type, "200" or "499 ClientClosedRequest"
	outages  int              // outages begun
	resumed  int              // outages after which a new line arrived
	awaiting bool             // an outage ended and no new line arrived yet
	posts    int64
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: ln.Addr().String(), policies: map[string]int64{}, errTypes: map[string]int64{}}
	r.serve(ln)
	return r, nil
}

func (r *receiver) URL() string { return "http://" + r.addr + "/audit" }

// serve starts a server on ln; called with r.mu held or before r is shared.
func (r *receiver) serve(ln net.Listener) {
	// A short idle timeout: idle sink connections do not linger into the
	// resource measurements.
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Second}
	go func(s *http.Server) { _ = s.Serve(ln) }(r.srv)
}

// stop begins an outage: the listener and every connection close, so
// in-flight POSTs fail and new ones are refused.
func (r *receiver) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return
	}
	r.down = true
	r.outages++
	_ = r.srv.Close()
}

// start ends an outage on the same address.
func (r *receiver) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after Close
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("sink restart on %s: %w", r.addr, err)
	}
	r.down = false
	r.awaiting = true
	r.serve(ln)
	return nil
}

func (r *receiver) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	_ = r.srv.Close()
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 256<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if line := sc.Bytes(); len(line) > 0 {
			r.add(line)
		}
	}
}

// add checks one line against the chain; r.mu held.
func (r *receiver) add(line []byte) {
	t, err := audit.ParseTrailer(line)
	if err != nil {
		r.problem("undecodable line: %v", err)
		return
	}
	if !t.Valid() {
		r.problem("seq %d: the line does not match its hash (altered)", t.Seq)
		return
	}
	switch {
	case r.next != 0 && t.Seq < r.next:
		r.dups++
		return
	case r.next == 0 && t.Prev != [32]byte{}:
		r.problem("the first line (seq %d) does not start a chain", t.Seq)
	case r.next != 0 && t.Seq > r.next:
		r.problem("chain gap: expected seq %d, got %d (%d lines lost)", r.next, t.Seq, t.Seq-r.next)
	case r.next != 0 && t.Prev != r.prev:
		r.problem("chain break at seq %d: prev does not match the previous line's hash", t.Seq)
	}
	r.next, r.prev = t.Seq+1, t.Hash
	if r.awaiting {
		r.awaiting = false
		r.resumed++
	}
	if t.Sig != nil {
		r.ckpts++
		return
	}
	rec, err := audit.DecodeRecord(line)
	if err != nil {
		r.problem("seq %d: %v", t.Seq, err)
		return
	}
	r.records++
	r.policies[rec.PolicyHash]++
	if r.errTypes != nil {
		r.errTypes[strings.TrimSpace(fmt.Sprintf("%d %s", rec.Status, rec.ErrorType))]++
	}
}

func (r *receiver) problem(format string, args ...any) {
	r.broken++
	if len(r.problems) < 10 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// sinkStats is what the receiver saw.
type sinkStats struct {
	Records, Checkpoints, Duplicates, Posts int64
	Outages, Resumed                        int
	Down                                    bool
	Broken                                  int64
	Problems                                []string
	Policies, ErrorTypes                    map[string]int64
}

func (r *receiver) stats() sinkStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	pol, et := maps.Clone(r.policies), maps.Clone(r.errTypes)
	return sinkStats{
		Records: r.records, Checkpoints: r.ckpts, Duplicates: r.dups, Posts: r.posts,
		Outages: r.outages, Resumed: r.resumed, Down: r.down, Broken: r.broken,
		Problems: append([]string(nil), r.problems...), Policies: pol, ErrorTypes: et,
	}
}

var errSinkDown = errors.New("the sink is down")

// waitRecords waits until the sink holds n call records.
func (r *receiver) waitRecords(n int64, deadline time.Time) error {
	for {
		s := r.stats()
		if s.Down {
			return errSinkDown
		}
		if s.Records >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sink has %d call records of %d calls", s.Records, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
