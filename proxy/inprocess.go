package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// serveInProcess runs handler h on req and returns its answer as an
// *http.Response, for goproxy, which relays responses from a RoundTripper.
// The handler runs in its own goroutine. Nothing it writes, head included,
// leaves until it flushes or returns: a unary answer reaches the client only
// after the handler (and the call's audit record) is done, with its length
// known, while a stream's head and frames go out at each flush, through a
// pipe that pushes back on a slow client.
//
// A handler that aborts (panics, http.ErrAbortHandler included) before
// anything was committed makes the round trip fail, so the client sees a
// failed request; after a flush, it cuts the body short with a read error.
// goproxy's HTTP/2 MITM ends a response whose body failed cleanly, so an
// abort after the head was sent would reach an h2 client as a short but
// complete-looking answer: holding the head is what keeps unary answers safe.
func serveInProcess(h http.HandlerFunc, req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	rw := &pipeResponseWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	go func() {
		var panicked error
		defer func() {
			if p := recover(); p != nil {
				panicked = fmt.Errorf("proxy: handler aborted: %v", p)
			}
			rw.finish(panicked)
		}()
		h(rw, req)
	}()
	<-rw.ready
	if rw.abort != nil {
		return nil, rw.abort
	}
	resp := &http.Response{
		StatusCode: rw.status,
		Status:     strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        rw.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}
	if cl, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil && cl >= 0 {
		resp.ContentLength = cl
	}
	return resp, nil
}

// pipeResponseWriter is the http.ResponseWriter serveInProcess gives the
// handler.
type pipeResponseWriter struct {
	header http.Header
	sent   http.Header // snapshot at WriteHeader
	status int
	pw     *io.PipeWriter
	ready  chan struct{} // closed once the head is committed (first flush or return), or abort is set
	abort  error         // the handler aborted before committing anything

	once      sync.Once
	committed bool
	pending   bytes.Buffer // written, not yet flushed
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // 1xx informational answers are not relayed
	}
	w.status = code
	w.sent = w.header.Clone()
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.pending.Write(p)
}

// commit releases the head to serveInProcess.
func (w *pipeResponseWriter) commit() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.committed = true
	w.once.Do(func() { close(w.ready) })
}

// Flush sends the head and what was written; it blocks until the relay took it.
func (w *pipeResponseWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *pipeResponseWriter) FlushError() error {
	w.commit()
	if w.pending.Len() == 0 {
		return nil
	}
	_, err := w.pw.Write(w.pending.Bytes())
	w.pending.Reset()
	return err
}

// finish delivers the rest and ends the body, with err if the handler
// aborted.
func (w *pipeResponseWriter) finish(err error) {
	if err != nil {
		if !w.committed {
			w.abort = err
			w.once.Do(func() { close(w.ready) })
		}
		_ = w.pw.CloseWithError(err)
		return
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed && w.status != http.StatusNoContent && w.status != http.StatusNotModified &&
		w.sent.Get("Content-Length") == "" {
		// The whole answer is known: give it a length, so the client can
		// tell a complete answer from a cut one.
		w.sent.Set("Content-Length", strconv.Itoa(w.pending.Len()))
	}
	if err = w.FlushError(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		_ = w.pw.CloseWithError(err)
		return
	}
	_ = w.pw.Close()
}

// serveBuffered runs handler h on req in the caller's goroutine and returns
// its whole answer: for unary operations, whose answers are held until the
// handler returns anyway, this saves serveInProcess's goroutine hand-offs
// and pipe (tens of microseconds on a busy two-core host). A handler that
// aborts makes the round trip fail.
func serveBuffered(h http.HandlerFunc, req *http.Request) (resp *http.Response, err error) {
	rw := &bufferedResponseWriter{header: make(http.Header)}
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("proxy: handler aborted: %v", p)
		}
	}()
	h(rw, req)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n := rw.body.Len()
	rw.header.Set("Content-Length", strconv.Itoa(n))
	return &http.Response{
		StatusCode: rw.status,
		Status:     strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        rw.header,
		Body:          io.NopCloser(bytes.NewReader(rw.body.Bytes())),
		ContentLength: int64(n),
		Request:       req,
	}, nil
}

// bufferedResponseWriter collects a whole answer; flushing is a no-op.
type bufferedResponseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponseWriter) Header() http.Header { return w.header }

func (w *bufferedResponseWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
}

func (w *bufferedResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *bufferedResponseWriter) Flush()            {}
func (w *bufferedResponseWriter) FlushError() error { return nil }

// streamingPath reports whether a runtime path names an operation whose
// answer is an event stream, which must be relayed frame by frame.
func streamingPath(p string) bool {
	return strings.HasSuffix(p, "/converse-stream") || strings.HasSuffix(p, "/invoke-with-response-stream") ||
		strings.HasSuffix(p, "/invoke-with-bidirectional-stream")
}
