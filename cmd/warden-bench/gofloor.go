package main

// Two Go proxies that are not net/http's ReverseProxy, for issue 19's last
// target (Warden at half of nginx's calls/s): they tell whether the Go
// standard library's HTTP stack, rather than Warden's checks, sets the
// ceiling of any Go proxy on this machine.
//
//   - _gosync: net/http's server, and upstream a hand-written synchronous
//     HTTP/1.1 client (one pooled connection per call, request written and
//     answer read on the handler's own goroutine: none of http.Transport's
//     per-connection read and write goroutines and their hand-offs).
//   - _goraw: no net/http server either: a goroutine per connection reads
//     requests with http.ReadRequest and writes the answer itself, over the
//     same synchronous client.
//
// Neither is a product: they forward Converse calls to one upstream for the
// bench (no timeouts but the deadline, no trailers, no 100-continue).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// syncClient is a minimal keep-alive HTTP/1.1 client to one host.
type syncClient struct {
	host string
	mu   sync.Mutex
	idle []*syncConn
}

type syncConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func (sc *syncClient) get() (*syncConn, error) {
	sc.mu.Lock()
	if n := len(sc.idle); n > 0 {
		c := sc.idle[n-1]
		sc.idle = sc.idle[:n-1]
		sc.mu.Unlock()
		return c, nil
	}
	sc.mu.Unlock()
	c, err := net.DialTimeout("tcp", sc.host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &syncConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}, nil
}

func (sc *syncClient) put(c *syncConn) {
	sc.mu.Lock()
	sc.idle = append(sc.idle, c)
	sc.mu.Unlock()
}

// do sends method path with hdr and body (n bytes) and calls answer with the
// upstream's response; the connection is reused when both sides allow it.
func (sc *syncClient) do(method, path string, hdr http.Header, body io.Reader, n int64, answer func(*http.Response) error) error {
	c, err := sc.get()
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if keep {
			sc.put(c)
		} else {
			_ = c.c.Close()
		}
	}()
	_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c.bw, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, sc.host, n)
	for k, vs := range hdr {
		switch k {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Trailer":
			continue
		}
		for _, v := range vs {
			_, _ = c.bw.WriteString(k + ": " + v + "\r\n")
		}
	}
	_, _ = c.bw.WriteString("\r\n")
	if m, err := io.CopyN(c.bw, body, n); err != nil || m != n {
		return fmt.Errorf("request body: %d of %d bytes: %v", m, n, err)
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	err = answer(resp)
	// Drain what the answer left so the connection can carry the next call.
	if _, derr := io.Copy(io.Discard, resp.Body); derr != nil && err == nil {
		err = derr
	}
	_ = resp.Body.Close()
	keep = err == nil && !resp.Close
	return err
}

// syncForward forwards r upstream and writes the answer with set/write.
func syncForward(sc *syncClient, r *http.Request, h http.Header, status func(int), w io.Writer) error {
	if r.ContentLength < 0 {
		return errors.New("chunked request bodies are not forwarded by this bench proxy")
	}
	return sc.do(r.Method, r.URL.RequestURI(), r.Header, r.Body, r.ContentLength, func(resp *http.Response) error {
		for k, vs := range resp.Header {
			switch k {
			case "Connection", "Transfer-Encoding", "Keep-Alive":
				continue
			}
			h[k] = vs
		}
		status(resp.StatusCode)
		buf := benchBufs.Get().(*[]byte)
		defer benchBufs.Put(buf)
		_, err := io.CopyBuffer(w, resp.Body, *buf)
		return err
	})
}

func parseUpstreamHost(ctx context.Context, args []string, name string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("warden-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "the stand-in's base URL (http only)")
	pprofAddr := fs.String("pprof-addr", "", "also serve Go's profiler on this address (/debug/pprof/)")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return "", fmt.Errorf("--upstream %q is not an http:// URL", *upstream)
	}
	servePprof(ctx, *pprofAddr)
	return u.Host, nil
}

// cmdGoSync is the hidden "_gosync" subcommand.
func cmdGoSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	host, err := parseUpstreamHost(ctx, args, "_gosync", stderr)
	if err != nil {
		return err
	}
	sc := &syncClient{host: host}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wrote := false
		err := syncForward(sc, r, w.Header(), func(code int) { wrote = true; w.WriteHeader(code) }, w)
		if err != nil && !wrote {
			http.Error(w, "bench proxy: "+err.Error(), http.StatusBadGateway)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: zap.NewStdLog(zap.NewNop())}
	return serveChild(ctx, srv, ln, "http", stdout)
}

// cmdGoRaw is the hidden "_goraw" subcommand.
func cmdGoRaw(ctx context.Context, args []string, stdout, _ io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, err := parseUpstreamHost(ctx, args, "_goraw", io.Discard)
	if err != nil {
		return err
	}
	sc := &syncClient{host: host}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	go func() { <-ctx.Done(); _ = ln.Close() }()
	fmt.Fprintln(stdout, "http://"+ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go rawServe(sc, c)
	}
}

// rawServe answers the requests of one client connection in order.
func rawServe(sc *syncClient, c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	bw := bufio.NewWriterSize(c, 16<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(120 * time.Second))
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		h := http.Header{}
		var body []byte
		code := 0
		rw := &byteSink{}
		err = syncForward(sc, r, h, func(s int) { code = s }, rw)
		body = rw.b
		if err != nil || code == 0 {
			code, body, h = http.StatusBadGateway, []byte("bench proxy: upstream failed\n"), http.Header{}
		}
		fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
		h.Del("Content-Length")
		_ = h.Write(bw)
		_, _ = bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		_, _ = bw.Write(body)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if err := bw.Flush(); err != nil || r.Close {
			return
		}
	}
}

// byteSink collects a (small) answer so _goraw can state its length.
type byteSink struct{ b []byte }

func (s *byteSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
