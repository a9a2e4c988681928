package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy/proxyproto"
)

// What a client may hold of Warden before anyone knows who it is: open
// connections (per listener and per source address), request bodies and
// buffered answers in memory (process-wide, per source and per connection),
// and time (a pause in a body, a slow trickle, a blocked write). Each
// refusal is counted in warden_limit_refusals_total{limit}.

// Limit names, as metrics labels and in refusal messages.
const (
	limitConnections        = "max_connections"
	limitConnectionsSource  = "max_connections_per_source"
	limitInflight           = "inflight_body_bytes"
	limitInflightSource     = "source_body_bytes"
	limitInflightConnection = "connection_body_bytes"
	limitBodyIdle           = "body_idle_timeout"
	limitBodyRate           = "body_min_rate"
	limitWrite              = "write_timeout"
	limitStreamIdle         = "stream_idle_timeout"
	limitResponseHeader     = "response_header_timeout"
)

// fallbackInflightBodyBytes is the body budget when no memory limit is known.
const fallbackInflightBodyBytes = 1 << 30

// bodyChunk is reserved up front for a body (or a whole small sized one)
// and the step in which a growing body takes budget.
const bodyChunk = 64 << 10

type limitMetrics struct {
	refusals    *prometheus.CounterVec
	inflight    prometheus.GaugeFunc
	connections *prometheus.GaugeVec
}

func newLimitMetrics(reg *prometheus.Registry, b *bodyBudget) (*limitMetrics, error) {
	m := &limitMetrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_limit_refusals_total",
			Help: "Connections refused, calls refused or cut, by the limit that refused them (limits.* and upstream timeouts).",
		}, []string{"limit"}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_inflight_body_bytes",
			Help: "Request body and buffered answer bytes held in memory (limits.inflight_body_bytes).",
		}, func() float64 { return float64(b.used.Load()) }),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_open_connections",
			Help: "Open client connections, by listener.",
		}, []string{"listener"}),
	}
	for _, c := range []prometheus.Collector{m.refusals, m.inflight, m.connections} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, l := range []string{limitConnections, limitConnectionsSource, limitInflight, limitInflightSource,
		limitInflightConnection, limitBodyIdle, limitBodyRate, limitWrite, limitStreamIdle, limitResponseHeader} {
		m.refusals.WithLabelValues(l) // present at 0, so alerts can rate() them
	}
	return m, nil
}

// memoryLimit is the process's memory limit: GOMEMLIMIT, else the cgroup's
// memory.max, else 0 (none known).
func memoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l != math.MaxInt64 {
		return l
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n > 0 && n < 1<<50 { // cgroup v1 says "no limit" with a huge number
			return n
		}
	}
	return 0
}

// budgetSizes resolves limits.inflight_body_bytes and its shares: the total
// defaults to a quarter of the memory limit (1 GiB without one), a source
// to a quarter of it and a connection to an eighth, none below the largest
// allowed body (or a call of that size could never be read).
func budgetSizes(l config.LimitsConfig, memLimit int64) (total, source, conn int64) {
	total = l.InflightBodyBytes
	if total == 0 {
		total = fallbackInflightBodyBytes
		if memLimit > 0 {
			total = memLimit / 4
		}
		total = max(total, 2*l.MaxBodyBytes)
	}
	source, conn = l.SourceBodyShare, l.ConnectionBodyShare
	if source == 0 {
		source = min(max(total/4, l.MaxBodyBytes), total)
	}
	if conn == 0 {
		conn = min(max(total/8, l.MaxBodyBytes), source)
	}
	return total, source, conn
}

// bodyBudget accounts bytes of request bodies and buffered answers held in
// memory, across the process, per source address and per connection.
type bodyBudget struct {
	total, perSource, perConn int64
	used                      atomic.Int64

	mu      sync.Mutex
	sources map[sourceKey]int64
}

func newBodyBudget(total, source, conn int64) *bodyBudget {
	return &bodyBudget{total: total, perSource: source, perConn: conn, sources: map[sourceKey]int64{}}
}

// errBudget says which share refused a reservation.
type errBudget struct {
	limit      string
	want, have int64
	answer     bool // refused while buffering the upstream's answer
}

func (e *errBudget) Error() string {
	return fmt.Sprintf("limits.%s: %d bytes wanted, %d of the limit in use", e.limit, e.want, e.have)
}

// apiError is what the client is told: the call was not forwarded, and a
// retry later may well succeed.
func (e *errBudget) apiError() *bedrock.APIError {
	who := map[string]string{limitInflight: "Warden", limitInflightSource: "your address", limitInflightConnection: "this connection"}[e.limit]
	if e.answer {
		return bedrock.ServiceUnavailable("warden: too many bytes are in flight for %s (limits.%s) to hold the answer for the output guards; it was not relayed, retry later", who, e.limit)
	}
	return bedrock.ServiceUnavailable("warden: too many request bytes are in flight for %s (limits.%s); the call was not forwarded, retry later", who, e.limit)
}

// reservation is one call's share of the budget; it grows with the bytes
// the call holds and is released when the call ends.
type reservation struct {
	b    *bodyBudget
	src  sourceKey  // invalid: not counted per source
	conn *connState // nil: not counted per connection
	n    int64
}

// sourceKey is a client as the per-source bounds count it: its address,
// scoped by the VPC endpoint it came through (spoke VPCs behind one
// PrivateLink service may use the same addresses).
type sourceKey struct {
	vpce string
	addr netip.Addr
}

// IsValid reports whether the key names a client.
func (k sourceKey) IsValid() bool { return k.addr.IsValid() }

func (b *bodyBudget) newReservation(src sourceKey, cs *connState) reservation {
	return reservation{b: b, src: src, conn: cs}
}

// grow takes n more bytes, or none and says which share refused them.
func (r *reservation) grow(n int64) error {
	b := r.b
	if b == nil || n <= 0 {
		return nil
	}
	if r.conn != nil {
		if got := r.conn.bodyBytes.Add(n); got > b.perConn {
			r.conn.bodyBytes.Add(-n)
			return &errBudget{limit: limitInflightConnection, want: n, have: got - n}
		}
	}
	if r.src.IsValid() {
		b.mu.Lock()
		got := b.sources[r.src] + n
		if got > b.perSource {
			b.mu.Unlock()
			r.undoConn(n)
			return &errBudget{limit: limitInflightSource, want: n, have: got - n}
		}
		b.sources[r.src] = got
		b.mu.Unlock()
	}
	if got := b.used.Add(n); got > b.total {
		b.used.Add(-n)
		r.undoSource(n)
		r.undoConn(n)
		return &errBudget{limit: limitInflight, want: n, have: got - n}
	}
	r.n += n
	return nil
}

func (r *reservation) undoConn(n int64) {
	if r.conn != nil {
		r.conn.bodyBytes.Add(-n)
	}
}

func (r *reservation) undoSource(n int64) {
	if !r.src.IsValid() {
		return
	}
	b := r.b
	b.mu.Lock()
	if left := b.sources[r.src] - n; left > 0 {
		b.sources[r.src] = left
	} else {
		delete(b.sources, r.src)
	}
	b.mu.Unlock()
}

// release returns everything the call held.
func (r *reservation) release() {
	if r.b == nil || r.n == 0 {
		return
	}
	n := r.n
	r.n = 0
	r.b.used.Add(-n)
	r.undoSource(n)
	r.undoConn(n)
}

// connState is what Warden knows of one client connection; the listener
// creates it, requests find it in their context.
type connState struct {
	listener string
	src      netip.Addr // the client address, once known (after a PROXY header)
	vpce     string     // the VPC endpoint a trusted load balancer named, with src
	srcKnown atomic.Bool
	// bodyBytes is this connection's part of the body budget.
	bodyBytes atomic.Int64
	// writeTimedOut is set when a write to the client blocked past
	// limits.write_timeout (the call's record says why it ended).
	writeTimedOut atomic.Bool
}

type connStateKey struct{}

// connStateOf finds the state of the connection under c (TLS and the
// intercepting wrappers unwrapped).
func connStateOf(c net.Conn) *connState {
	for range 8 {
		switch v := c.(type) {
		case *guardedConn:
			return v.state
		case *tls.Conn:
			c = v.NetConn()
		case *redirectedConn:
			c = v.Conn
		default:
			return nil
		}
	}
	return nil
}

// withConnState is an http.Server ConnContext.
func withConnState(ctx context.Context, c net.Conn) context.Context {
	if cs := connStateOf(c); cs != nil {
		return context.WithValue(ctx, connStateKey{}, cs)
	}
	return ctx
}

func connStateFrom(ctx context.Context) *connState {
	cs, _ := ctx.Value(connStateKey{}).(*connState)
	return cs
}

// connLimiter bounds one listener's open connections, in total and per
// source address.
type connLimiter struct {
	name      string
	max       int64
	perSource int
	open      atomic.Int64
	metrics   *limitMetrics
	gauge     prometheus.Gauge
	write     time.Duration

	mu      sync.Mutex
	sources map[sourceKey]int
}

func (s *Server) newConnLimiter(name string) *connLimiter {
	return &connLimiter{name: name, max: int64(s.limits.MaxConnections), perSource: s.limits.MaxConnectionsPerSource,
		metrics: s.limitMetrics, gauge: s.limitMetrics.connections.WithLabelValues(name), write: s.limits.WriteTimeout,
		sources: map[sourceKey]int{}}
}

// limitListener refuses connections beyond the listener's bound at once
// (accepted and closed, so a flood cannot fill the kernel's backlog in front
// of everyone else) and wraps the others in guardedConn.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (s *Server) limitListener(name string, ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: s.newConnLimiter(name)}
}

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if gc := ll.l.admit(c); gc != nil {
			return gc, nil
		}
	}
}

// admit counts c against the listener's bound, or closes it.
func (l *connLimiter) admit(c net.Conn) *guardedConn {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		l.metrics.refusals.WithLabelValues(limitConnections).Inc()
		_ = c.Close()
		return nil
	}
	l.gauge.Inc()
	return &guardedConn{Conn: c, l: l, state: &connState{listener: l.name}, writeTimeout: l.write}
}

// addSource counts one more connection from a; false means over the bound.
func (l *connLimiter) addSource(a sourceKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sources[a] >= l.perSource {
		return false
	}
	l.sources[a]++
	return true
}

func (l *connLimiter) removeSource(a sourceKey) {
	l.mu.Lock()
	if n := l.sources[a] - 1; n > 0 {
		l.sources[a] = n
	} else {
		delete(l.sources, a)
	}
	l.mu.Unlock()
}

// errSourceConnections ends a connection over its source's bound.
var errSourceConnections = errors.New("warden: too many connections from this address (limits.max_connections_per_source)")

// guardedConn is a client connection under its listener's bounds: its
// source is counted at the first read (a PROXY header, read lazily, names
// it), and no write may block longer than limits.write_timeout.
type guardedConn struct {
	net.Conn
	l            *connLimiter
	state        *connState
	writeTimeout time.Duration
	// deadline is the write deadline in force (unix nanoseconds); it is
	// pushed forward only when less than half of the timeout is left, so
	// a stream of small writes does not reset a timer each time.
	deadline atomic.Int64
	admitted atomic.Int32 // 0 unknown, 1 counted, -1 refused
	closed   atomic.Bool
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.admitted.Load() == 0 && !c.admitSource() {
		return 0, errSourceConnections
	}
	return c.Conn.Read(p)
}

// admitSource counts the connection against its source address's bound.
func (c *guardedConn) admitSource() bool {
	ap, ok := proxyproto.AddrPortOf(c.Conn.RemoteAddr())
	if !ok {
		c.admitted.Store(-1)
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	vpce := proxyproto.VPCEndpointOf(c.Conn)
	if !c.l.addSource(sourceKey{vpce, a}) {
		c.admitted.Store(-1)
		c.l.metrics.refusals.WithLabelValues(limitConnectionsSource).Inc()
		_ = c.Conn.Close()
		return false
	}
	c.state.src, c.state.vpce = a, vpce
	c.state.srcKnown.Store(true)
	c.admitted.Store(1)
	return true
}

func (c *guardedConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		now := time.Now()
		if time.Duration(c.deadline.Load()-now.UnixNano()) < c.writeTimeout/2 {
			d := now.Add(c.writeTimeout)
			c.deadline.Store(d.UnixNano())
			_ = c.Conn.SetWriteDeadline(d)
		}
	}
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.state.writeTimedOut.CompareAndSwap(false, true) {
		c.l.metrics.refusals.WithLabelValues(limitWrite).Inc()
	}
	return n, err
}

// SetWriteDeadline is the server's own deadline (TLS handshakes): it
// replaces the progress deadline until the next write renews it.
func (c *guardedConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *guardedConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *guardedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		if c.admitted.Load() == 1 {
			c.l.removeSource(sourceKey{c.state.vpce, c.state.src})
		}
		c.l.open.Add(-1)
		c.l.gauge.Dec()
	}
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection (tunnels end one direction at a
// time).
func (c *guardedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn exposes the wrapped connection (ResponseController and TLS
// helpers look for it).
func (c *guardedConn) NetConn() net.Conn { return c.Conn }

// bodyReader reads a request body under the call's budget and its
// progress bounds: no pause longer than limits.body_idle_timeout, and no
// average rate below limits.body_min_rate from twice that on (a pause is
// reported as a pause, not as a low rate). A watchdog timer checks both;
// the read path only counts, so a body that arrives with its headers costs
// one timer, not a deadline update per read.
type bodyReader struct {
	r   interface{ Read([]byte) (int, error) }
	res *reservation
	// held counts the bytes the reservation must cover: those read, plus
	// what the call already held when the reader started (a buffered answer
	// adds to its request's bytes).
	held     atomic.Int64
	read     atomic.Int64  // bytes read: the watchdog's rate
	lastRead atomic.Int64  // unix nanoseconds of the last byte
	cut      atomic.Uint32 // cutIdle or cutRate, once the watchdog cut the body
	err      error         // a budget refusal
	feed     *digestFeed   // takes the prompt digest as the body arrives; nil for most

	// The watchdog's state lives here, not in closures: a body read costs
	// one timer, not a handful of allocations.
	mu         sync.Mutex
	stopped    bool
	timer      *time.Timer
	start      time.Time
	idle, tick time.Duration
	minRate    int64
	w          http.ResponseWriter // its read deadline unblocks a stalled read
}

// Why the watchdog cut a body (bodyReader.cut).
const (
	cutNone uint32 = iota
	cutIdle
	cutRate
)

// cutLimit names the limit that cut the body, "" if none did.
func (b *bodyReader) cutLimit() string {
	switch b.cut.Load() {
	case cutIdle:
		return limitBodyIdle
	case cutRate:
		return limitBodyRate
	}
	return ""
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.read.Add(int64(n))
		b.lastRead.Store(time.Now().UnixNano())
		if held := b.held.Add(int64(n)); held > b.res.n {
			if gerr := b.res.grow(max(held-b.res.n, bodyChunk)); gerr != nil {
				b.err = gerr
				return 0, gerr
			}
		}
		if b.feed != nil {
			b.feed.add(p[:n])
		}
	}
	if err != nil {
		if lim := b.cutLimit(); lim != "" {
			return n, fmt.Errorf("%w (limits.%s)", err, lim)
		}
	}
	return n, err
}

// watch starts the progress watchdog; when it cuts the body it sets w's
// read deadline in the past, which unblocks a pending read. stopWatch must
// be called once the body is read.
func (b *bodyReader) watch(idle time.Duration, minRate int64, w http.ResponseWriter) {
	if idle <= 0 {
		return
	}
	b.start, b.idle, b.minRate, b.w = time.Now(), idle, minRate, w
	b.tick = max(idle/2, time.Millisecond)
	b.lastRead.Store(b.start.UnixNano())
	b.mu.Lock()
	b.timer = time.AfterFunc(b.tick, b.check)
	b.mu.Unlock()
}

func (b *bodyReader) check() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	now := time.Now()
	why := cutNone
	switch elapsed := now.Sub(b.start); {
	case now.Sub(time.Unix(0, b.lastRead.Load())) >= b.idle:
		why = cutIdle
	case b.minRate > 0 && elapsed >= 2*b.idle && float64(b.read.Load()) < float64(b.minRate)*elapsed.Seconds():
		why = cutRate
	}
	if why != cutNone {
		b.cut.Store(why)
		_ = http.NewResponseController(b.w).SetReadDeadline(now)
		return
	}
	b.timer.Reset(b.tick)
}

func (b *bodyReader) stopWatch() {
	b.mu.Lock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
	// The call outlives the handler when its stream is detached
	// (detach.go): it must not keep net/http's response and connection
	// buffers (10 KiB) alive.
	b.w, b.r = nil, nil
	b.mu.Unlock()
}
