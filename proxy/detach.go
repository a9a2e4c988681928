package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Detached streams (issue 19). An event-stream answer to an HTTP/1.1 client
// holds its connection for as long as the model writes, mostly idle. Relayed
// from net/http's connection goroutine, each open stream kept that
// goroutine's stack (grown to 16 KiB while the request was checked, never
// shrunk again), net/http's per-connection buffers (10 KiB) and its
// background-read goroutine. Once such an answer is approved to start,
// Warden takes the connection over (http.Hijacker), writes the status line,
// headers and chunked encoding itself from a fresh goroutine, and closes
// the connection at the stream's end (Connection: close, so a client does
// not reuse it). One epoll watcher for all such connections (connWatcher,
// watch_linux.go; a reading goroutine per connection where it cannot)
// notices a client that leaves, which cancels the upstream call as
// net/http's context did.
// The stream guards, the record and its order (written before the client
// sees the stream's end) are those of the inline relay: the same code runs,
// only on another goroutine. HTTP/2 clients keep the inline path.

// hijackedStream is the client side of a detached stream: the connection
// and the chunked encoding written on it.
type hijackedStream struct {
	conn   net.Conn
	cancel context.CancelFunc // the upstream call's
	done   chan struct{}      // closed when the stream and its record are finished
	// pending is the chunk being gathered (after chunkHead bytes of room for
	// its size line) until Flush; pooled between flushes, so an idle stream
	// holds no buffer.
	pending *[]byte
	werr    error
	unwatch func() // ends connWatcher's watch; nil when a goroutine watches
}

// chunkHead is room for a chunk's size line: 16 hex digits and CRLF.
const chunkHead = 18

// maxPendingChunk: a Write that would grow the pending chunk past this
// sends it first, as net/http's buffered writer does when it fills.
const maxPendingChunk = 4 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkHead, chunkHead+maxPendingChunk+512); return &b }}

func (h *hijackedStream) Write(p []byte) (int, error) {
	if h.werr != nil {
		return 0, h.werr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.pending == nil {
		h.pending = chunkPool.Get().(*[]byte)
		*h.pending = (*h.pending)[:chunkHead]
	}
	if len(*h.pending)+len(p) <= chunkHead+maxPendingChunk {
		*h.pending = append(*h.pending, p...)
		return len(p), nil
	}
	// Past the buffer, as net/http's writer does: what is pending and p
	// leave now, so a client that stopped reading fails this Write.
	*h.pending = append(*h.pending, p...)
	if err := h.Flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends what was written since the last Flush as one chunk.
func (h *hijackedStream) Flush() error {
	if h.werr != nil {
		return h.werr
	}
	if h.pending == nil {
		return nil
	}
	b := *h.pending
	n := len(b) - chunkHead
	if n == 0 { // an empty chunk would end the answer
		chunkPool.Put(h.pending)
		h.pending = nil
		return nil
	}
	var size [chunkHead]byte
	head := strconv.AppendUint(size[:0], uint64(n), 16)
	head = append(head, '\r', '\n')
	start := chunkHead - len(head)
	copy(b[start:], head)
	b = append(b, '\r', '\n')
	_, err := h.conn.Write(b[start:])
	if cap(b) <= 64<<10 {
		*h.pending = b[:chunkHead]
		chunkPool.Put(h.pending)
	}
	h.pending = nil
	if err != nil {
		h.fail(err)
	}
	return err
}

// fail remembers a write error and, as net/http does when a write to the
// client fails, cancels the call.
func (h *hijackedStream) fail(err error) {
	h.werr = err
	h.cancel()
}

// end sends the last chunk, as net/http does when a handler returns, and
// closes the connection.
func (h *hijackedStream) end(ok bool) {
	if ok && h.Flush() == nil {
		if _, err := h.conn.Write([]byte("0\r\n\r\n")); err == nil {
			h.linger()
		}
	}
	if h.pending != nil {
		chunkPool.Put(h.pending)
		h.pending = nil
	}
	if h.unwatch != nil {
		h.unwatch() // before the descriptor is closed
	}
	_ = h.conn.Close()
}

// lingerTime and lingerBytes bound what linger reads: net/http waits as
// long (rstAvoidanceDelay) after an answer that closes its connection.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// linger, after a complete answer, shuts the connection's write side and
// reads and drops what the client still sends until it closes its side
// (the answer said Connection: close), for a moment at most. Closed with
// bytes unread (a request the client pipelined behind the stream's), a
// socket is reset, and the kernel drops what it has not sent yet: the end
// of the answer, for a client slower than Warden.
func (h *hijackedStream) linger() {
	if cw, ok := h.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if h.conn.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, h.conn, lingerBytes)
}

// watch reads the client connection until it fails, where connWatcher
// cannot watch it: a client that leaves
// (EOF, a reset, a TLS close_notify) cancels the upstream call, which ends
// the relay with the record's 499. Bytes a client sends after its request
// (a pipelined request, never answered: the answer says Connection: close)
// are read and dropped.
func (h *hijackedStream) watch() {
	b := make([]byte, 64)
	for {
		if _, err := h.conn.Read(b); err != nil {
			h.cancel()
			return
		}
	}
}

// detachedSet tracks the detached streams, which http.Server.Shutdown
// neither waits for nor closes.
type detachedSet struct {
	mu      sync.Mutex
	closing bool
	streams map[*hijackedStream]struct{}
}

// add takes hj's connection over for h and registers h, under the set's
// lock, so shutdown sees a stream with its connection or not at all. false
// with no error once Shutdown has begun (the stream is then relayed
// inline, where the server's shutdown sees it); false with the error when
// the takeover failed.
func (d *detachedSet) add(h *hijackedStream, hj http.Hijacker) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return false, nil
	}
	// brw's writer is empty (nothing was written through the
	// ResponseWriter); its reader may hold bytes the client sent after its
	// request, which are dropped.
	conn, _, err := hj.Hijack()
	if err != nil {
		return false, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	h.conn = conn
	if d.streams == nil {
		d.streams = make(map[*hijackedStream]struct{})
	}
	d.streams[h] = struct{}{}
	return true, nil
}

func (d *detachedSet) remove(h *hijackedStream) {
	d.mu.Lock()
	delete(d.streams, h)
	d.mu.Unlock()
}

// shutdown stops new detaches and waits for the open streams to end; when
// ctx ends first it cancels them (their records say so) and waits for
// their records.
func (d *detachedSet) shutdown(ctx context.Context) {
	d.mu.Lock()
	d.closing = true
	open := make([]*hijackedStream, 0, len(d.streams))
	for h := range d.streams {
		open = append(open, h)
	}
	d.mu.Unlock()
	for i, h := range open {
		select {
		case <-h.done:
			continue
		case <-ctx.Done():
		}
		for _, h := range open[i:] {
			h.cancel()
			_ = h.conn.Close()
		}
		break
	}
	for _, h := range open {
		<-h.done
	}
}

// detachable reports whether c's answer may be relayed detached from its
// handler if it turns out to be an event stream: an HTTP/1.1 client whose
// connection can be taken over, asking for a streaming operation.
func (s *Server) detachable(w http.ResponseWriter, r *http.Request, c *call) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || !c.route.Op.Streaming() {
		return false
	}
	_, ok := w.(http.Hijacker)
	return ok
}

// hijackStream takes over w's connection and writes the answer's status line
// and headers (w's, with Transfer-Encoding: chunked and Connection: close).
// nil means the stream stays on net/http's path.
func (s *Server) hijackStream(w http.ResponseWriter, c *call, resp *http.Response, cancel context.CancelFunc) *hijackedStream {
	h := &hijackedStream{cancel: cancel, done: make(chan struct{})}
	if ok, err := s.detached.add(h, w.(http.Hijacker)); !ok {
		if err != nil {
			s.log.Warn("stream: taking over the client connection failed; relaying inline", zapErr(err), zapReq(c.requestID))
		}
		return nil
	}
	conn := h.conn
	s.metrics.detached.Inc()
	var head bytes.Buffer
	head.Grow(512)
	head.WriteString("HTTP/1.1 ")
	head.WriteString(strconv.Itoa(resp.StatusCode))
	head.WriteByte(' ')
	head.WriteString(http.StatusText(resp.StatusCode))
	head.WriteString("\r\n")
	hdr := w.Header()
	_ = hdr.WriteSubset(&head, streamHeaderExclude)
	if _, ok := hdr["Date"]; !ok {
		head.WriteString("Date: ")
		head.WriteString(time.Now().UTC().Format(http.TimeFormat))
		head.WriteString("\r\n")
	}
	head.WriteString("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
	if _, err := conn.Write(head.Bytes()); err != nil {
		h.fail(err)
	}
	return h
}

// streamHeaderExclude: the headers a detached stream's answer sets itself.
var streamHeaderExclude = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Trailer": true}

// runDetached relays a detached stream to its end, then runs what the
// handler left for after the relay (the record, in the order the inline
// path runs it), then ends the chunked answer and closes the connection.
func (s *Server) runDetached(c *call, rl *streamRelay, h *hijackedStream) {
	ok := false
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("stream relay panicked; the stream was cut", zap.Any("panic", p), zapReq(c.requestID))
			if c.rec.ErrorType == "" {
				c.rec.ErrorType = "InternalFailure"
			}
			ok = false
		}
		<-c.unwound // the handler has returned: c.later is complete
		for _, f := range c.later {
			s.runLater(c, f)
		}
		h.cancel()
		h.end(ok)
		s.metrics.detached.Dec()
		s.detached.remove(h)
		close(h.done)
	}()
	rl.run()
	// A stream cut under the relay (its client gone, Shutdown) is not
	// ended cleanly: the client must not take it for a complete answer.
	ok = rl.ctx.Err() == nil
}

// runLater runs one of the handler's deferred steps for a detached stream;
// a panic in one (net/http would have recovered it) is logged and the rest
// still run, so the record is written.
func (s *Server) runLater(c *call, f func()) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("stream: a step after the relay panicked", zap.Any("panic", p), zapReq(c.requestID))
		}
	}()
	f()
}
