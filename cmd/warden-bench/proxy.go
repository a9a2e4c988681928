package main

// warden-bench proxy: forward-proxy mode (issue 4) measured against a bare
// goproxy MITM with no policy, against endpoint mode, and against a direct
// call, in one process and one run; plus what interception costs per new
// connection (CONNECT + full TLS handshake with a warm leaf cache, against the
// same handshake with a static pre-built certificate) and the cold-cache leaf
// signature.
//
// Every mode uses the real Go SDK with the same client configuration (the
// SDK's default transport, tracked connections, a pool large enough for the
// concurrent phase). Proxy-mode clients are configured as an app would be:
// HTTPS_PROXY (http.ProxyURL) and Warden's CA trusted, the endpoint left at
// https://bedrock-runtime.us-east-1.amazonaws.com. One CA serves Warden and
// the bare goproxy, so both hand out the same leaf and TLS costs match.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/warden-egress/warden/proxy/mitm"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/elazarl/goproxy"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/stats"
	"github.com/warden-egress/warden/proxy"
)

// bpRuntimeHost is the name proxy-mode clients call and the CA signs for.
const bpRuntimeHost = "bedrock-runtime.us-east-1.amazonaws.com"

const (
	bpDirect      = "direct"
	bpEndpoint    = "endpoint"
	bpGoproxy     = "goproxy"
	bpResign      = "proxy-resign"
	bpPassthrough = "proxy-passthrough"
)

// bpModes in table order; bpGoproxy is the baseline of every ratio.
var bpModes = [...]string{bpDirect, bpEndpoint, bpGoproxy, bpResign, bpPassthrough}

var bpModeTitle = map[string]string{
	bpDirect:      "direct (SDK → emulator)",
	bpEndpoint:    "Warden endpoint (plain http)",
	bpGoproxy:     "bare goproxy MITM (no policy)",
	bpResign:      "Warden proxy, resign",
	bpPassthrough: "Warden proxy, passthrough",
}

// bpHandshakeModes are the listeners whose CONNECT + TLS handshake is timed:
// the bare goproxy with a static certificate and Warden's forward proxy, whose
// leaf comes from CA.Leaf (cached after the warm-up).
var bpHandshakeModes = [...]string{bpGoproxy, bpResign}

type bpOptions struct {
	loadOptions
	handshakes, leafSigns, chunks int
	proto                         string
}

type bpSample struct {
	P50us      float64 `json:"converse_p50_us"`
	P99us      float64 `json:"converse_p99_us"`
	Throughput float64 `json:"converse_concurrent_calls_per_s"`
}

type bpHandshakeSample struct {
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	PerSecond  float64 `json:"handshakes_per_s"` // 1 / mean
	MeanUsEach float64 `json:"mean_us"`
}

type bpLeafSample struct {
	ColdP50us  float64 `json:"cold_p50_us"`
	ColdMeanUs float64 `json:"cold_mean_us"`
	WarmNs     float64 `json:"warm_ns"`
}

type bpModeResult struct {
	Title  string     `json:"title"`
	Median bpSample   `json:"median"`
	Runs   []bpSample `json:"runs"`
	// Against the bare goproxy's medians.
	P50Ratio        float64  `json:"p50_over_goproxy"`
	AddedP50us      float64  `json:"added_p50_vs_direct_us"`
	AddedRatio      *float64 `json:"added_p50_over_goproxy_added,omitempty"`
	ThroughputRatio float64  `json:"throughput_over_goproxy"`
}

type bpHandshakeResult struct {
	Title  string              `json:"title"`
	Median bpHandshakeSample   `json:"median"`
	Runs   []bpHandshakeSample `json:"runs"`
}

type bpReport struct {
	GoVersion   string                        `json:"go_version"`
	GOMAXPROCS  int                           `json:"gomaxprocs"`
	NumCPU      int                           `json:"num_cpu"`
	Runs        int                           `json:"runs"`
	Requests    int                           `json:"requests_c1"`
	Concurrency int                           `json:"concurrency"`
	Requests32  int                           `json:"requests_concurrent"`
	PromptBytes int                           `json:"prompt_bytes"`
	Proto       string                        `json:"proxy_client_protocol"`
	Handshakes  int                           `json:"handshakes"`
	Chunks      int                           `json:"chunks"`
	LeafSigns   int                           `json:"leaf_signs"`
	Baseline    string                        `json:"baseline"`
	Modes       map[string]*bpModeResult      `json:"modes"`
	Handshake   map[string]*bpHandshakeResult `json:"handshake"`
	// Warden's CONNECT + handshake p50 over the bare goproxy's (static certificate).
	HandshakeRatio float64        `json:"handshake_p50_warden_over_static"`
	Leaf           bpLeafSample   `json:"leaf_median"`
	LeafRuns       []bpLeafSample `json:"leaf_runs"`
}

// cmdBenchProxy is `warden-bench proxy`.
func cmdBenchProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bpOptions
	o.register(fs, 5000)
	fs.IntVar(&o.handshakes, "handshakes", 500, "CONNECT + TLS handshakes per run per listener (new connection each)")
	fs.IntVar(&o.leafSigns, "leaf-signs", 100, "cold-cache leaf certificates signed per run (new host each)")
	fs.IntVar(&o.chunks, "chunks", 5, "each phase of a run is cut into this many chunks, the modes taking turns chunk by chunk")
	fs.StringVar(&o.proto, "proto", "h2", "protocol of proxy-mode clients inside the tunnel: h2 (the SDK's default, by ALPN) or h1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.runs < 1 || o.requests < 1 || o.concurrency < 1 || o.requests32 < 1 || o.promptBytes < 1 ||
		o.handshakes < 1 || o.leafSigns < 1 || o.chunks < 1 || o.warmup < 0 {
		return errors.New("--runs, --requests, --concurrency, --requests32, --prompt-bytes, --handshakes, --leaf-signs and --chunks must be positive")
	}
	if o.chunks > min(o.requests, o.requests32, o.handshakes) {
		return errors.New("--chunks must not exceed --requests, --requests32 or --handshakes")
	}
	if o.proto != "h2" && o.proto != "h1" {
		return fmt.Errorf("--proto %q: want h2 or h1", o.proto)
	}

	env, err := newBPEnv(ctx, &o)
	if err != nil {
		return err
	}
	defer env.close()

	progress := func(format string, a ...any) {
		if !o.json {
			fmt.Fprintf(stderr, format, a...)
		}
	}
	progress("bench-proxy: warming up (%d calls per mode, %d handshakes per listener)…\n", o.warmup, min(20, o.handshakes))
	for _, m := range bpModes {
		if err := env.warm(ctx, m); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, max(o.handshakes, o.leafSigns))
	for _, m := range bpHandshakeModes {
		if _, err := env.handshakes(ctx, m, lat[:min(20, o.handshakes)]); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	samples := make(map[string][]bpSample, len(bpModes))
	hsSamples := make(map[string][]bpHandshakeSample, len(bpHandshakeModes))
	var leafSamples []bpLeafSample
	lats := make(map[string][]time.Duration, len(bpModes))
	for _, m := range bpModes {
		lats[m] = make([]time.Duration, max(o.requests, o.handshakes))
	}
	for run := 0; run < o.runs; run++ {
		// Each phase is cut into chunks and the modes take turns chunk by
		// chunk, in an order rotated every chunk and run, so a burst of
		// outside load (a shared machine) lands on every mode alike.
		order := rotate(bpModes[:], run)
		cur := make(map[string]*bpSample, len(bpModes))
		for _, m := range order {
			cur[m] = &bpSample{}
		}
		env.emu.Reset()
		runtime.GC()
		for c := 0; c < o.chunks; c++ {
			for _, m := range rotate(order, c) {
				lo, hi := chunk(o.requests, o.chunks, c)
				if err := env.converseC1(ctx, m, lats[m][lo:hi]); err != nil {
					return err
				}
			}
		}
		for _, m := range order {
			l := lats[m][:o.requests]
			cur[m].P50us, cur[m].P99us = stats.PercentileUS(l, 0.50), stats.PercentileUS(l, 0.99)
		}
		elapsed := make(map[string]time.Duration, len(bpModes))
		runtime.GC()
		for c := 0; c < o.chunks; c++ {
			for _, m := range rotate(order, c) {
				lo, hi := chunk(o.requests32, o.chunks, c)
				d, err := env.runConcurrent(ctx, m, hi-lo)
				if err != nil {
					return err
				}
				elapsed[m] += d
			}
		}
		for _, m := range bpModes {
			cur[m].Throughput = float64(o.requests32) / elapsed[m].Seconds()
			samples[m] = append(samples[m], *cur[m])
		}
		hcur := make(map[string]bpHandshakeSample, len(bpHandshakeModes))
		total := make(map[string]time.Duration, len(bpHandshakeModes))
		runtime.GC()
		for c := 0; c < o.chunks; c++ {
			for _, m := range rotate(bpHandshakeModes[:], run+c) {
				lo, hi := chunk(o.handshakes, o.chunks, c)
				d, err := env.handshakes(ctx, m, lats[m][lo:hi])
				if err != nil {
					return err
				}
				total[m] += d
			}
		}
		for _, m := range bpHandshakeModes {
			l := lats[m][:o.handshakes]
			hcur[m] = bpHandshakeSample{
				MeanUsEach: float64(total[m].Nanoseconds()) / 1e3 / float64(len(l)),
				PerSecond:  float64(len(l)) / total[m].Seconds(),
				P50us:      stats.PercentileUS(l, 0.50),
				P99us:      stats.PercentileUS(l, 0.99),
			}
			hsSamples[m] = append(hsSamples[m], hcur[m])
		}
		ls, err := env.leafCost(run, lat[:o.leafSigns])
		if err != nil {
			return err
		}
		leafSamples = append(leafSamples, ls)

		var b strings.Builder
		for _, m := range bpModes {
			fmt.Fprintf(&b, " %s %.1f µs / %.0f/s;", m, cur[m].P50us, cur[m].Throughput)
		}
		progress("bench-proxy: run %d/%d:%s handshake p50 goproxy %.1f µs, Warden %.1f µs; cold leaf %.1f µs\n",
			run+1, o.runs, b.String(), hcur[bpGoproxy].P50us, hcur[bpResign].P50us, ls.ColdP50us)
	}

	rep := buildBPReport(&o, samples, hsSamples, leafSamples)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBPReport(stdout, &o, rep)
	return nil
}

// chunk is the half-open range of chunk c when n items are cut into k.
func chunk(n, k, c int) (lo, hi int) { return n * c / k, n * (c + 1) / k }

func rotate(modes []string, by int) []string {
	out := make([]string, len(modes))
	for i := range modes {
		out[i] = modes[(i+by)%len(modes)]
	}
	return out
}

// bpEnv is everything the bench runs in-process.
type bpEnv struct {
	o            *bpOptions
	emu          *bedrocktest.Server
	ca           *mitm.CA
	proxyAddr    map[string]string // handshake mode → proxy listener address
	handshakeTLS *tls.Config       // the client side of a handshake (the SDK's defaults)
	clients      map[string]*bedrockruntime.Client
	converse     *bedrockruntime.ConverseInput
	closers      []func()
}

func newBPEnv(ctx context.Context, o *bpOptions) (_ *bpEnv, err error) {
	e := &bpEnv{o: o, clients: make(map[string]*bedrockruntime.Client, len(bpModes)), proxyAddr: map[string]string{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()

	// The emulator accepts Warden's key (re-signed calls) and the app's own
	// (passthrough and the bare goproxy forward the client's signature).
	e.emu = bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{benchKey: benchSecret, benchAppKey: benchAppSecret},
	})
	e.closers = append(e.closers, e.emu.Close)
	target, err := url.Parse(e.emu.URL)
	if err != nil {
		return nil, fmt.Errorf("emulator URL: %w", err)
	}

	// One CA for every intercepting listener: the same leaf everywhere.
	if e.ca, err = mitm.New(mitm.Options{}); err != nil {
		return nil, err
	}
	leaf, err := e.ca.Leaf(bpRuntimeHost)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Certificate())

	// The bare goproxy: MITM with a static certificate, no policy, requests
	// sent to the emulator with the client's own Host and signature over
	// Warden's pooled upstream transport.
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bareTr := proxy.NewUpstreamTransport()
	bareSrv := &http.Server{Handler: newBareGoproxy(leaf, target, bareTr), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = bareSrv.Serve(bareLn) }()
	e.closers = append(e.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bareSrv.Shutdown(sctx)
		bareTr.CloseIdleConnections()
	})
	e.proxyAddr[bpGoproxy] = bareLn.Addr().String()

	// Warden: one server re-signing (endpoint and proxy listeners), one in
	// passthrough (proxy listener only; the endpoint listener always
	// re-signs). Both audit to a file.
	auditDir, err := os.MkdirTemp("", "warden-bench-proxy-")
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(auditDir) })
	endpoints := map[string]string{bpDirect: e.emu.URL}
	for _, signing := range []string{"resign", "passthrough"} {
		listen := "  proxy: 127.0.0.1:0"
		if signing == "resign" {
			listen = "  endpoint: 127.0.0.1:0\n" + listen
		}
		cfg, err := config.ParseConfig(policyFor(listen, signing, e.emu.URL))
		if err != nil {
			return nil, fmt.Errorf("bench-proxy policy (%s): %w", signing, err)
		}
		aw, err := openBenchAudit(ctx, auditDir, signing)
		if err != nil {
			return nil, err
		}
		srv, err := proxy.New(ctx, proxy.Options{
			Config:      cfg,
			Credentials: credentials.NewStaticCredentialsProvider(benchKey, benchSecret, ""),
			Audit:       aw,
			Logger:      zap.NewNop(),
			CA:          e.ca,
		})
		if err != nil {
			_ = aw.Close()
			return nil, err
		}
		e.closers = append(e.closers, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx) // also closes the audit writer
		})
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		go func() { _ = srv.ServeProxy(pln) }()
		mode := bpResign
		if signing == "passthrough" {
			mode = bpPassthrough
		} else {
			eln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				_ = pln.Close()
				return nil, err
			}
			go func() { _ = srv.ServeEndpoint(eln, nil) }()
			endpoints[bpEndpoint] = "http://" + eln.Addr().String()
		}
		e.proxyAddr[mode] = pln.Addr().String()
	}
	endpoints[bpGoproxy] = ""

	// The SDK clients (registered last so their connections close first).
	for _, m := range bpModes {
		tr := &connTracker{}
		e.closers = append(e.closers, tr.closeAll)
		hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 1024
			t.MaxIdleConnsPerHost = 256
			t.DialContext = tr.dial
			t.Proxy = nil
			if addr, ok := e.proxyAddr[m]; ok {
				pu := &url.URL{Scheme: "http", Host: addr}
				t.Proxy = http.ProxyURL(pu)
				t.TLSClientConfig.RootCAs = pool
				if o.proto == "h1" {
					t.ForceAttemptHTTP2 = false
					t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
					t.TLSClientConfig.NextProtos = []string{"http/1.1"}
				}
			}
		})
		opts := bedrockruntime.Options{
			Region:           "us-east-1",
			Credentials:      credentials.NewStaticCredentialsProvider(benchAppKey, benchAppSecret, ""),
			RetryMaxAttempts: 1,
			HTTPClient:       bedrocktest.BufferedClient(hc),
		}
		if m == bpDirect {
			opts.Credentials = credentials.NewStaticCredentialsProvider(benchKey, benchSecret, "")
		}
		if ep := endpoints[m]; ep != "" {
			opts.BaseEndpoint = aws.String(ep)
		}
		e.clients[m] = bedrockruntime.New(opts)
	}

	// The handshake client: the SDK's default TLS settings, Warden's CA,
	// no session cache (every handshake is a full one), ALPN as the SDK's
	// transport offers it.
	e.handshakeTLS = awshttp.NewBuildableClient().GetTransport().TLSClientConfig.Clone()
	e.handshakeTLS.RootCAs = pool
	e.handshakeTLS.ServerName = bpRuntimeHost
	e.handshakeTLS.NextProtos = []string{"h2", "http/1.1"}
	e.handshakeTLS.ClientSessionCache = nil

	prompt := benchPrompt(o.promptBytes)
	e.converse = &bedrockruntime.ConverseInput{ModelId: aws.String(benchModel), Messages: []types.Message{{
		Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}},
	}}}
	return e, nil
}

// newBareGoproxy is a goproxy forward proxy doing only what MITM needs: every
// CONNECT is intercepted with one pre-built certificate (HTTP/1.1 and h2 by
// ALPN, as Warden), and every request goes to the emulator unchanged apart
// from its URL.
func newBareGoproxy(leaf *tls.Certificate, target *url.URL, tr http.RoundTripper) http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.AllowHTTP2 = true
	gp.KeepHeader = true
	gp.Logger = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, Certificates: []tls.Certificate{*leaf}}
	rt := goproxy.RoundTripperFunc(func(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host // req.Host stays the runtime host the client signed
		req.RequestURI = ""
		return tr.RoundTrip(req)
	})
	action := &goproxy.ConnectAction{Action: goproxy.ConnectMitm,
		TLSConfig: func(string, *goproxy.ProxyCtx) (*tls.Config, error) { return tlsCfg, nil }}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		ctx.RoundTripper = rt
		return action, host
	})
	return gp
}

func (e *bpEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

func (e *bpEnv) call(ctx context.Context, m string) error {
	if _, err := e.clients[m].Converse(ctx, e.converse); err != nil {
		return fmt.Errorf("%s mode: Converse: %w", m, err)
	}
	return nil
}

func (e *bpEnv) warm(ctx context.Context, m string) error {
	for i := 0; i < e.o.warmup; i++ {
		if err := e.call(ctx, m); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if e.o.warmup > 0 { // fill the pools the concurrent phase uses
		if _, err := e.runConcurrent(ctx, m, min(e.o.concurrency*2, e.o.requests32)); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

func (e *bpEnv) converseC1(ctx context.Context, m string, lat []time.Duration) error {
	runtime.GC()
	for i := range lat {
		start := time.Now()
		if err := e.call(ctx, m); err != nil {
			return err
		}
		lat[i] = time.Since(start)
	}
	return nil
}

func (e *bpEnv) runConcurrent(ctx context.Context, m string, n int) (time.Duration, error) {
	return concurrently(ctx, e.o.concurrency, n, func(ctx context.Context) error { return e.call(ctx, m) })
}

// h2Hello is an HTTP/2 client preface and an empty SETTINGS frame.
var h2Hello = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")

// handshakes opens len(lat) new connections to mode m's proxy listener, one
// after another; each sends CONNECT for the runtime host, reads the 200 and
// completes a full TLS handshake (the client verifies the chain), then
// closes. lat gets each connection's dial-to-handshake time (the close is
// not timed); the result is their sum.
func (e *bpEnv) handshakes(ctx context.Context, m string, lat []time.Duration) (time.Duration, error) {
	addr := e.proxyAddr[m]
	connect := []byte("CONNECT " + bpRuntimeHost + ":443 HTTP/1.1\r\nHost: " + bpRuntimeHost + ":443\r\n\r\n")
	var d net.Dialer
	var total time.Duration
	for i := range lat {
		t0 := time.Now()
		err := func() error {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(connect); err != nil {
				return err
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("CONNECT: %s", resp.Status)
			}
			if br.Buffered() > 0 {
				return errors.New("CONNECT: bytes after the response")
			}
			tc := tls.Client(c, e.handshakeTLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return err
			}
			lat[i] = time.Since(t0)
			// Untimed: end the connection the way a client would, so
			// the proxy's HTTP/2 server sees a preface and then EOF
			// (a bare close makes it log a failed preface).
			if tc.ConnectionState().NegotiatedProtocol == "h2" {
				if _, err := tc.Write(h2Hello); err != nil {
					return err
				}
			}
			if err := tc.CloseWrite(); err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, tc)
			return nil
		}()
		if err != nil {
			return 0, fmt.Errorf("%s: handshake %d: %w", m, i, err)
		}
		total += lat[i]
	}
	return total, nil
}

// leafCost times CA.Leaf for len(lat) hosts it has never signed for (a
// fresh key pair and signature each), on a CA of its own so the serving
// CA's cache is untouched; and a cached Leaf, averaged.
func (e *bpEnv) leafCost(run int, lat []time.Duration) (bpLeafSample, error) {
	ca, err := mitm.New(mitm.Options{CacheSize: 2 * len(lat)})
	if err != nil {
		return bpLeafSample{}, err
	}
	runtime.GC()
	start := time.Now()
	for i := range lat {
		host := fmt.Sprintf("vpce-%x-%x.bedrock-runtime.us-east-1.vpce.amazonaws.com", run, i)
		t0 := time.Now()
		if _, err := ca.Leaf(host); err != nil {
			return bpLeafSample{}, err
		}
		lat[i] = time.Since(t0)
	}
	s := bpLeafSample{ColdMeanUs: float64(time.Since(start).Nanoseconds()) / 1e3 / float64(len(lat))}
	s.ColdP50us = stats.PercentileUS(lat, 0.50)
	const warmCalls = 100000
	start = time.Now()
	for i := 0; i < warmCalls; i++ {
		if _, err := e.ca.Leaf(bpRuntimeHost); err != nil {
			return bpLeafSample{}, err
		}
	}
	s.WarmNs = float64(time.Since(start).Nanoseconds()) / warmCalls
	return s, nil
}

func buildBPReport(o *bpOptions, samples map[string][]bpSample, hs map[string][]bpHandshakeSample, leaves []bpLeafSample) *bpReport {
	rep := &bpReport{
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Runs: o.runs, Requests: o.requests, Concurrency: o.concurrency, Requests32: o.requests32,
		PromptBytes: o.promptBytes, Proto: o.proto, Handshakes: o.handshakes, LeafSigns: o.leafSigns, Chunks: o.chunks,
		Baseline:  bpGoproxy,
		Modes:     make(map[string]*bpModeResult, len(bpModes)),
		Handshake: make(map[string]*bpHandshakeResult, len(bpHandshakeModes)),
		LeafRuns:  leaves,
	}
	for _, m := range bpModes {
		runs := samples[m]
		rep.Modes[m] = &bpModeResult{Title: bpModeTitle[m], Runs: runs, Median: bpSample{
			P50us:      stats.MedianOf(runs, func(s bpSample) float64 { return s.P50us }),
			P99us:      stats.MedianOf(runs, func(s bpSample) float64 { return s.P99us }),
			Throughput: stats.MedianOf(runs, func(s bpSample) float64 { return s.Throughput }),
		}}
	}
	direct, base := rep.Modes[bpDirect].Median, rep.Modes[bpGoproxy].Median
	baseAdded := base.P50us - direct.P50us
	for _, m := range bpModes {
		r := rep.Modes[m]
		r.AddedP50us = r.Median.P50us - direct.P50us
		if base.P50us > 0 {
			r.P50Ratio = r.Median.P50us / base.P50us
		}
		if baseAdded > 0 && m != bpDirect {
			a := r.AddedP50us / baseAdded
			r.AddedRatio = &a
		}
		if base.Throughput > 0 {
			r.ThroughputRatio = r.Median.Throughput / base.Throughput
		}
	}
	for _, m := range bpHandshakeModes {
		runs := hs[m]
		rep.Handshake[m] = &bpHandshakeResult{Title: bpModeTitle[m], Runs: runs, Median: bpHandshakeSample{
			P50us:      stats.MedianOf(runs, func(s bpHandshakeSample) float64 { return s.P50us }),
			P99us:      stats.MedianOf(runs, func(s bpHandshakeSample) float64 { return s.P99us }),
			PerSecond:  stats.MedianOf(runs, func(s bpHandshakeSample) float64 { return s.PerSecond }),
			MeanUsEach: stats.MedianOf(runs, func(s bpHandshakeSample) float64 { return s.MeanUsEach }),
		}}
	}
	if b := rep.Handshake[bpGoproxy].Median.P50us; b > 0 {
		rep.HandshakeRatio = rep.Handshake[bpResign].Median.P50us / b
	}
	rep.Leaf = bpLeafSample{
		ColdP50us:  stats.MedianOf(leaves, func(s bpLeafSample) float64 { return s.ColdP50us }),
		ColdMeanUs: stats.MedianOf(leaves, func(s bpLeafSample) float64 { return s.ColdMeanUs }),
		WarmNs:     stats.MedianOf(leaves, func(s bpLeafSample) float64 { return s.WarmNs }),
	}
	return rep
}

func printBPReport(out io.Writer, o *bpOptions, rep *bpReport) {
	proto := "h2 (ALPN, the SDK's default)"
	if o.proto == "h1" {
		proto = "HTTP/1.1"
	}
	fmt.Fprintf(out, "## Warden bench-proxy\n\n")
	fmt.Fprintf(out, "%s, GOMAXPROCS=%d (%d CPUs), clients + proxies + emulator in one process; real aws-sdk-go-v2 bedrockruntime client, RetryMaxAttempts 1, keep-alive (warm) connections.\n",
		rep.GoVersion, rep.GOMAXPROCS, rep.NumCPU)
	fmt.Fprintf(out, "Median of %d runs; per run and mode: %d Converse calls at c=1, %d at c=%d; prompt %d bytes. Interleaved: each phase of a run in %d chunks, the modes taking turns chunk by chunk (order rotated).\n",
		o.runs, o.requests, o.requests32, o.concurrency, o.promptBytes, o.chunks)
	fmt.Fprintf(out, "Proxy-mode clients: HTTPS_PROXY + Warden's CA, endpoint https://%s, %s inside the tunnel; direct and endpoint mode: plain HTTP/1.1.\n", bpRuntimeHost, proto)
	fmt.Fprintf(out, "Bare goproxy: goproxy.NewProxyHttpServer, MITM with a static leaf from the same CA, no policy, the client's own signature forwarded; Warden audits through its on-disk spool into a file sink. Ratios are against the bare goproxy.\n\n")

	fmt.Fprintf(out, "| metric |")
	for _, m := range bpModes {
		fmt.Fprintf(out, " %s |", bpModeTitle[m])
	}
	fmt.Fprintf(out, "\n|---|%s\n", strings.Repeat("---:|", len(bpModes)))
	row := func(name string, f func(string, *bpModeResult) string) {
		fmt.Fprintf(out, "| %s |", name)
		for _, m := range bpModes {
			fmt.Fprintf(out, " %s |", f(m, rep.Modes[m]))
		}
		fmt.Fprintln(out)
	}
	row("Converse p50, c=1 (µs)", func(_ string, r *bpModeResult) string { return fmt.Sprintf("%.1f", r.Median.P50us) })
	row("Converse p99, c=1 (µs)", func(_ string, r *bpModeResult) string { return fmt.Sprintf("%.1f", r.Median.P99us) })
	row("p50 / goproxy p50", func(_ string, r *bpModeResult) string { return fmt.Sprintf("%.2f", r.P50Ratio) })
	row("added p50 vs direct (µs)", func(m string, r *bpModeResult) string {
		if m == bpDirect {
			return "—"
		}
		return fmt.Sprintf("%+.1f", r.AddedP50us)
	})
	row("added p50 / goproxy added p50", func(_ string, r *bpModeResult) string {
		if r.AddedRatio == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f", *r.AddedRatio)
	})
	row(fmt.Sprintf("Converse throughput, c=%d (calls/s)", o.concurrency), func(_ string, r *bpModeResult) string { return fmt.Sprintf("%.0f", r.Median.Throughput) })
	row("throughput / goproxy", func(_ string, r *bpModeResult) string { return fmt.Sprintf("%.2f", r.ThroughputRatio) })
	fmt.Fprintln(out)

	fmt.Fprintf(out, "Per run (p50 µs c=1 / calls/s c=%d):\n\n| run |", o.concurrency)
	for _, m := range bpModes {
		fmt.Fprintf(out, " %s |", m)
	}
	fmt.Fprintf(out, "\n|---:|%s\n", strings.Repeat("---|", len(bpModes)))
	for i := 0; i < o.runs; i++ {
		fmt.Fprintf(out, "| %d |", i+1)
		for _, m := range bpModes {
			s := rep.Modes[m].Runs[i]
			fmt.Fprintf(out, " %.1f / %.0f |", s.P50us, s.Throughput)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)

	g, w := rep.Handshake[bpGoproxy].Median, rep.Handshake[bpResign].Median
	fmt.Fprintf(out, "### Interception per new connection\n\n")
	fmt.Fprintf(out, "%d connections per run and listener, one at a time: TCP dial, CONNECT %s:443, 200, full TLS handshake (SDK's default TLS settings, no session resumption, chain verified against the CA), close.\n\n", o.handshakes, bpRuntimeHost)
	fmt.Fprintf(out, "| metric | bare goproxy, static certificate | Warden proxy, warm leaf cache |\n|---|---:|---:|\n")
	fmt.Fprintf(out, "| CONNECT + handshake p50 (µs) | %.1f | %.1f |\n", g.P50us, w.P50us)
	fmt.Fprintf(out, "| CONNECT + handshake p99 (µs) | %.1f | %.1f |\n", g.P99us, w.P99us)
	fmt.Fprintf(out, "| mean (µs) | %.1f | %.1f |\n", g.MeanUsEach, w.MeanUsEach)
	fmt.Fprintf(out, "| handshakes/s (1 / mean, one at a time) | %.0f | %.0f |\n", g.PerSecond, w.PerSecond)
	fmt.Fprintf(out, "\n- Warden / static p50: %.2f\n", rep.HandshakeRatio)
	fmt.Fprintf(out, "- leaf certificate, cold cache (CA.Leaf for a new host: P-256 key + signature), %d per run: p50 %.1f µs, mean %.1f µs\n", o.leafSigns, rep.Leaf.ColdP50us, rep.Leaf.ColdMeanUs)
	fmt.Fprintf(out, "- leaf certificate, warm cache (CA.Leaf, cached host): %.0f ns\n\n", rep.Leaf.WarmNs)
	fmt.Fprintf(out, "Per run (handshake p50 µs goproxy / Warden; cold leaf p50 µs):\n\n| run | goproxy | Warden | cold leaf |\n|---:|---:|---:|---:|\n")
	for i := 0; i < o.runs; i++ {
		fmt.Fprintf(out, "| %d | %.1f | %.1f | %.1f |\n", i+1,
			rep.Handshake[bpGoproxy].Runs[i].P50us, rep.Handshake[bpResign].Runs[i].P50us, rep.LeafRuns[i].ColdP50us)
	}
}
