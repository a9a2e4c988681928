package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// serveInProcess runs handler h on req and returns its answer as an
// *http.Response, for goproxy, which relays responses from a RoundTripper.
// The handler runs in its own goroutine. What it writes is held until it
// flushes or returns, so a unary answer reaches the client only after the
// handler (and the call's audit record) is done, while a stream's frames go
// out at each flush, through a pipe that pushes back on a slow client.
func serveInProcess(h http.HandlerFunc, req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	rw := &pipeResponseWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	go func() {
		var panicked error
		defer func() {
			if p := recover(); p != nil {
				// http.ErrAbortHandler and any other panic: cut the body short
				// so the client sees a truncated answer, not a silent success.
				panicked = fmt.Errorf("proxy: handler aborted: %v", p)
			}
			rw.finish(panicked)
		}()
		h(rw, req)
	}()
	<-rw.ready
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
	ready  chan struct{} // closed once status and headers are known

	once    sync.Once
	pending bytes.Buffer // written, not yet flushed
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // 1xx informational answers are not relayed
	}
	w.status = code
	w.sent = w.header.Clone()
	w.once.Do(func() { close(w.ready) })
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.pending.Write(p)
}

// Flush sends what was written; it blocks until the relay took it.
func (w *pipeResponseWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *pipeResponseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
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
	if w.status == 0 {
		if err != nil {
			w.status = http.StatusBadGateway
			w.sent = http.Header{}
			w.once.Do(func() { close(w.ready) })
			_ = w.pw.CloseWithError(err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	if err == nil {
		err = w.FlushError()
	}
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		_ = w.pw.CloseWithError(err)
		return
	}
	_ = w.pw.Close()
}
