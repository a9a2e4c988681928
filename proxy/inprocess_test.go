package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor fails the test if ch is not closed (or sent on) within a bounded
// time: a guard against hangs, not a timing assertion.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out: %s", what)
	}
	var zero T
	return zero
}

type readResult struct {
	data            []byte
	err             error
	handlerReturned bool
}

// readAllAsync reads body to the end in its own goroutine, noting whether
// the handler had returned by the time the first byte arrived.
func readAllAsync(body io.Reader, returned *atomic.Bool) <-chan readResult {
	out := make(chan readResult, 1)
	go func() {
		var res readResult
		first := make([]byte, 1)
		n, err := io.ReadFull(body, first)
		res.handlerReturned = returned.Load()
		if err != nil {
			res.err = err
			res.data = first[:n]
			out <- res
			return
		}
		rest, err := io.ReadAll(body)
		res.data, res.err = append(first, rest...), err
		out <- res
	}()
	return out
}

// A unary answer (head and body) is held until the handler returns, so the
// call's audit record exists before the client has its answer, and it then
// carries its length, so the client can tell a complete answer from a cut one.
func TestServeInProcessHoldsUnaryAnswer(t *testing.T) {
	release := make(chan struct{})
	wrote := make(chan struct{})
	var returned atomic.Bool
	h := func(w http.ResponseWriter, r *http.Request) {
		defer returned.Store(true)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Too-Late", "1") // after WriteHeader: not sent
		_, _ = io.WriteString(w, `{"ok":`)
		_, _ = io.WriteString(w, `true}`)
		close(wrote)
		<-release
	}
	type head struct {
		resp            *http.Response
		err             error
		handlerReturned bool
	}
	heads := make(chan head, 1)
	go func() {
		resp, err := serveInProcess(h, httptest.NewRequest("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse", nil))
		heads <- head{resp, err, returned.Load()}
	}()
	// Writes return with nobody reading: they were held, not sent down the
	// pipe (which would block until a reader took them).
	waitFor(t, wrote, "the handler's Write blocked with no reader: the unary body was not held")
	close(release)
	hd := waitFor(t, heads, "serveInProcess never returned")
	if hd.err != nil {
		t.Fatal(hd.err)
	}
	resp := hd.resp
	defer resp.Body.Close()
	if !hd.handlerReturned {
		t.Error("the head was released before the handler returned")
	}
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Too-Late") != "" {
		t.Errorf("response head: %d %v", resp.StatusCode, resp.Header)
	}
	if resp.ContentLength != int64(len(`{"ok":true}`)) || resp.Header.Get("Content-Length") != "11" {
		t.Errorf("length %d (header %q), want 11", resp.ContentLength, resp.Header.Get("Content-Length"))
	}
	res := waitFor(t, readAllAsync(resp.Body, &returned), "reading the body")
	if res.err != nil || string(res.data) != `{"ok":true}` {
		t.Fatalf("body %q, err %v", res.data, res.err)
	}
	if !res.handlerReturned {
		t.Fatal("the body was readable before the handler returned")
	}
}

// Flushed writes reach the reader while the handler is still running (a
// stream's events go out one by one), through either flush interface.
func TestServeInProcessFlushedWritesReadable(t *testing.T) {
	flushers := map[string]func(http.ResponseWriter) error{
		"http.Flusher": func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return nil },
		"ResponseController": func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		},
	}
	for name, flush := range flushers {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			var returned atomic.Bool
			flushErr := make(chan error, 3)
			h := func(w http.ResponseWriter, r *http.Request) {
				defer returned.Store(true)
				w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
				flushErr <- flush(w) // headers only: nothing to send yet
				_, _ = io.WriteString(w, "event-1")
				flushErr <- flush(w)
				<-release
				_, _ = io.WriteString(w, "event-2")
				flushErr <- flush(w)
			}
			resp, err := serveInProcess(h, httptest.NewRequest("POST", "/model/m/converse-stream", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
				t.Fatalf("response head: %d, length %d", resp.StatusCode, resp.ContentLength)
			}
			first := make(chan []byte, 1)
			go func() {
				b := make([]byte, len("event-1"))
				n, _ := io.ReadFull(resp.Body, b)
				first <- b[:n]
			}()
			if b := waitFor(t, first, "the flushed event never became readable while the handler ran"); string(b) != "event-1" {
				close(release)
				t.Fatalf("first read %q", b)
			}
			if returned.Load() {
				t.Fatal("the handler returned before the test released it")
			}
			close(release)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "event-2" {
				t.Fatalf("rest %q, err %v", rest, err)
			}
			for range 3 {
				if err := <-flushErr; err != nil {
					t.Errorf("flush: %v", err)
				}
			}
		})
	}
}

// A handler that aborts after the head was written leaves a truncated body:
// the reader gets an error, never a clean EOF that would pass a partial
// answer off as complete.
func TestServeInProcessAbortTruncates(t *testing.T) {
	cases := []struct {
		name       string
		h          http.HandlerFunc
		status     int
		wantPrefix string
		wantErr    bool // the body read fails
		wantRTErr  bool // nothing was committed: the round trip itself fails
	}{
		{"ErrAbortHandler after a flushed part", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "never sent")
			panic(http.ErrAbortHandler)
		}, http.StatusOK, "partial", true, false},
		{"ErrAbortHandler with nothing flushed", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		}, 0, "", false, true},
		{"ErrAbortHandler short of Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "0123456789")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, http.StatusOK, "0123456789", true, false},
		{"any other panic", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			panic("boom")
		}, http.StatusOK, "x", true, false},
		{"panic before the head", func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		}, 0, "", false, true},
		{"Content-Length set, nothing flushed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "0123456789")
			panic(http.ErrAbortHandler)
		}, 0, "", false, true},
		{"clean return", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "all")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, " of it")
		}, http.StatusOK, "all of it", false, false},
		{"clean return, nothing written", func(w http.ResponseWriter, r *http.Request) {}, http.StatusOK, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			type rt struct {
				resp *http.Response
				err  error
			}
			rts := make(chan rt, 1)
			go func() {
				resp, err := serveInProcess(tc.h, httptest.NewRequest("POST", "/model/m/converse", nil))
				rts <- rt{resp, err}
			}()
			got := waitFor(t, rts, "serveInProcess never returned")
			if tc.wantRTErr {
				if got.err == nil || !strings.Contains(got.err.Error(), "aborted") {
					t.Fatalf("round trip: %v, want the handler's abort (status %d)", got.err, got.resp.StatusCode)
				}
				return
			}
			if got.err != nil {
				t.Fatal(got.err)
			}
			resp := got.resp
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			done := make(chan readResult, 1)
			go func() {
				b, err := io.ReadAll(resp.Body)
				done <- readResult{data: b, err: err}
			}()
			res := waitFor(t, done, "reading the body")
			if tc.wantErr {
				if res.err == nil || errors.Is(res.err, io.EOF) {
					t.Fatalf("body %q ended with %v, want a read error (truncation)", res.data, res.err)
				}
				if !strings.Contains(res.err.Error(), "aborted") {
					t.Errorf("error %v does not say the handler aborted", res.err)
				}
			} else if res.err != nil {
				t.Fatalf("clean handler: read error %v", res.err)
			}
			if !strings.HasPrefix(string(res.data), tc.wantPrefix) || (!tc.wantErr && string(res.data) != tc.wantPrefix) {
				t.Errorf("body %q, want %q", res.data, tc.wantPrefix)
			}
			if tc.wantErr && strings.Contains(string(res.data), "never sent") {
				t.Errorf("unflushed bytes after the abort were delivered: %q", res.data)
			}
		})
	}
}

// A reader that goes away (the client disconnected) unblocks a handler
// waiting in Flush instead of leaving it stuck on the pipe.
func TestServeInProcessReaderGoneUnblocksFlush(t *testing.T) {
	flushed := make(chan error, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "event")
		flushed <- http.NewResponseController(w).Flush()
	}
	resp, err := serveInProcess(h, httptest.NewRequest("POST", "/model/m/converse-stream", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := waitFor(t, flushed, "Flush stayed blocked after the reader closed"); err == nil {
		t.Error("Flush to a closed reader reported success")
	}
}

func TestServeBuffered(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse", nil)
	resp, err := serveBuffered(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"a":`))
		_ = http.NewResponseController(w).Flush() // a no-op: nothing leaves early
		_, _ = w.Write([]byte(`1}`))
	}, req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTeapot || string(body) != `{"a":1}` || resp.ContentLength != 7 ||
		resp.Header.Get("Content-Length") != "7" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q len %d header %v", resp.StatusCode, body, resp.ContentLength, resp.Header)
	}
	for _, p := range []any{http.ErrAbortHandler, "boom"} {
		resp, err = serveBuffered(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("partial"))
			panic(p)
		}, req)
		if err == nil || resp != nil {
			t.Errorf("panic(%v): got %v, %v; want a failed round trip", p, resp, err)
		}
	}
	for path, want := range map[string]bool{"/model/m/converse-stream": true, "/model/m/invoke-with-response-stream": true,
		"/model/m/converse": false, "/model/m/invoke": false, "/model/m/count-tokens": false, "/async-invoke": false} {
		if streamingPath(path) != want {
			t.Errorf("streamingPath(%q) = %v", path, !want)
		}
	}
}
