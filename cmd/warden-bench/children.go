package main

// The bench's own child processes: an independent Bedrock stand-in and a
// bare reverse proxy, each in its own process so that the proxy under test
// shares nothing (heap, GC, scheduler) with the upstream or the client.
// They are hidden subcommands of warden-bench: the parent runs
// os.Executable() with "_standin" or "_bare" and reads the listening address
// from the child's first line of stdout.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/proxy"
)

// standinAnswer is the stand-in's Converse answer: short prose with usage,
// the shape every Converse answer has.
const standinAnswer = `{"output":{"message":{"role":"assistant","content":[{"text":"Here is the summary. The review covered three ` +
	`regions, the release train moved to a two week cadence, and the team will revisit the capacity plan after the next ` +
	`quarter. Follow-ups are listed in the notes."}]}},"stopReason":"end_turn","usage":{"inputTokens":1024,"outputTokens":48,` +
	`"totalTokens":1072},"metrics":{"latencyMs":1}}`

// standinHandler answers Converse with standinAnswer after reading the whole
// body, and ConverseStream with the held stream of streamsStandin. It checks
// no signature: it stands in for Bedrock's cost-free floor, not its rules
// (bedrocktest is the faithful emulator; here the emulator's own SigV4 and
// JSON work would be measured as part of every mode).
func standinHandler(held *heldStreams) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/model/") {
			http.Error(w, "stand-in: POST /model/{id}/converse[-stream] only", http.StatusNotFound)
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if strings.HasSuffix(r.URL.Path, "/converse-stream") && held != nil {
			held.serve(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000000")
		_, _ = io.WriteString(w, standinAnswer)
	})
}

// cmdStandin is the hidden "_standin" subcommand.
func cmdStandin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench _standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tlsDir := fs.String("tls", "", "serve HTTPS (HTTP/2 by ALPN, as Bedrock does) with a fresh certificate whose CA goes to DIR/ca.crt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	scheme := "http"
	if *tlsDir != "" {
		ss, err := inject.NewSelfSigned([]string{"127.0.0.1"}, 24*time.Hour)
		if err != nil {
			return err
		}
		if err := ss.Write(*tlsDir); err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(ss.Cert, ss.Key)
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
		scheme = "https"
	}
	held := newHeldStreams()
	mux := http.NewServeMux()
	mux.Handle("/model/", standinHandler(held))
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) { held.release() })
	mux.HandleFunc("/rearm", func(w http.ResponseWriter, r *http.Request) { held.rearm() })
	mux.HandleFunc("/held", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, held.count()) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(zap.NewNop())}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv.Protocols = &p
	return serveChild(ctx, srv, ln, scheme, stdout)
}

// cmdBare is the hidden "_bare" subcommand: httputil.ReverseProxy with
// Warden's upstream transport, the Go floor Warden is compared with.
func cmdBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench _bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "the stand-in's base URL")
	pprofAddr := fs.String("pprof-addr", "", "also serve Go's profiler on this address (/debug/pprof/)")
	storeFirst := fs.Bool("store-and-forward", false, "read each request body whole before forwarding it (what any proxy that must inspect a prompt before it leaves does), with no other work")
	if err := fs.Parse(args); err != nil {
		return err
	}
	servePprof(ctx, *pprofAddr)
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("--upstream %q is not a URL", *upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
		},
		Transport: proxy.NewUpstreamTransport(),
		// ReverseProxy's default flushing: streamed answers (chunked, or
		// text/event-stream) at once, others when written whole. Flushing
		// after every write (-1), as the bench did until 2026-12-06, cost
		// the baseline ~20 % of its CPU per call at c=32 and flattered
		// every ratio against it.
		BufferPool: benchBufferPool{},
		ErrorLog:   zap.NewStdLog(zap.NewNop()),
	}
	var h http.Handler = rp
	if *storeFirst {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Sized by Content-Length (wrk sends it), one allocation, no
			// regrowth: the cheapest way to hold a body whole.
			if r.ContentLength < 0 || r.ContentLength > 64<<20 {
				http.Error(w, "bench proxy: Content-Length required (≤ 64 MiB)", http.StatusLengthRequired)
				return
			}
			b := make([]byte, r.ContentLength)
			if _, err := io.ReadFull(r.Body, b); err != nil {
				http.Error(w, "bench proxy: reading the body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
			rp.ServeHTTP(w, r)
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: zap.NewStdLog(zap.NewNop())}
	return serveChild(ctx, srv, ln, "http", stdout)
}

// servePprof serves net/http/pprof on addr until ctx ends (addr "" is off):
// the bench's --cpu-profile reads the Go baselines' profiles from it.
func servePprof(ctx context.Context, addr string) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
}

// serveChild prints the address, serves until ctx ends or stdin closes (the
// parent died), and shuts down.
func serveChild(ctx context.Context, srv *http.Server, ln net.Listener, scheme string, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Fprintln(stdout, scheme+"://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// child is a running child process of the bench.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	URL   string
}

// startChild runs this executable with args and waits for its address line.
func startChild(ctx context.Context, name string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr // the children log nothing but failures
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s did not say its address: %v", name, err)
	}
	c.URL = strings.TrimSpace(line)
	return c, nil
}

func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	if c.stdin != nil {
		_ = c.stdin.Close()
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// heldStreams holds ConverseStream answers open after their first event
// until released: the 10k-open-streams scenario.
type heldStreams struct {
	mu       sync.Mutex
	n        int
	released chan struct{}
}

func newHeldStreams() *heldStreams { return &heldStreams{released: make(chan struct{})} }

func (h *heldStreams) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *heldStreams) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.released:
	default:
		close(h.released)
	}
}

// rearm makes the streams that start from now on wait for the next release.
func (h *heldStreams) rearm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.released:
		h.released = make(chan struct{})
	default:
	}
}

// serve writes a messageStart and a first text delta, holds the stream until
// release (or the client goes), then ends it with its stop and metadata.
func (h *heldStreams) serve(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "no flusher", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	write := func(event, payload string) error {
		_, err := w.Write(bedrock.EncodeEvent(event, []byte(payload)))
		return err
	}
	if write("messageStart", `{"role":"assistant","p":"abcd"}`) != nil ||
		write("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Here is the summary of the review "},"p":"abcd"}`) != nil {
		return
	}
	fl.Flush()
	h.mu.Lock()
	h.n++
	released := h.released
	h.mu.Unlock()
	defer func() { h.mu.Lock(); h.n--; h.mu.Unlock() }()
	select {
	case <-released:
	case <-r.Context().Done():
		return
	}
	_ = write("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"you asked for."},"p":"abcd"}`)
	_ = write("contentBlockStop", `{"contentBlockIndex":0,"p":"abcd"}`)
	_ = write("messageStop", `{"stopReason":"end_turn","p":"abcd"}`)
	_ = write("metadata", `{"usage":{"inputTokens":12,"outputTokens":9,"totalTokens":21},"metrics":{"latencyMs":5},"p":"abcd"}`)
	fl.Flush()
}
