package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
)

const eventStreamType = "application/vnd.amazon.eventstream"

// maxUpstreamErrorBody bounds how much of an upstream error body Warden reads.
const maxUpstreamErrorBody = 64 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// escapeLabel percent-encodes a path label the way the AWS SDKs do: every
// byte except A-Z a-z 0-9 - . _ ~, including ':' and '/'.
func escapeLabel(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[ch>>4])
		b.WriteByte(hexDigits[ch&15])
	}
	return b.String()
}

// forward sends the authorised call upstream and relays the answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, c *call) {
	ctx := r.Context()
	uctx := ctx
	if s.detachable(w, r, c) {
		// A stream that may be detached from this handler (detach.go) needs
		// an upstream context that outlives it: the handler's, until then.
		var cancel context.CancelFunc
		uctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		c.upCancel, c.upUnlink = cancel, context.AfterFunc(ctx, cancel)
		defer func() {
			if !c.detached {
				c.upUnlink()
				cancel()
			}
		}()
	}
	req, err := s.newUpstreamRequest(uctx, r, c)
	if err != nil {
		s.log.Error("building upstream request", zapErr(err), zapReq(c.requestID))
		s.fail(w, c, bedrock.InternalServer("warden: could not prepare the upstream request"), "upstream")
		return
	}
	sent := time.Now()
	c.forwarded = true
	resp, err := s.upstreamRT.RoundTrip(req)
	if err != nil {
		s.upstreamFailed(w, c, ctx, err)
		return
	}
	// The relay has read the upstream's answer to its end (or given up on
	// it); a detached stream's relay runs this when it ends.
	defer func() {
		if c.detached {
			c.later = append(c.later, func() { c.rec.UpstreamTotal = time.Since(sent); _ = resp.Body.Close() })
			return
		}
		c.rec.UpstreamTotal = time.Since(sent)
		_ = resp.Body.Close() // written out here, where the bodyclose linter sees it
	}()
	c.rec.UpstreamLatency = time.Since(sent)
	c.rec.UpstreamRequestID = resp.Header.Get("X-Amzn-Requestid")
	if c.rec.UpstreamRequestID == "" {
		c.rec.UpstreamRequestID = resp.Header.Get("X-Amz-Requestid")
	}
	c.rec.Status = resp.StatusCode

	if resp.StatusCode >= 300 {
		s.relayError(w, c, resp)
		return
	}
	c.upstreamOK = true
	if c.route.Op == bedrock.OpStartAsyncInvoke || c.route.Op == bedrock.OpListAsyncInvokes {
		s.relayAsync(w, c, resp) // remembers the app's jobs, hides others'
		return
	}
	if c.agent != nil {
		// Sessions the answer creates become the app's; ListSessions keeps
		// only the app's (agent.go).
		if err := s.agentAnswerOwnership(c, resp); err != nil {
			s.fail(w, c, err, "agent-runtime.ownership")
			return
		}
	}
	if ag, dryRun := s.outputGuards(c); ag != nil {
		if isEventStream(resp.Header) {
			copyResponseHeader(w.Header(), resp.Header)
			s.relayGuardedStream(w, c, resp, ag, dryRun)
		} else if isSSE(resp.Header) {
			s.relayGuardedSSE(w, c, resp, ag, dryRun) // sse.go
		} else {
			s.relayGuardedUnary(w, c, resp, ag, dryRun) // guards.go
		}
		return
	}
	copyResponseHeader(w.Header(), resp.Header)
	if isEventStream(resp.Header) {
		s.relayStream(w, c, resp, nil)
		return
	}
	w.WriteHeader(resp.StatusCode)
	// The answer passes as it arrives; a copy is kept only when the tokens
	// are in the body rather than the headers (Converse).
	u, ok := bedrock.UsageFromHeaders(resp.Header)
	sse := isSSE(resp.Header)
	hw := newHashWriter(w, !ok && !sse && usageInBody(c.route.Op), resp.ContentLength)
	hw.also = c.capture
	var dst io.Writer = hw
	var src io.Reader = resp.Body
	var scan *sseUsageScanner
	if sse {
		// Server-sent events pass event by event, as they arrive; their
		// usage is read as they pass, however long the stream (no copy).
		dst = &flushWriter{w: hw, rc: http.NewResponseController(w)}
		scan = &sseUsageScanner{}
		if c.countsStreamText() {
			scan.countText(c.route.Op, requestFamily(c))
		}
		src = io.TeeReader(resp.Body, scan)
	}
	bp := copyBufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(dst, src, *bp)
	copyBufPool.Put(bp)
	if scan != nil {
		c.streamText += scan.textBytes()
	}
	c.rec.BytesOut = n
	c.rec.ResponseSHA256 = hw.hexSum()
	switch {
	case ok:
	case scan != nil:
		// What the upstream stated so far, even when the stream broke off.
		u, ok = scan.Usage()
	case err == nil && !hw.over:
		u, ok = unaryUsage(c, nil, hw.capture)
	}
	hw.release()
	s.recordUsage(c, u, ok)
	if err != nil && (hw.werr != nil || ctx.Err() != nil) {
		// The client stopped reading, or left: an abandoned answer.
		c.rec.Status, c.rec.ErrorType = 499, clientWriteError(ctx)
		return
	}
	if err != nil && ctx.Err() == nil {
		// Headers are gone: all that is left is to cut the response short so
		// the client sees a truncated body rather than a silent success.
		c.rec.ErrorType = "UpstreamBodyError"
		panic(http.ErrAbortHandler)
	}
}

// clientWriteError names why a write to the client failed: it blocked past
// limits.write_timeout, or the client went away.
func clientWriteError(ctx context.Context) string {
	if cs := connStateFrom(ctx); cs != nil && cs.writeTimedOut.Load() {
		return "ClientWriteTimeout"
	}
	return "ClientClosedRequest"
}

// isSSE reports a server-sent event stream (the OpenAI-compatible and
// Anthropic Messages APIs' streams).
func isSSE(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// flushWriter flushes after every write.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// compatErrorType is the record's error type for an OpenAI- or
// Anthropic-shaped error body: error.code or error.type, else what
// ParseError found.
func compatErrorType(body []byte, parsed *bedrock.APIError) string {
	var e struct {
		Error struct {
			Type string `json:"type"`
			Code any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		if code, ok := e.Error.Code.(string); ok && code != "" {
			return truncType(code)
		}
		if e.Error.Type != "" {
			return truncType(e.Error.Type)
		}
	}
	if parsed != nil && parsed.Type != "" {
		return parsed.Type
	}
	return "UnknownError"
}

func truncType(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, eventStreamType)
}

// upstreamFailed maps a transport error to a typed AWS error.
func (s *Server) upstreamFailed(w http.ResponseWriter, c *call, ctx context.Context, err error) {
	if ctx.Err() != nil {
		// The client went away; nobody is listening, but the record says so.
		c.rec.Status = 499
		c.rec.ErrorType = "ClientClosedRequest"
		return
	}
	s.metrics.upstreamErrors.Inc()
	s.log.Warn("upstream request failed", zapErr(err), zapReq(c.requestID))
	s.fail(w, c, bedrock.ServiceUnavailable("warden: the upstream Bedrock endpoint could not be reached (%s)", describeNetErr(err)), "upstream")
}

func describeNetErr(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "reset"):
		return "connection reset"
	case strings.Contains(err.Error(), "EOF"):
		return "connection closed"
	}
	return "network error"
}

// relayError passes an upstream error on. AWS-shaped errors go unchanged; an
// error without an AWS type (a load balancer's HTML page, say) becomes a
// typed error the SDKs understand.
func (s *Server) relayError(w http.ResponseWriter, c *call, resp *http.Response) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamErrorBody))
	if err != nil {
		s.fail(w, c, bedrock.ServiceUnavailable("warden: reading the upstream error response failed"), "upstream")
		return
	}
	parsed := bedrock.ParseError(resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	if c.route.Op.ErrorShape() != bedrock.ErrorAWS && isJSON(body) {
		// The OpenAI and Anthropic APIs answer in their own shapes, which
		// their SDKs read: relayed as they are.
		parsed = &bedrock.APIError{Type: compatErrorType(body, parsed)}
	} else if parsed == nil || parsed.Type == "" || !isJSON(body) {
		e := errorForStatus(resp.StatusCode)
		c.rec.ErrorType = e.Type
		c.answered(writeAPIError(w, c.requestID, e))
		return
	}
	c.rec.ErrorType = parsed.Type
	copyResponseHeader(w.Header(), resp.Header)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	n, _ := w.Write(body)
	c.rec.BytesOut = int64(n)
	c.answered(body[:n])
}

func isJSON(b []byte) bool { return len(b) > 0 && json.Valid(b) }

func errorForStatus(status int) *bedrock.APIError {
	msg := fmt.Sprintf("warden: the upstream answered HTTP %d without an AWS error", status)
	switch {
	case status == http.StatusTooManyRequests:
		return bedrock.Throttling("%s", msg)
	case status == http.StatusForbidden:
		return bedrock.AccessDenied("%s", msg)
	case status >= 500:
		return bedrock.ServiceUnavailable("%s", msg)
	default:
		return bedrock.Validation("%s", msg)
	}
}

// relayStream forwards an event stream frame by frame, flushing after each,
// so the client sees every event as soon as the upstream sends it. If the
// upstream fails mid-stream the client gets an exception frame, which the
// SDKs turn into a typed error, instead of a silently truncated stream.
// With output guards (sg non-nil) each frame passes through sg, which may
// hold text events back until their text is decided (guard.Stream), rewrite
// them, or end the stream with an exception frame.
//
// An HTTP/1.1 client's stream is detached from its handler (detach.go): the
// connection is taken over and the same relay runs on a fresh goroutine,
// while the handler returns and leaves its deferred steps to run after it.
func (s *Server) relayStream(w http.ResponseWriter, c *call, resp *http.Response, sg *guard.Stream) {
	rl := &streamRelay{s: s, c: c, resp: resp, sg: sg, ctx: resp.Request.Context()}
	if c.upCancel != nil {
		if h := s.hijackStream(w, c, resp, c.upCancel); h != nil {
			// The handler's context ends when it returns: from here the
			// client's presence is watched on the connection.
			c.upUnlink()
			c.detached = true
			c.unwound = make(chan struct{})
			rl.out = h
			if rm, ok := s.watcher.add(h.conn, h.cancel); ok {
				h.unwatch = rm
			} else {
				go h.watch()
			}
			go s.runDetached(c, rl, h)
			return
		}
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	rl.out = responseOut{w: w, rc: rc}
	rl.run()
}

// streamOut is where a relayed stream goes: net/http's response, or a
// detached stream's connection.
type streamOut interface {
	Write(p []byte) (int, error)
	Flush() error
}

type responseOut struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (o responseOut) Write(p []byte) (int, error) { return o.w.Write(p) }
func (o responseOut) Flush() error                { return o.rc.Flush() }

// streamRelay is one stream's relay state. It lives on the heap rather
// than in the relay's frames, so a detached relay's goroutine, which rests
// in the upstream read between events, keeps a small stack.
type streamRelay struct {
	s         *Server
	c         *call
	resp      *http.Response
	sg        *guard.Stream
	ctx       context.Context
	out       streamOut
	rd        streamReader
	fr        *bedrock.FrameReader
	sa        streamAudit
	idle      time.Duration
	idleTimer *time.Timer
	idleCut   atomic.Bool
	countText bool
	// textEx and textOut extract the events countText counts, reusing
	// their memory from event to event.
	textEx  bedrock.EventExtractor
	textOut bedrock.Extracted
}

func (rl *streamRelay) run() {
	s, c, resp := rl.s, rl.c, rl.resp
	rl.rd.body = resp.Body
	defer func() { rl.rd.release(); rl.fr = nil }()
	rl.sa.init(c)
	defer rl.sa.done(s, c)
	// upstream.stream_idle_timeout: a stream lives as long as events flow;
	// one that goes quiet is closed under the reader and ended with an
	// exception frame.
	rl.idle = s.upstreamCfg.StreamIdleTimeout
	if rl.idle > 0 {
		rl.idleTimer = time.AfterFunc(rl.idle, func() { rl.idleCut.Store(true); _ = resp.Body.Close() })
		defer rl.idleTimer.Stop()
	}
	// A budgeted stream counts the answer text it relays, which is what it
	// settles if it is cut before its usage event.
	rl.countText = c.countsStreamText()
	rl.fr = bedrock.NewFrameReader(&rl.rd)
	for rl.step() {
	}
}

// write sends b to the client; false when the client is gone.
func (rl *streamRelay) write(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	c := rl.c
	n, err := rl.out.Write(b)
	c.rec.BytesOut += int64(n)
	rl.sa.h.Write(b[:n])
	if c.capture != nil {
		c.capture.addResp(b[:n])
	}
	if err != nil {
		c.rec.ErrorType = clientWriteError(rl.ctx)
		return false
	}
	return true
}

// stop ends the stream with a guard's exception frame.
func (rl *streamRelay) stop(e *bedrock.APIError, rule string) {
	c := rl.c
	e = agentStreamError(c, e, rule) // agent.go
	c.denied(rule, e.Message)
	c.rec.ErrorType = e.Type
	_ = rl.write(bedrock.EncodeException(e))
	_ = rl.out.Flush()
}

// step relays one frame, or ends the stream; false when it has ended.
func (rl *streamRelay) step() bool {
	if rl.rd.idle() {
		rl.rd.wait() // where an open stream rests, mostly
	}
	f, err := rl.fr.Next()
	if rl.idleTimer != nil && err == nil {
		rl.idleTimer.Reset(rl.idle)
	}
	if err != nil {
		rl.end(err)
		return false
	}
	return rl.relay(f)
}

// end finishes the stream after the upstream read failed or ended.
func (rl *streamRelay) end(err error) {
	s, c, ctx := rl.s, rl.c, rl.ctx
	if rl.idleCut.Load() {
		s.limitMetrics.refusals.WithLabelValues(limitStreamIdle).Inc()
		e := agentStreamError(c, bedrock.ModelStreamError("warden: the upstream sent no stream event for %s (upstream.stream_idle_timeout); the stream was ended", rl.idle), "upstream.stream_idle_timeout")
		c.record(verdict{rule: "upstream.stream_idle_timeout", reason: e.Message})
		c.rec.ErrorType, c.rec.Status = e.Type, http.StatusGatewayTimeout
		_ = rl.write(bedrock.EncodeException(e))
		_ = rl.out.Flush()
		return
	}
	if rl.sg != nil { // release what the guard still holds
		out, blockErr, rule := rl.sg.End()
		if blockErr != nil {
			rl.stop(blockErr, rule)
			return
		}
		if !rl.write(out) {
			return
		}
	}
	// The decoder returns io.EOF itself at a clean end; a wrapped EOF is a failure.
	if err != io.EOF && c.rec.ErrorType == "" && ctx.Err() != nil { //nolint:errorlint // bare io.EOF only
		// The client hung up mid-stream: an abandoned answer, not a delivered one.
		c.rec.Status, c.rec.ErrorType = 499, clientWriteError(ctx)
	}
	if err != io.EOF && c.rec.ErrorType == "" && ctx.Err() == nil { //nolint:errorlint // bare io.EOF only
		e := bedrock.InternalServer("warden: the upstream event stream failed: %v", describeStreamErr(err))
		c.rec.ErrorType = e.Type
		c.rec.Status = 500
		_ = rl.write(bedrock.EncodeException(e))
	}
	_ = rl.out.Flush()
}

// relay passes one frame on; false when the stream has ended.
func (rl *streamRelay) relay(f *bedrock.Frame) bool {
	c := rl.c
	if f.MessageType() == "exception" || f.MessageType() == "error" {
		c.rec.ErrorType = f.ExceptionType()
	}
	rl.sa.usage.Observe(f) // what the upstream counted, whatever a guard does with the event
	out := f.Raw
	if rl.sg != nil {
		var blockErr *bedrock.APIError
		var rule string
		out, blockErr, rule = rl.sg.Next(f)
		if rl.countText { // the guard has extracted the event already
			c.streamText += rl.sg.EventTextBytes()
		}
		if blockErr != nil {
			rl.stop(blockErr, rule)
			return false
		}
	} else if rl.countText {
		c.streamText += rl.streamTextBytes(f)
	}
	if !rl.write(out) {
		return false
	}
	// Flush unless the next frame is already complete in the buffer: an
	// event is never held back waiting for the network, but a burst that
	// arrived together leaves in one write.
	if len(out) > 0 && !frameBuffered(rl.rd.br) {
		if err := rl.out.Flush(); err != nil {
			return false
		}
	}
	return true
}

// streamTextBytes is the answer text one event of the stream carries.
func (rl *streamRelay) streamTextBytes(f *bedrock.Frame) int64 {
	if f.MessageType() != "event" {
		return 0
	}
	c := rl.c
	if err := rl.textEx.Extract(&rl.textOut, c.route.Op, requestFamily(c), f.EventType(), f.Message.Payload); err != nil {
		return 0
	}
	return rl.textOut.TextBytes()
}

// readerPool's readers are held while a stream's events arrive: 4 KiB
// holds a burst of typical events (tens to hundreds of bytes each) for
// frameBuffered, and a frame larger than the buffer is read through it into
// the frame reader's own buffer. At 32 KiB the reader was half of what each
// of 10,000 open streams cost (issue 19); a stream waiting for its next
// event holds none (streamReader).
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// streamReader is the relay's buffered reader of the upstream's answer. A
// stream spends most of its life waiting for the model's next event: when
// nothing is buffered at a frame's start, the buffer goes back to the pool
// and the relay waits (wait) for the first bytes of the next frame in a
// shallow call, so its goroutine rests on a small stack that the runtime
// can shrink; the rest of the frame, and any burst behind it, is read
// through a buffer again.
type streamReader struct {
	body io.Reader
	br   *bufio.Reader // nil while idle
	// head holds what wait read; err is the error that ended it, returned
	// once head is consumed.
	head     [16]byte
	hoff, hn int
	err      error
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.hoff < r.hn {
		n := copy(p, r.head[r.hoff:r.hn])
		r.hoff += n
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.br == nil {
		r.br = readerPool.Get().(*bufio.Reader)
		r.br.Reset(r.body)
	}
	return r.br.Read(p)
}

// idle reports whether nothing is buffered (the next read may wait), and
// then releases the buffer.
func (r *streamReader) idle() bool {
	if r.hoff < r.hn || r.err != nil || (r.br != nil && r.br.Buffered() > 0) {
		return false
	}
	r.release()
	return true
}

// wait reads the next bytes of the answer unbuffered, waiting for them.
func (r *streamReader) wait() {
	r.hn, r.err = r.body.Read(r.head[:])
	r.hoff = 0
}

func (r *streamReader) release() {
	if r.br != nil {
		r.br.Reset(nil)
		readerPool.Put(r.br)
		r.br = nil
	}
}

// frameBuffered reports whether br holds a whole event-stream frame.
func frameBuffered(br *bufio.Reader) bool {
	if br == nil {
		return false
	}
	n := br.Buffered()
	if n < 4 {
		return false
	}
	p, err := br.Peek(4)
	if err != nil {
		return false
	}
	return int(binary.BigEndian.Uint32(p)) <= n
}

func describeStreamErr(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed mid-frame"
	}
	return describeNetErr(err)
}

var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func copyResponseHeader(dst, src http.Header) {
	for k, vs := range src {
		if hopHeaders[k] {
			continue
		}
		dst[k] = vs
	}
}
