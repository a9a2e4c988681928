package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// limitsPolicy is basePolicy with extra top-level YAML (limits, upstream
// timeouts) in ${EXTRA}.
func limitsPolicy(extra string) string {
	return strings.Replace(basePolicy, "upstream: {region: us-east-1, url: \"${UPSTREAM}\", insecure: true, signing: resign}",
		"upstream: {region: us-east-1, url: \"${UPSTREAM}\", insecure: true, signing: resign${UPSTREAM_EXTRA}}", 1) + extra
}

func startLimitsEnv(t *testing.T, extra, upstreamExtra string, emuCfg *bedrocktest.Config) *env {
	t.Helper()
	var emu *bedrocktest.Server
	if emuCfg != nil {
		emuCfg.Region = "us-east-1"
		emuCfg.Credentials = map[string]string{wardenKey: wardenSecret}
		emu = bedrocktest.NewServer(*emuCfg)
		t.Cleanup(emu.Close)
	} else {
		emu = newEmulator(t)
	}
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	policy := strings.NewReplacer("${UPSTREAM_EXTRA}", upstreamExtra, "${UPSTREAM}", e.emu.URL, "${CONTROL_PLANE}", e.cp.URL).
		Replace(limitsPolicy(extra))
	e.start(t, policy, "", nil)
	return e
}

// metricValue sums a metric's samples whose labels include want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// waitMetric polls until cond holds for the metric or the bound passes.
func waitMetric(t *testing.T, e *env, name string, labels map[string]string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := metricValue(t, e.srv.Registry(), name, labels)
		if cond(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom opens a TCP connection to the endpoint from a chosen loopback
// address, so a test can play several clients.
func dialFrom(t *testing.T, local, endpoint string) net.Conn {
	t.Helper()
	u, _ := url.Parse(endpoint)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func converseOK(t *testing.T, c *bedrockruntime.Client, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatalf("%s: Converse from another client: %v", what, err)
	}
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// The reviewed attack: one h2c connection opens 40 streams, each declaring
// a 25,000,000-byte body, and sends nothing. Warden used to grow each
// body buffer to the declared size before a byte arrived (the heap went
// from 6 MB to 980 MB); now each stream holds one 64 KiB chunk, and another
// client's calls go through meanwhile.
func TestDeclaredBodiesTakeNoMemory(t *testing.T) {
	e := startLimitsEnv(t, "", "", nil)
	u, _ := url.Parse(e.endpoint)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rssBytes()

	conn := dialFrom(t, "127.0.0.2", e.endpoint)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	const streams = 40
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := 0; i < streams; i++ {
		hb.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", u.Host},
			{":path", "/model/" + haiku + "/converse"}, {"content-type", "application/json"}, {"content-length", "25000000"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	go func() { // acknowledge the server's settings, then just drain
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}()
	// Every stream has reached its body read: each holds its first chunk.
	held := waitMetric(t, e, "warden_inflight_body_bytes", nil, func(v float64) bool { return v >= streams*64<<10 })

	converseOK(t, e.client(t, nil), "during 40 declared 25 MB bodies")

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	rssAfter := rssBytes()
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("40 streams × 25,000,000 declared bytes: body budget holds %.0f bytes; heap %d → %d MiB (+%d MiB), RSS %d → %d MiB",
		held, before.HeapAlloc>>20, after.HeapAlloc>>20, grew>>20, rssBefore>>20, rssAfter>>20)
	if held != streams*64<<10 {
		t.Errorf("body budget holds %.0f bytes for %d silent streams, want %d (one 64 KiB chunk each)", held, streams, streams*64<<10)
	}
	// Stated bound: 40 chunks are 2.5 MiB; the rest is slack for the test's
	// own clients. The old code took 1,000 MB here.
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB for bodies that never arrived, want < 32 MiB", grew>>20)
	}
}

// partialBody sends a request declaring size bytes and then sent of them,
// and returns the connection, a reader, and a channel that yields the
// error of the body write.
func partialBody(t *testing.T, conn net.Conn, host string, size, sent int) *bufio.Reader {
	t.Helper()
	head := fmt.Sprintf("POST /model/%s/converse HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", haiku, host, size)
	go func() {
		_, _ = conn.Write([]byte(head))
		_, _ = conn.Write(bytes.Repeat([]byte("a"), sent))
	}()
	return bufio.NewReader(conn)
}

// One address cannot take more than its share of the body budget, however
// many connections it opens; a connection cannot take more than its own
// share with HTTP/2 streams; both get 503 ServiceUnavailableException (the
// SDKs retry it) with nothing forwarded, and other clients carry on.
func TestBodyBudgetShares(t *testing.T) {
	e := startLimitsEnv(t, `
limits: {max_body_bytes: 1000000, inflight_body_bytes: 8000000, source_body_bytes: 2000000, connection_body_bytes: 1000000}
`, "", nil)
	u, _ := url.Parse(e.endpoint)
	calls := len(e.emu.Calls())

	// Per source: two connections each hold ~700 KB, the third crosses 2 MB.
	for i := 0; i < 2; i++ {
		partialBody(t, dialFrom(t, "127.0.0.2", e.endpoint), u.Host, 1000000, 700000)
	}
	waitMetric(t, e, "warden_inflight_body_bytes", nil, func(v float64) bool { return v >= 2*700000 })
	third := dialFrom(t, "127.0.0.2", e.endpoint)
	_ = third.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(partialBody(t, third, u.Host, 1000000, 700000), nil)
	if err != nil {
		t.Fatalf("third connection from one address: %v, want a 503 answer", err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("X-Amzn-ErrorType") != "ServiceUnavailableException" {
		t.Fatalf("third connection from one address: %s %s, want 503 ServiceUnavailableException", resp.Status, resp.Header.Get("X-Amzn-ErrorType"))
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "limits.source_body_bytes") {
		t.Errorf("refusal says %s, want it to name limits.source_body_bytes", body)
	}
	converseOK(t, e.client(t, nil), "while one address holds its share")

	// Per connection: two HTTP/2 streams of one connection, ~700 KB each.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	h2 := &http.Client{Transport: &http.Transport{Protocols: &p, DialContext: d.DialContext}}
	t.Cleanup(h2.CloseIdleConnections)
	type result struct {
		status int
		typ    string
		err    error
	}
	results := make(chan result, 2)
	var pws []*io.PipeWriter
	for i := 0; i < 2; i++ {
		pr, pw := io.Pipe()
		pws = append(pws, pw)
		req, _ := http.NewRequest("POST", e.endpoint+"/model/"+haiku+"/converse", pr)
		req.ContentLength = 1000000
		req.Header.Set("Content-Type", "application/json")
		go func() {
			resp, err := h2.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			resp.Body.Close()
			results <- result{status: resp.StatusCode, typ: resp.Header.Get("X-Amzn-ErrorType")}
		}()
		go func() { _, _ = pw.Write(bytes.Repeat([]byte("a"), 700000)) }()
		if i == 0 {
			waitMetric(t, e, "warden_inflight_body_bytes", nil, func(v float64) bool { return v >= 3*700000 })
		}
	}
	select {
	case r := <-results:
		if r.err != nil || r.status != 503 || r.typ != "ServiceUnavailableException" {
			t.Errorf("second stream on one connection: %d %s %v, want 503 ServiceUnavailableException", r.status, r.typ, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no stream of the HTTP/2 connection was refused its connection's share")
	}
	for _, pw := range pws {
		pw.CloseWithError(errors.New("test over"))
	}
	if got := len(e.emu.Calls()) - calls; got != 1 { // only converseOK's call reached the upstream
		t.Errorf("%d calls reached the upstream, want 1: a refused body must not be forwarded", got)
	}
	for _, l := range []string{"source_body_bytes", "connection_body_bytes"} {
		if v := metricValue(t, e.srv.Registry(), "warden_limit_refusals_total", map[string]string{"limit": l}); v < 1 {
			t.Errorf("warden_limit_refusals_total{limit=%q} = %v, want ≥ 1", l, v)
		}
	}
}

// Connections beyond the per-source bound, and beyond the listener's, are
// closed at once; a slot freed is usable again.
func TestConnectionLimits(t *testing.T) {
	e := startLimitsEnv(t, "limits: {max_connections: 6, max_connections_per_source: 3}\n", "", nil)
	closedSoon := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		held = append(held, dialFrom(t, "127.0.0.4", e.endpoint))
	}
	waitMetric(t, e, "warden_open_connections", nil, func(v float64) bool { return v >= 3 })
	if c := dialFrom(t, "127.0.0.4", e.endpoint); !closedSoon(c) {
		t.Error("a fourth connection from one address stayed open, want it closed (max_connections_per_source: 3)")
	}
	for i := 0; i < 3; i++ {
		held = append(held, dialFrom(t, "127.0.0.5", e.endpoint))
	}
	waitMetric(t, e, "warden_open_connections", nil, func(v float64) bool { return v >= 6 })
	if c := dialFrom(t, "127.0.0.6", e.endpoint); !closedSoon(c) {
		t.Error("a seventh connection stayed open, want it closed (max_connections: 6)")
	}
	held[0].Close()
	waitMetric(t, e, "warden_open_connections", nil, func(v float64) bool { return v <= 5 })
	c := dialFrom(t, "127.0.0.4", e.endpoint)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Errorf("a connection after one closed: %v, want an answer", err)
	} else {
		resp.Body.Close()
	}
	for _, l := range []string{"max_connections", "max_connections_per_source"} {
		if v := metricValue(t, e.srv.Registry(), "warden_limit_refusals_total", map[string]string{"limit": l}); v < 1 {
			t.Errorf("warden_limit_refusals_total{limit=%q} = %v, want ≥ 1", l, v)
		}
	}
}

// Slow bodies (time compressed by config): clients trickling a small body
// a byte at a time, or pausing, are cut with 408 long before their body
// could complete, whatever its size; a large body on a slow but steady link
// passes.
func TestSlowBodies(t *testing.T) {
	e := startLimitsEnv(t, "limits: {body_idle_timeout: 300ms, body_min_rate: 2000}\n", "", nil)
	u, _ := url.Parse(e.endpoint)
	const size = 100
	type outcome struct {
		status  int
		typ     string
		sent    int
		closed  bool
		readErr error
	}
	trickle := func(local string, gap time.Duration, stopAfter int) outcome {
		c := dialFrom(t, local, e.endpoint)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "POST /model/%s/converse HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", haiku, u.Host, size)
		var mu sync.Mutex
		sent := 0
		done := make(chan struct{})
		go func() {
			for i := 0; i < size && i < stopAfter; i++ {
				select {
				case <-done:
					return
				case <-time.After(gap):
				}
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		close(done)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			return outcome{sent: sent, readErr: err}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_, rerr := br.ReadByte()
		return outcome{status: resp.StatusCode, typ: resp.Header.Get("X-Amzn-ErrorType"), sent: sent, closed: rerr != nil}
	}
	// 20 clients sending one byte every 100 ms (10 B/s against 2000 B/s).
	var wg sync.WaitGroup
	outs := make([]outcome, 20)
	for i := range outs {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i] = trickle("127.0.0.7", 100*time.Millisecond, size) }()
	}
	wg.Wait()
	for i, o := range outs {
		if o.status != 408 || o.typ != "RequestTimeoutException" || o.sent >= size || !o.closed {
			t.Errorf("trickling client %d: status %d %s after %d of %d bytes (closed %v, %v); want 408 RequestTimeoutException before the body completes, connection closed",
				i, o.status, o.typ, o.sent, size, o.closed, o.readErr)
		}
	}
	// A client that sends part of its body and stops.
	if o := trickle("127.0.0.8", time.Millisecond, 10); o.status != 408 || !o.closed {
		t.Errorf("pausing client: status %d (closed %v, %v), want 408 and the connection closed", o.status, o.closed, o.readErr)
	}
	recs := e.audit.wait(t, 21)
	rules := map[string]int{}
	for _, r := range recs {
		rules[r.Rule]++
	}
	if rules["limits.body_min_rate"] < 1 || rules["limits.body_idle_timeout"] < 1 {
		t.Errorf("records by rule %v, want limits.body_min_rate and limits.body_idle_timeout", rules)
	}

	// 256 KiB at ~320 KB/s in 16 KiB steps: slow, steady, allowed.
	pad := strings.Repeat("x", 256<<10)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + pad + `"}]}]}`)
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(body); off += 16 << 10 {
			time.Sleep(50 * time.Millisecond)
			if _, err := pw.Write(body[off:min(off+16<<10, len(body))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.endpoint+"/model/"+haiku+"/converse", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("steady slow upload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("steady slow upload of %d bytes: %s, want 200", len(body), resp.Status)
	}
}

// Inside a forward-proxy tunnel the limits hold as on the endpoint: a huge
// header is refused with 431 (goproxy's MITM loop read any size), a client
// that stalls in its headers is disconnected, and the HTTP/2 server in the
// tunnel announces Warden's stream bound (goproxy's own said 250).
func TestInterceptedConnectionLimits(t *testing.T) {
	e := startProxyEnvOpts(t, proxyEnvOpts{signing: "resign", extra: "limits: {header_timeout: 500ms, max_header_bytes: 65536, max_streams_per_connection: 7}\n"})
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.CA().Certificate())
	tunnel := func(proto string) *tls.Conn {
		resp, conn, _ := connectRaw(t, e.endpoint, runtimeHost+":443")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %s", resp.Status)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: runtimeHost, RootCAs: pool, NextProtos: []string{proto}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS in the tunnel: %v", err)
		}
		return tc
	}

	big := tunnel("http/1.1")
	go func(tc *tls.Conn) {
		fmt.Fprintf(tc, "POST /model/%s/converse HTTP/1.1\r\nHost: %s\r\nX-Big: ", haiku, runtimeHost)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for i := 0; i < 64; i++ { // 4 MiB of one header line
			if _, err := tc.Write(chunk); err != nil {
				return
			}
		}
		fmt.Fprintf(tc, "\r\n\r\n")
	}(big)
	resp, err := http.ReadResponse(bufio.NewReader(big), nil)
	if err != nil {
		t.Fatalf("4 MiB header in the tunnel: %v, want a 431 answer", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("4 MiB header in the tunnel: %s, want 431", resp.Status)
	}

	tc := tunnel("http/1.1")
	fmt.Fprintf(tc, "POST /model/%s/converse HTTP/1.1\r\nHost: %s\r\n", haiku, runtimeHost)
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	got, err := io.ReadAll(tc)
	if len(got) > 0 {
		t.Logf("stalled client was sent %q", got)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("a client stalled in its headers inside the tunnel: read %v after %s, want the connection closed (header_timeout 500ms)", err, time.Since(start))
	}

	tc = tunnel("h2")
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(tc, tc)
	_ = fr.WriteSettings()
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatalf("h2 in the tunnel: %v", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("h2 in the tunnel: first frame %T, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 7 {
		t.Errorf("h2 in the tunnel announces %d concurrent streams (set %v), want 7 (limits.max_streams_per_connection)", v, ok)
	}
	if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v > 2*65536 {
		t.Errorf("h2 in the tunnel announces a header list bound of %d (set %v), want about limits.max_header_bytes", v, ok)
	}
}

// smallRcvBuf dials with a small receive buffer, so a client that stops
// reading stops the sender quickly.
func smallRcvBuf(t *testing.T, endpoint string) net.Conn {
	t.Helper()
	u, _ := url.Parse(endpoint)
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A client that stops reading its answer frees the call after
// limits.write_timeout, and the record says so — unary and streamed.
func TestClientStopsReading(t *testing.T) {
	big := strings.Repeat("lorem ipsum ", 16<<20/12) // ~16 MiB of answer
	e := startLimitsEnv(t, "limits: {write_timeout: 500ms}\n", "", &bedrocktest.Config{
		Reply:  func(op, model, prompt string) string { return big },
		Deltas: deltas8K,
	})
	u, _ := url.Parse(e.endpoint)
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	for i, op := range []string{"converse", "converse-stream"} {
		c := smallRcvBuf(t, e.endpoint)
		fmt.Fprintf(c, "POST /model/%s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", haiku, op, u.Host, len(body), body)
		// ... and never read.
		recs := e.audit.wait(t, i+1)
		if r := recs[i]; r.ErrorType != "ClientWriteTimeout" {
			t.Errorf("%s to a client that stopped reading: record error_type %q, want ClientWriteTimeout", op, r.ErrorType)
		}
	}
	if v := metricValue(t, e.srv.Registry(), "warden_limit_refusals_total", map[string]string{"limit": "write_timeout"}); v < 2 {
		t.Errorf("warden_limit_refusals_total{limit=write_timeout} = %v, want 2", v)
	}
}

// Long answers are not slow clients (time compressed by config): a stream
// whose events come every 150 ms for 3 s passes under a 600 ms
// upstream.stream_idle_timeout; one that goes quiet for longer is ended
// with an exception frame the SDK reports, and recorded.
func TestStreamIdleTimeout(t *testing.T) {
	e := startLimitsEnv(t, "", ", stream_idle_timeout: 600ms", &bedrocktest.Config{
		Reply: func(op, model, prompt string) string { return strings.Repeat("token ", 20) },
		Deltas: func(op, text string) []string {
			return strings.SplitAfter(strings.TrimSpace(text), " ")
		},
	})
	c := e.client(t, nil)
	read := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
		if err != nil {
			return "", err
		}
		st := out.GetStream()
		defer st.Close()
		var text strings.Builder
		for ev := range st.Events() {
			if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
					text.WriteString(tx.Value)
				}
			}
		}
		return text.String(), st.Err()
	}

	e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", EventDelay: 150 * time.Millisecond})
	text, err := read()
	if err != nil || strings.Count(text, "token") != 20 {
		t.Fatalf("a stream with an event every 150 ms: %d tokens, %v; want all 20 and no error", strings.Count(text, "token"), err)
	}

	e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", EventDelay: 2 * time.Second})
	_, err = read()
	if err == nil || !strings.Contains(err.Error(), "stream_idle_timeout") {
		t.Fatalf("a stream quiet for 2 s: %v, want the SDK to report Warden's exception naming upstream.stream_idle_timeout", err)
	}
	recs := e.audit.wait(t, 2)
	if r := recs[1]; r.Rule != "upstream.stream_idle_timeout" || r.ErrorType != "ModelStreamErrorException" {
		t.Errorf("record of the cut stream: rule %q error_type %q, want upstream.stream_idle_timeout / ModelStreamErrorException", r.Rule, r.ErrorType)
	}
}

// A client that hangs up mid-stream leaves a record that says so (status
// 499, ClientClosedRequest), not a delivered 200 (the soak found 17,747
// such records).
func TestHungUpStreamIsRecorded(t *testing.T) {
	e := startLimitsEnv(t, "", "", nil)
	gate := make(chan struct{})
	defer close(gate)
	e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", Gate: gate})
	ctx, cancel := context.WithCancel(context.Background())
	out, err := e.client(t, nil).ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	if err != nil {
		t.Fatal(err)
	}
	<-out.GetStream().Events() // the first event arrived
	cancel()
	out.GetStream().Close()
	r := e.audit.wait(t, 1)[0]
	if r.Status != 499 || r.ErrorType != "ClientClosedRequest" {
		t.Errorf("record of a stream whose client hung up: status %d error_type %q, want 499 ClientClosedRequest", r.Status, r.ErrorType)
	}
}

// deltas8K splits a streamed answer into 8 KiB text events (bedrocktest's
// Config.Deltas): a long answer in few, large events.
func deltas8K(_, text string) []string {
	var ps []string
	for off := 0; off < len(text); off += 8 << 10 {
		ps = append(ps, text[off:min(off+8<<10, len(text))])
	}
	return ps
}
