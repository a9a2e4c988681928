package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// Event streams to HTTP/1.1 clients are relayed off their handlers, on a
// connection Warden took over (detach.go, issue 19); HTTP/2 clients keep
// net/http's path. Either way the client sees every event as it comes (the
// upstream holds the rest behind a gate until the first event arrived) and
// the record is the same.
func TestDetachedStreamsByProtocol(t *testing.T) {
	cases := []struct {
		name     string
		start    func(t *testing.T) (*env, *bedrockruntime.Client)
		detached float64
		proto    string
	}{
		{"endpoint/h1", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startEnv(t)
			return e, e.client(t, nil)
		}, 1, "HTTP/1.1"},
		{"endpoint/h2c", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startEnv(t)
			return e, e.client(t, h2cClient())
		}, 0, "HTTP/2.0"},
		{"forward-proxy-tls/h1", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startProxyEnv(t, "resign")
			return e, e.proxyClient(t, false, appKey, appSecret)
		}, 1, "HTTP/1.1"},
		{"forward-proxy-tls/h2", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startProxyEnv(t, "resign")
			return e, e.proxyClient(t, true, appKey, appSecret)
		}, 0, "HTTP/2.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, c := tc.start(t)
			gate := make(chan struct{})
			var once sync.Once
			open := func() { once.Do(func() { close(gate) }) }
			defer open()
			e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", Gate: gate})
			ctx := testCtx(t)
			out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
			if err != nil {
				t.Fatal(err)
			}
			events := out.GetStream().Events()
			if _, ok := <-events; !ok {
				t.Fatalf("stream ended before the first event: %v", out.GetStream().Err())
			}
			if got := metricValue(t, e.srv.Registry(), "warden_streams_detached", nil); got != tc.detached {
				t.Errorf("warden_streams_detached with the stream open = %v, want %v", got, tc.detached)
			}
			open()
			var text strings.Builder
			n := 1
			for ev := range events {
				n++
				if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
					if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
						text.WriteString(tx.Value)
					}
				}
			}
			if err := out.GetStream().Err(); err != nil || n < 3 || text.Len() == 0 {
				t.Fatalf("after the gate: %d events, %d bytes of text, err %v", n, text.Len(), err)
			}
			r := e.audit.wait(t, 1)[0]
			if r.Protocol != tc.proto || r.Status != 200 || r.ErrorType != "" || !r.Usage.Known || r.ResponseSHA256 == "" || r.BytesOut == 0 {
				t.Errorf("record: protocol %q status %d error_type %q usage known %v response hash %q bytes out %d",
					r.Protocol, r.Status, r.ErrorType, r.Usage.Known, r.ResponseSHA256, r.BytesOut)
			}
			waitFor(t, "warden_streams_detached back to 0 and no relay goroutine left", func() bool {
				return metricValue(t, e.srv.Registry(), "warden_streams_detached", nil) == 0 && relayGoroutines() == 0
			})
		})
	}
}

// A client that hangs up in the middle of a detached stream (plain and TLS)
// ends it: the upstream call is cancelled while the upstream still holds
// its next event (the gate stays shut until the test ends), the record says
// 499 ClientClosedRequest, and the stream's goroutines are gone.
func TestDetachedStreamClientGone(t *testing.T) {
	cases := []struct {
		name  string
		start func(t *testing.T) (*env, *bedrockruntime.Client)
	}{
		{"endpoint", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startEnv(t)
			return e, e.client(t, nil)
		}},
		{"forward-proxy-tls", func(t *testing.T) (*env, *bedrockruntime.Client) {
			e := startProxyEnv(t, "resign")
			return e, e.proxyClient(t, false, appKey, appSecret)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, c := tc.start(t)
			gate := make(chan struct{})
			defer close(gate) // after the checks: only a cancelled upstream call ends the relay before
			e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", Gate: gate})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := <-out.GetStream().Events(); !ok {
				t.Fatalf("stream ended before the first event: %v", out.GetStream().Err())
			}
			if got := metricValue(t, e.srv.Registry(), "warden_streams_detached", nil); got != 1 {
				t.Fatalf("warden_streams_detached = %v, want 1: the stream was not detached", got)
			}
			cancel()
			_ = out.GetStream().Close()
			r := e.audit.wait(t, 1)[0]
			if r.Status != 499 || r.ErrorType != "ClientClosedRequest" {
				t.Errorf("record of a detached stream whose client hung up: status %d error_type %q, want 499 ClientClosedRequest", r.Status, r.ErrorType)
			}
			waitFor(t, "warden_streams_detached back to 0 and no relay goroutine left", func() bool {
				return metricValue(t, e.srv.Registry(), "warden_streams_detached", nil) == 0 && relayGoroutines() == 0
			})
		})
	}
}

// A detached stream's answer says Connection: close and Warden closes the
// connection at its end; the Go SDK opens a new connection for its next
// call, which succeeds, while unary answers keep their connection.
func TestDetachedStreamConnectionClose(t *testing.T) {
	e := startEnv(t)
	var dials atomic.Int32
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	rec := &closeRecorder{base: tr}
	c := e.client(t, &http.Client{Transport: rec})
	ctx := testCtx(t)
	stream := func() {
		t.Helper()
		out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
		if err != nil {
			t.Fatalf("ConverseStream: %v", err)
		}
		n := 0
		for range out.GetStream().Events() {
			n++
		}
		if err := out.GetStream().Err(); err != nil || n == 0 {
			t.Fatalf("ConverseStream: %d events, %v", n, err)
		}
	}
	converse := func() {
		t.Helper()
		if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
			t.Fatalf("Converse after a stream: %v", err)
		}
	}
	stream()   // connection 1, closed at the stream's end
	converse() // connection 2
	converse() // connection 2 again
	stream()   // connection 2, closed at the stream's end
	converse() // connection 3
	if got := dials.Load(); got != 3 {
		t.Errorf("connections dialled = %d, want 3 (a new one after each stream, unary answers keep theirs)", got)
	}
	want := []bool{true, false, false, true, false}
	if got := rec.closes(); len(got) != len(want) || !equalBools(got, want) {
		t.Errorf("answers with Connection: close = %v, want %v", got, want)
	}
	e.audit.wait(t, 5)
}

type closeRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	got  []bool
}

func (c *closeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.got = append(c.got, resp.Close)
		c.mu.Unlock()
	}
	return resp, err
}

func (c *closeRecorder) closes() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.got...)
}

func equalBools(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// Shutdown waits for detached streams, which http.Server.Shutdown does not
// see, for half its grace period, then cuts them; their records are
// written before the audit drains.
func TestDetachedStreamShutdown(t *testing.T) {
	e := startEnv(t)
	gate := make(chan struct{})
	defer close(gate)
	e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", Gate: gate})
	ctx := testCtx(t)
	bodies := &bodyRecorder{base: http.DefaultTransport}
	out, err := e.client(t, &http.Client{Transport: bodies}).ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	if err != nil {
		t.Fatal(err)
	}
	events := out.GetStream().Events()
	if _, ok := <-events; !ok {
		t.Fatalf("stream ended before the first event: %v", out.GetStream().Err())
	}
	sctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_ = e.srv.Shutdown(sctx)
	r := e.audit.wait(t, 1)[0]
	if r.Status != 499 {
		t.Errorf("record of a stream cut by shutdown: status %d error_type %q, want 499", r.Status, r.ErrorType)
	}
	for range events {
	}
	// The answer is cut short: no last chunk, so the client's HTTP stack
	// reports a truncated body rather than a complete answer.
	if err := bodies.lastErr(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("the client's last read of a stream cut by shutdown: %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if n := relayGoroutines(); n != 0 {
		t.Errorf("%d relay goroutines left after Shutdown returned", n)
	}
}

// bodyRecorder keeps the error that ended the last answer's body.
type bodyRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	err  error
}

func (b *bodyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(r)
	if err == nil {
		resp.Body = &recordingBody{ReadCloser: resp.Body, b: b}
	}
	return resp, err
}

func (b *bodyRecorder) lastErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

type recordingBody struct {
	io.ReadCloser
	b *bodyRecorder
}

func (r *recordingBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil {
		r.b.mu.Lock()
		r.b.err = err
		r.b.mu.Unlock()
	}
	return n, err
}

// relayGoroutines counts the goroutines relaying or watching detached
// streams.
func relayGoroutines() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "proxy.(*Server).runDetached") + strings.Count(b.String(), "proxy.(*hijackedStream).watch")
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that pipelines a request behind a detached stream's (never
// answered: the answer says Connection: close) still gets the whole stream.
// Closing a socket with bytes unread makes the kernel reset it and drop
// what it has not sent yet: the client here reads its answer only after
// Warden has finished writing it, as a slow client does, and before, it
// got the first few KiB and a reset in place of the rest.
func TestDetachedStreamPipelinedRequestKeepsTheAnswer(t *testing.T) {
	text := strings.Repeat("lorem ipsum ", 256<<10/12) // ~256 KiB of answer
	e := startLimitsEnv(t, "limits: {write_timeout: 20s}\n", "", &bedrocktest.Config{
		Reply:  func(op, model, prompt string) string { return text },
		Deltas: deltas8K,
	})
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", Gate: gate})
	u, _ := url.Parse(e.endpoint)
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	c := smallRcvBuf(t, e.endpoint)
	req := fmt.Sprintf("POST /model/%s/converse-stream HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", haiku, u.Host, len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("answer: %s, Connection: close %v", resp.Status, resp.Close)
	}
	if got := metricValue(t, e.srv.Registry(), "warden_streams_detached", nil); got != 1 {
		t.Fatalf("warden_streams_detached = %v, want 1: the stream was not detached", got)
	}
	// The next request, pipelined; then the rest of the stream, read once
	// Warden has written all of it and closed the connection.
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	open()
	r := e.audit.wait(t, 1)[0]
	waitFor(t, "warden_streams_detached back to 0", func() bool {
		return metricValue(t, e.srv.Registry(), "warden_streams_detached", nil) == 0
	})
	got, err := io.ReadAll(resp.Body)
	if err != nil || int64(len(got)) != r.BytesOut || r.Status != 200 || r.ErrorType != "" {
		t.Fatalf("the client read %d bytes of the stream, then %v; the record: status %d error_type %q, %d bytes out",
			len(got), err, r.Status, r.ErrorType, r.BytesOut)
	}
}
