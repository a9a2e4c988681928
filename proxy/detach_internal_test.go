package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/proxy/proxyproto"
)

// captureConn is a net.Conn whose writes are kept (the tests' client end).
type captureConn struct {
	net.Conn
	buf    bytes.Buffer
	err    error // every write fails with it when set
	closed bool
}

func (c *captureConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	return c.buf.Write(p)
}

func (c *captureConn) Close() error { c.closed = true; return nil }

// The client closes its side as soon as the answer ends.
func (c *captureConn) Read([]byte) (int, error)        { return 0, io.EOF }
func (c *captureConn) SetReadDeadline(time.Time) error { return nil }

// checkChunks writes each of writes (flushing where flush says) through a
// hijackedStream and holds the wire to net/http's chunked decoding of the
// same bytes: the plain code the detached writer replaces.
func checkChunks(t *testing.T, writes [][]byte, flush []bool, end bool) {
	t.Helper()
	cc := &captureConn{}
	cancelled := false
	h := &hijackedStream{conn: cc, cancel: func() { cancelled = true }}
	var want bytes.Buffer
	for i, w := range writes {
		if n, err := h.Write(w); err != nil || n != len(w) {
			t.Fatalf("write %d (%d bytes): %d, %v", i, len(w), n, err)
		}
		want.Write(w)
		if flush[i] {
			if err := h.Flush(); err != nil {
				t.Fatalf("flush after write %d: %v", i, err)
			}
		}
	}
	h.end(end)
	if !cc.closed || cancelled {
		t.Fatalf("after end: closed %v, cancelled %v; want closed, not cancelled", cc.closed, cancelled)
	}
	got, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(cc.buf.Bytes())))
	switch {
	case end && err != nil:
		t.Fatalf("chunked decoding of %q: %v", cc.buf.Bytes(), err)
	case !end && !errors.Is(err, io.ErrUnexpectedEOF):
		t.Fatalf("a stream ended without its last chunk decodes with %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if end && !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("decoded %d bytes, want the %d written", len(got), want.Len())
	}
	if !end && !bytes.HasPrefix(want.Bytes(), got) {
		t.Fatalf("a cut stream decodes to bytes that were not written")
	}
}

func TestHijackedStreamChunks(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70<<10)
	cases := []struct {
		name   string
		writes []int
		flush  []bool
		end    bool
	}{
		{"nothing", nil, nil, true},
		{"one event", []int{200}, []bool{true}, true},
		{"a burst, one flush", []int{200, 300, 100}, []bool{false, false, true}, true},
		{"unflushed at the end", []int{200, 300}, []bool{true, false}, true},
		{"empty write", []int{0, 10}, []bool{true, true}, true},
		{"fills the chunk", []int{4096, 1}, []bool{false, true}, true},
		{"past the chunk", []int{4000, 200, 5000}, []bool{false, false, false}, true},
		{"larger than the pool keeps", []int{len(big), 10}, []bool{true, true}, true},
		{"cut", []int{200, 300}, []bool{true, false}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var writes [][]byte
			for i, n := range tc.writes {
				writes = append(writes, bytes.Repeat([]byte{byte('a' + i)}, n))
			}
			checkChunks(t, writes, tc.flush, tc.end)
		})
	}
}

// FuzzHijackedStreamChunks: any sequence of writes and flushes decodes, as
// net/http decodes chunks, to the bytes written.
func FuzzHijackedStreamChunks(f *testing.F) {
	f.Add([]byte{10, 0x80 | 20, 0, 0x80 | 1}, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x7f, 0x80}, true)
	f.Add([]byte{3, 4}, false)
	f.Fuzz(func(t *testing.T, ops []byte, end bool) {
		var writes [][]byte
		var flush []bool
		for i, op := range ops {
			// Low 7 bits: a size in units of 64 bytes (up to ~8 KiB);
			// the high bit: flush after it.
			n := int(op&0x7f) * 64
			if i%3 == 1 {
				n += i // odd sizes too
			}
			writes = append(writes, bytes.Repeat([]byte{byte(i)}, n))
			flush = append(flush, op&0x80 != 0)
		}
		checkChunks(t, writes, flush, end)
	})
}

// A write the client no longer takes fails the Write or Flush that sends
// it, cancels the call (as net/http does), and every later write fails.
func TestHijackedStreamWriteError(t *testing.T) {
	boom := errors.New("broken pipe")
	for _, tc := range []struct {
		name  string
		write int
		fails string
	}{
		{"flush", 100, "flush"},
		{"write past the chunk", 8 << 10, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &captureConn{err: boom}
			cancelled := false
			h := &hijackedStream{conn: cc, cancel: func() { cancelled = true }}
			_, werr := h.Write(make([]byte, tc.write))
			ferr := h.Flush()
			got := ferr
			if tc.fails == "write" {
				got = werr
			}
			if !errors.Is(got, boom) || !cancelled {
				t.Fatalf("%s: %v, cancelled %v; want %v and the call cancelled", tc.fails, got, cancelled, boom)
			}
			if _, err := h.Write([]byte("x")); !errors.Is(err, boom) {
				t.Fatalf("a write after the failure: %v, want %v", err, boom)
			}
			h.end(true)
			if cc.buf.Len() != 0 || !cc.closed {
				t.Fatalf("after a failure the end wrote %d bytes, closed %v", cc.buf.Len(), cc.closed)
			}
		})
	}
}

// The head a detached stream writes is what net/http would have: the
// status line, the handler's headers, chunked, plus Connection: close.
func TestHijackedStreamHead(t *testing.T) {
	srv := &Server{}
	srv.metrics = &metrics{detached: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warden_streams_detached"})}
	srv.log = zap.NewNop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Header().Set("X-Amzn-Requestid", "abc")
		w.Header().Set("Content-Length", "99") // never sent: the answer is chunked
		c := &call{}
		h := srv.hijackStream(w, c, &http.Response{StatusCode: 200}, func() {})
		if h == nil {
			t.Error("hijackStream refused an HTTP/1.1 connection")
			return
		}
		_, _ = h.Write([]byte("event"))
		_ = h.Flush()
		h.end(true)
		srv.detached.remove(h)
	})}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	<-done
	if err != nil || string(body) != "event" {
		t.Fatalf("body %q, %v", body, err)
	}
	if resp.StatusCode != 200 || !resp.Close || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 ||
		resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" || resp.Header.Get("X-Amzn-Requestid") != "abc" ||
		resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("head: status %d close %v length %d transfer-encoding %v header %v", resp.StatusCode, resp.Close, resp.ContentLength, resp.TransferEncoding, resp.Header)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection stayed open after the stream's end")
	}
}

// connWatcher reports a client that closes or resets its connection, not
// one that was removed first, and finds the socket under wrappers.
func TestConnWatcher(t *testing.T) {
	var w connWatcher
	defer w.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	wrapped := func(c net.Conn) net.Conn { return &redirectedConn{Conn: &guardedConn{Conn: c}} }
	waitGone := func(name string, gone chan struct{}) {
		t.Helper()
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the watcher never reported the client gone", name)
		}
	}
	for _, tc := range []struct {
		name string
		hang func(c net.Conn)
	}{
		{"close", func(c net.Conn) { c.Close() }},
		{"reset", func(c net.Conn) { _ = c.(*net.TCPConn).SetLinger(0); c.Close() }},
		{"half close", func(c net.Conn) { _ = c.(*net.TCPConn).CloseWrite() }},
	} {
		c, s := pair()
		gone := make(chan struct{})
		remove, ok := w.add(wrapped(s), func() { close(gone) })
		if !ok {
			t.Fatalf("%s: the watcher could not watch a TCP connection under the limits and redirect wrappers", tc.name)
		}
		tc.hang(c)
		waitGone(tc.name, gone)
		remove()
	}

	// A removed connection is not reported; one watched after it is.
	c1, s1 := pair()
	removedGone := make(chan struct{}, 1)
	remove, ok := w.add(s1, func() { removedGone <- struct{}{} })
	if !ok {
		t.Fatal("the watcher could not watch a TCP connection")
	}
	remove()
	c1.Close()
	c2, s2 := pair()
	gone := make(chan struct{})
	if _, ok := w.add(s2, func() { close(gone) }); !ok {
		t.Fatal("the watcher could not watch a TCP connection")
	}
	c2.Close()
	waitGone("after a removal", gone)
	select {
	case <-removedGone:
		t.Fatal("a connection removed from the watcher was reported gone")
	default:
	}

	// A connection whose socket cannot be found is refused (the caller
	// watches it with a goroutine instead).
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, ok := w.add(p1, func() {}); ok {
		t.Fatal("the watcher accepted a connection without a socket")
	}
	// A closed watcher refuses.
	w.close()
	_, s3 := pair()
	if _, ok := w.add(s3, func() {}); ok {
		t.Fatal("a closed watcher accepted a connection")
	}
}

func goroutineStacks() string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

// goroutinesIn counts the goroutines whose stack names fn.
func goroutinesIn(fn string) int { return strings.Count(goroutineStacks(), fn) }

// A closed connWatcher's goroutine ends. Closing an epoll descriptor does
// not wake a thread blocked in epoll_wait on it: before, every Server that
// had detached a stream left its watcher's goroutine (and an OS thread,
// blocked in the syscall) behind after Shutdown, forever.
func TestConnWatcherCloseEndsItsGoroutine(t *testing.T) {
	const loop = "proxy.(*connWatcher).loop"
	before := goroutinesIn(loop)
	var w connWatcher
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	remove, ok := w.add(s, func() {})
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("the watcher could not watch a TCP connection")
		}
		return // elsewhere there is no watcher goroutine
	}
	remove()
	// Once the goroutine waits in epoll_wait.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(goroutineStacks(), "EpollWait"); {
		if time.Now().After(deadline) {
			t.Fatal("the watcher's goroutine never waited for events")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // from the call into the syscall
	w.close()
	for deadline := time.Now().Add(10 * time.Second); goroutinesIn(loop) > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connWatcher goroutines left after close (%d before the watcher started)", goroutinesIn(loop), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.close() // twice is harmless
}

// blockedHijacker's Hijack waits for release, then fails.
type blockedHijacker struct {
	http.ResponseWriter
	called, release chan struct{}
}

func (b *blockedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	close(b.called)
	<-b.release
	return nil, nil, errors.New("hijack failed")
}

// Shutdown while a stream's connection is being taken over: the stream is
// seen with its connection or not at all. Before, it was registered before
// the takeover, so Shutdown could find it without a connection (a nil
// dereference when its grace period had ended) and, when the takeover
// failed, waited forever for a stream that never started.
func TestDetachedSetShutdownDuringTakeover(t *testing.T) {
	s := &Server{log: zap.NewNop()}
	hj := &blockedHijacker{called: make(chan struct{}), release: make(chan struct{})}
	c := &call{requestID: "r"}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	taken := make(chan *hijackedStream, 1)
	go func() { taken <- s.hijackStream(hj, c, resp, func() {}) }()
	<-hj.called
	stopped := make(chan struct{})
	go func() { s.detached.shutdown(context.Background()); close(stopped) }()
	for deadline := time.Now().Add(10 * time.Second); goroutinesIn("proxy.(*detachedSet).shutdown") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("shutdown never started")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let it take its list of open streams
	close(hj.release)
	if h := <-taken; h != nil {
		t.Fatal("a failed takeover returned a stream")
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown waited for a stream whose takeover failed")
	}
}

// Under a PROXY protocol listener (a trusted load balancer's header first),
// the limits and the redirect wrappers, the watcher finds the socket
// and reports the client gone.
func TestConnWatcherUnderProxyProtocol(t *testing.T) {
	var w connWatcher
	defer w.close()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ln, err := proxyproto.Listen(raw, proxyproto.Config{Trusted: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A v2 header: PROXY, TCP over IPv4, 10.0.0.1:1234 → 10.0.0.2:443.
	hdr := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x04\xd2\x01\xbb")
	if _, err := c.Write(append(hdr, 'x')); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil { // the header is read before the first byte
		t.Fatal(err)
	}
	if got := s.RemoteAddr().String(); got != "10.0.0.1:1234" {
		t.Fatalf("client address %s, want the header's 10.0.0.1:1234", got)
	}
	gone := make(chan struct{})
	remove, ok := w.add(&redirectedConn{Conn: &guardedConn{Conn: s}}, func() { close(gone) })
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("the watcher could not watch a connection under PROXY protocol")
		}
		return
	}
	defer remove()
	c.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never reported the client gone")
	}
}

// panicBody's Read panics, as a bug under the relay would.
type panicBody struct{}

func (panicBody) Read([]byte) (int, error) { panic("a bug under the relay") }
func (panicBody) Close() error             { return nil }

// takenHijacker hands conn over.
type takenHijacker struct {
	http.ResponseWriter
	conn net.Conn
}

func (h takenHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, nil, nil }

// A panic in a detached stream's relay cuts the stream (no last chunk: the
// client must not take it for a complete answer), still runs the handler's
// deferred steps once (the record), and the stream is counted out.
func TestRunDetachedPanic(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{log: zap.NewNop(), metrics: m}
	conn := &captureConn{}
	h := &hijackedStream{cancel: func() {}, done: make(chan struct{})}
	if ok, err := s.detached.add(h, takenHijacker{conn: conn}); !ok || err != nil {
		t.Fatalf("add: %v, %v", ok, err)
	}
	s.metrics.detached.Inc()
	c := &call{requestID: "r", unwound: make(chan struct{})}
	steps := 0
	c.later = []func(){func() { steps++ }, func() { panic("a step panics too") }, func() { steps++ }}
	close(c.unwound)
	rl := &streamRelay{s: s, c: c, resp: &http.Response{Body: panicBody{}}, ctx: context.Background(), out: h}
	s.runDetached(c, rl, h)
	select {
	case <-h.done:
	default:
		t.Fatal("the stream is not marked done")
	}
	if steps != 2 || c.rec.ErrorType != "InternalFailure" {
		t.Errorf("after a panic: %d of 2 steps ran, error_type %q; want both and InternalFailure", steps, c.rec.ErrorType)
	}
	if !conn.closed || bytes.Contains(conn.buf.Bytes(), []byte("0\r\n\r\n")) {
		t.Errorf("after a panic: connection closed %v, wrote %q; want it closed with no last chunk", conn.closed, conn.buf.Bytes())
	}
	if v := testutil.ToFloat64(m.detached); v != 0 {
		t.Errorf("warden_streams_detached = %v after the stream, want 0", v)
	}
	if len(s.detached.streams) != 0 {
		t.Errorf("%d streams left in the set", len(s.detached.streams))
	}
}
