package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

const runtimeHost = "bedrock-runtime.us-east-1.amazonaws.com"

// proxyPolicy serves forward-proxy mode in front of the emulator.
// ${OPERATIONS} and ${EXTRA} let a test narrow the app or add sections.
const proxyPolicy = `
version: 1
listen: {proxy: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: ${SIGNING}}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "amazon.nova-*"]
      operations: [${OPERATIONS}]
${EXTRA}
`

const allOperations = "InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens"

type proxyEnvOpts struct {
	signing    string // "resign" or "passthrough"
	operations string // default allOperations
	extra      string // appended YAML (top-level sections)
	upstream   string // default the emulator's URL
}

// startProxyEnv runs the emulator and Warden's forward proxy (env.endpoint
// holds the proxy URL). The emulator accepts exactly one key: Warden's under
// resign, the app's under passthrough. So a call that succeeds under resign
// proves Warden re-signed it, and one that succeeds under passthrough proves
// the app's own signature (which covers the Host) reached the upstream intact.
func startProxyEnv(t *testing.T, signing string) *env {
	return startProxyEnvOpts(t, proxyEnvOpts{signing: signing})
}

func startProxyEnvOpts(t *testing.T, o proxyEnvOpts) *env {
	t.Helper()
	if o.operations == "" {
		o.operations = allOperations
	}
	key, secret := wardenKey, wardenSecret
	if o.signing == "passthrough" {
		key, secret = appKey, appSecret
	}
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{key: secret},
		Profiles:    map[string]string{appProfile: haiku},
	})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	if o.upstream == "" {
		o.upstream = e.emu.URL
	}
	policy := strings.NewReplacer(
		"${SIGNING}", o.signing,
		"${OPERATIONS}", o.operations,
		"${EXTRA}", o.extra,
		"${UPSTREAM}", o.upstream,
		"${CONTROL_PLANE}", e.cp.URL,
	).Replace(proxyPolicy)
	e.start(t, policy, "proxy", nil)
	return e
}

// proxyTransport is what an app in proxy mode has: HTTPS_PROXY pointing at
// Warden and Warden's CA trusted; h2 or HTTP/1.1 only.
func (e *env) proxyTransport(h2 bool) *http.Transport {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.CA().Certificate())
	pu, _ := url.Parse(e.endpoint)
	tr := &http.Transport{
		Proxy:           http.ProxyURL(pu),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return tr
}

// proxyClient is the real Go SDK configured as an app in proxy mode would
// be, the endpoint left at the real regional host name.
func (e *env) proxyClient(t *testing.T, h2 bool, key, secret string) *bedrockruntime.Client {
	t.Helper()
	return e.proxyClientIn(t, "us-east-1", h2, key, secret)
}

func (e *env) proxyClientIn(t *testing.T, region string, h2 bool, key, secret string) *bedrockruntime.Client {
	t.Helper()
	tr := e.proxyTransport(h2)
	t.Cleanup(tr.CloseIdleConnections)
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(&http.Client{Transport: tr}),
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func protoName(h2 bool) string {
	if h2 {
		return "h2"
	}
	return "h1"
}

func wantProto(h2 bool) string {
	if h2 {
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}

// Every model-bearing operation completes through the forward proxy with the
// endpoint left at the real host name, over HTTP/1.1 and h2, under both
// signing modes; the emulator accepts only the key the mode must deliver.
func TestForwardProxyOperations(t *testing.T) {
	wantOps := allOps
	for _, signing := range []string{"resign", "passthrough"} {
		for _, h2 := range []bool{false, true} {
			t.Run(signing+"/"+protoName(h2), func(t *testing.T) {
				e := startProxyEnv(t, signing)
				c := e.proxyClient(t, h2, appKey, appSecret)
				ctx := testCtx(t)

				exerciseAllOps(t, ctx, c)

				wantKey := wardenKey
				if signing == "passthrough" {
					wantKey = appKey
				}
				calls := e.emu.Calls()
				if len(calls) != len(wantOps) {
					t.Fatalf("emulator saw %d calls, want %d", len(calls), len(wantOps))
				}
				for i, call := range calls {
					if call.Op != wantOps[i] || !call.SignatureOK || call.AccessKeyID != wantKey {
						t.Errorf("call %d: op %s signatureOK %v key %s (%s), want %s signed by %s", i, call.Op, call.SignatureOK, call.AccessKeyID, call.AuthError, wantOps[i], wantKey)
					}
				}
				// Metadata stamping: in resign Warden writes the app into
				// Converse's body and InvokeModel's header; in passthrough the
				// body and headers must stay exactly as the caller signed them.
				stampedHeader := calls[0].Header.Get("X-Amzn-Bedrock-Request-Metadata")
				stampedBody := strings.Contains(string(calls[2].Body), "warden_app")
				if signing == "passthrough" {
					if stampedHeader != "" || stampedBody {
						t.Errorf("passthrough stamped metadata: header %q, Converse body %s", stampedHeader, calls[2].Body)
					}
					if string(calls[0].Body) != anthropicBody {
						t.Errorf("passthrough changed the InvokeModel body: %s", calls[0].Body)
					}
				} else if !strings.Contains(stampedHeader, "warden_app") || !stampedBody {
					t.Errorf("resign did not stamp metadata: header %q, Converse body %s", stampedHeader, calls[2].Body)
				}

				recs := e.audit.wait(t, len(wantOps))
				for i, r := range recs {
					if r.Decision != "allow" || r.App != "chatbot-prod" || r.Status != 200 || r.Operation != wantOps[i] {
						t.Errorf("audit record %d: %+v", i, r)
					}
					if r.Protocol != wantProto(h2) {
						t.Errorf("audit record %d: protocol %q, want %q", i, r.Protocol, wantProto(h2))
					}
					wantSigning := ""
					if signing == "passthrough" {
						wantSigning = "passthrough"
					}
					if r.Mode != "proxy" || r.Host != "bedrock-runtime.us-east-1.amazonaws.com" || r.Signing != wantSigning {
						t.Errorf("audit record %d: mode %q host %q signing %q, want proxy, the runtime host, %q", i, r.Mode, r.Host, r.Signing, wantSigning)
					}
					ak, has := r.Tags["aws.access_key_id"]
					if signing == "passthrough" && ak != appKey {
						t.Errorf("audit record %d: passthrough tags %v, want aws.access_key_id=%s", i, r.Tags, appKey)
					}
					if signing == "resign" && has {
						t.Errorf("audit record %d: resign recorded a caller key id %q it never checked", i, ak)
					}
				}
				if got := connMetric(t, e.srv.Registry(), "intercept"); got < 1 {
					t.Errorf("intercept connections = %v, want ≥ 1", got)
				}
			})
		}
	}
}

// The first ConverseStream event reaches the client through the MITM while
// the upstream still holds back the rest: the emulator waits on a gate that
// the test opens only after the first event arrived.
func TestForwardProxyStreamsEventByEvent(t *testing.T) {
	for _, signing := range []string{"resign", "passthrough"} {
		for _, h2 := range []bool{false, true} {
			t.Run(signing+"/"+protoName(h2), func(t *testing.T) {
				e := startProxyEnv(t, signing)
				gate := make(chan struct{})
				opened := false
				open := func() {
					if !opened {
						opened = true
						close(gate)
					}
				}
				defer open() // the emulator cannot close while a stream waits on the gate
				e.emu.Inject(faultGate("ConverseStream", gate))
				c := e.proxyClient(t, h2, appKey, appSecret)
				ctx := testCtx(t)
				out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if err != nil {
					t.Fatal(err)
				}
				events := out.GetStream().Events()
				select {
				case _, ok := <-events:
					if !ok {
						t.Fatalf("stream ended before the first event: %v", out.GetStream().Err())
					}
				case <-ctx.Done():
					t.Fatal("first event never arrived while the upstream held the rest: the proxy path buffers streams")
				}
				open()
				n := 1
				for range events {
					n++
				}
				if err := out.GetStream().Err(); err != nil || n < 3 {
					t.Fatalf("after the gate: %d events, err %v", n, err)
				}
				if r := e.audit.wait(t, 1)[0]; r.Protocol != wantProto(h2) || r.Status != 200 {
					t.Errorf("record: protocol %q status %d", r.Protocol, r.Status)
				}
			})
		}
	}
}

// Policy denials through the proxy reach the SDK as typed
// AccessDeniedException, and nothing reaches the upstream.
func TestForwardProxyDenials(t *testing.T) {
	for _, signing := range []string{"resign", "passthrough"} {
		for _, h2 := range []bool{false, true} {
			t.Run(signing+"/"+protoName(h2), func(t *testing.T) {
				e := startProxyEnvOpts(t, proxyEnvOpts{signing: signing, operations: "Converse, ConverseStream"})
				c := e.proxyClient(t, h2, appKey, appSecret)
				ctx := testCtx(t)
				cases := []struct {
					name string
					call func() error
					want string // in the message
				}{
					{"model outside allowlist", func() error {
						_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("meta.llama3-8b-instruct-v1:0"), Messages: userMsg("hi")})
						return err
					}, "meta.llama3-8b-instruct-v1:0"},
					{"operation outside allowlist", func() error {
						_, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"), Body: []byte(anthropicBody)})
						return err
					}, "InvokeModel"},
					{"stream of a model outside allowlist", func() error {
						_, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String("amazon.titan-text-express-v1"), Messages: userMsg("hi")})
						return err
					}, "amazon.titan-text-express-v1"},
				}
				for _, tc := range cases {
					err := tc.call()
					var ade *types.AccessDeniedException
					if !errors.As(err, &ade) {
						t.Errorf("%s: got %v, want AccessDeniedException", tc.name, err)
						continue
					}
					if !strings.Contains(ade.ErrorMessage(), tc.want) {
						t.Errorf("%s: message %q does not name %q", tc.name, ade.ErrorMessage(), tc.want)
					}
				}
				if n := len(e.emu.Calls()); n != 0 {
					t.Fatalf("upstream saw %d calls", n)
				}
				for i, r := range e.audit.wait(t, len(cases)) {
					if r.Decision != "deny" || r.Status != 403 || r.Protocol != wantProto(h2) {
						t.Errorf("record %d: %+v", i, r)
					}
				}
				// The allowed call still works on the same client: the denial did
				// not poison the intercepted connection.
				if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
					t.Fatalf("allowed Converse after denials: %v", err)
				}
			})
		}
	}
}

// connMetric reads warden_intercept_connections_total{mode="proxy",action}.
func connMetric(t *testing.T, reg *prometheus.Registry, action string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "warden_intercept_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["mode"] == "proxy" && labels["action"] == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// connectRaw sends CONNECT target to the proxy and returns its answer and
// the connection (with the reader that holds what followed the answer).
func connectRaw(t *testing.T, proxyURL, target string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	pu, _ := url.Parse(proxyURL)
	conn, err := net.DialTimeout("tcp", pu.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	return resp, conn, br
}

// Warden is never an open proxy: CONNECT to anything but a Bedrock runtime
// host it intercepts (or a listed tunnel) and every plain-HTTP proxy request
// get 403 with a message; a runtime host in another region is intercepted
// but each request is denied naming the region; a request whose Host differs
// from the CONNECT target is refused. The connection counter tells them apart.
func TestForwardProxyConnectRefusals(t *testing.T) {
	e := startProxyEnv(t, "resign")
	reg := e.srv.Registry()

	refusals := []struct{ target, want string }{
		{"example.com:443", "example.com:443 refused"},
		{"sts.us-east-1.amazonaws.com:443", "sts.us-east-1.amazonaws.com:443 refused"},
		{runtimeHost + ":8443", runtimeHost + ":8443 refused"},
		{"bedrock-runtime.us-east-1.evil.example:443", "refused"},
		{"127.0.0.1:443", "refused"},
		{"example.com", "not host:port"},
	}
	for i, tc := range refusals {
		resp, _, _ := connectRaw(t, e.endpoint, tc.target)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), tc.want) {
			t.Errorf("CONNECT %s: %d %q, want 403 mentioning %q", tc.target, resp.StatusCode, body, tc.want)
		}
		if got := connMetric(t, reg, "refuse"); got != float64(i+1) {
			t.Errorf("after CONNECT %s: refuse count %v, want %d", tc.target, got, i+1)
		}
	}
	nRefused := len(refusals)

	// A plain-HTTP proxy request (absolute URI, no CONNECT).
	pu, _ := url.Parse(e.endpoint)
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := hc.Get("http://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "plain-HTTP proxying is refused") {
		t.Errorf("GET http://example.com/ through the proxy: %d %q", resp.StatusCode, body)
	}
	nRefused++
	if got := connMetric(t, reg, "refuse"); got != float64(nRefused) {
		t.Errorf("refuse count %v, want %d", got, nRefused)
	}
	if got := connMetric(t, reg, "intercept"); got != 0 {
		t.Errorf("intercept count %v before any intercepted CONNECT", got)
	}

	// Another region's runtime host: intercepted (the CA may sign for it),
	// but Warden forwards to us-east-1 only, so each call is denied.
	ctx := testCtx(t)
	for _, h2 := range []bool{false, true} {
		c := e.proxyClientIn(t, "us-west-2", h2, appKey, appSecret)
		_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
		var ade *types.AccessDeniedException
		if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "us-west-2") {
			t.Errorf("%s: Converse via us-west-2: %v, want AccessDeniedException naming us-west-2", protoName(h2), err)
		}
	}
	if got := connMetric(t, reg, "intercept"); got != 2 {
		t.Errorf("intercept count %v, want 2 (one per us-west-2 client)", got)
	}

	// The Host inside the tunnel must be the CONNECT target.
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.CA().Certificate())
	for _, host := range []string{"bedrock-runtime.us-west-2.amazonaws.com", "example.com", "bedrock-runtime-fips.us-east-1.amazonaws.com"} {
		resp, conn, _ := connectRaw(t, e.endpoint, runtimeHost+":443")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT %s: %s", runtimeHost, resp.Status)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: runtimeHost, RootCAs: pool, NextProtos: []string{"http/1.1"}})
		req, _ := http.NewRequest("POST", "https://"+runtimeHost+"/model/"+haiku+"/converse",
			strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		if err := req.Write(tc); err != nil {
			t.Fatalf("writing request with Host %s: %v", host, err)
		}
		r, err := http.ReadResponse(bufio.NewReader(tc), req)
		if err != nil {
			t.Fatalf("Host %s: %v", host, err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 400 || r.Header.Get("X-Amzn-ErrorType") != "ValidationException" || !strings.Contains(string(b), "does not match the intercepted host") {
			t.Errorf("Host %s inside a tunnel to %s: %d %s %s, want 400 ValidationException", host, runtimeHost, r.StatusCode, r.Header.Get("X-Amzn-ErrorType"), b)
		}
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Errorf("upstream saw %d calls", n)
	}
	if got := connMetric(t, reg, "intercept"); got != 5 {
		t.Errorf("intercept count %v, want 5", got)
	}
	if got := connMetric(t, reg, "refuse"); got != float64(nRefused) {
		t.Errorf("refuse count %v, want %d", got, nRefused)
	}
	for i, r := range e.audit.wait(t, 5) {
		if r.Decision != "deny" || r.Rule != "intercept" {
			t.Errorf("record %d: decision %s rule %s", i, r.Decision, r.Rule)
		}
	}
}

// A host listed in egress.tunnel gets an untouched TLS tunnel: the client
// verifies the server's own certificate (not one of Warden's) and the server
// sees the request. An unlisted port on the same host is refused.
func TestForwardProxyTunnel(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	saw := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "from the tunnelled server")
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	e := startProxyEnvOpts(t, proxyEnvOpts{signing: "resign", extra: `egress: {tunnel: ["localhost:` + port + `"]}`})

	for _, h2 := range []bool{false, true} {
		pu, _ := url.Parse(e.endpoint)
		tlsCfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		tlsCfg.ServerName = "example.com" // a name in httptest's certificate; the dial still goes to localhost
		tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: tlsCfg, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		hc := &http.Client{Transport: tr}
		resp, err := hc.Get("https://localhost:" + port + "/tunnelled")
		if err != nil {
			t.Fatalf("%s: GET through the tunnel: %v", protoName(h2), err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if string(body) != "from the tunnelled server" {
			t.Errorf("%s: body %q", protoName(h2), body)
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(ts.Certificate()) {
			t.Errorf("%s: the client did not see the server's own certificate", protoName(h2))
		}
		if resp.Proto != wantProto(h2) {
			t.Errorf("%s: negotiated %s end to end", protoName(h2), resp.Proto)
		}
	}
	if s := saw(); len(s) != 2 || s[0] != "GET /tunnelled" {
		t.Errorf("server saw %v", s)
	}
	if got := connMetric(t, e.srv.Registry(), "tunnel"); got != 2 {
		t.Errorf("tunnel count %v, want 2", got)
	}

	// Not listed: another port on the same host, another host on the port.
	for _, target := range []string{"localhost:1", "127.0.0.1:" + port, "localhost.example.com:" + port} {
		resp, _, _ := connectRaw(t, e.endpoint, target)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "not in egress.tunnel") {
			t.Errorf("CONNECT %s: %d %q, want 403", target, resp.StatusCode, b)
		}
	}
	if got := connMetric(t, e.srv.Registry(), "refuse"); got != 3 {
		t.Errorf("refuse count %v, want 3", got)
	}
	if s := saw(); len(s) != 2 {
		t.Errorf("server saw %v after refusals", s)
	}
}

// Passthrough fails closed on what it cannot forward intact: no
// Authorization at all, an API key, or a signature over a header Warden drops.
func TestForwardProxyPassthroughFailsClosed(t *testing.T) {
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	sign := func(extra map[string]string) func(*http.Request) {
		return func(req *http.Request) {
			for k, v := range extra {
				req.Header.Set(k, v)
			}
			sum := sha256.Sum256([]byte(body))
			creds := aws.Credentials{AccessKeyID: appKey, SecretAccessKey: appSecret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
				panic(err)
			}
		}
	}
	cases := []struct {
		name       string
		prepare    func(*http.Request)
		status     int
		errType    string
		msg        string
		forwarded  bool
		recordRule string
	}{
		{"no Authorization", func(*http.Request) {}, 403, "AccessDeniedException", "exactly one Authorization header", false, "intercept"},
		{"two Authorization headers", func(req *http.Request) {
			sign(nil)(req)
			req.Header.Add("Authorization", req.Header.Get("Authorization"))
		}, 403, "AccessDeniedException", "exactly one Authorization header", false, "intercept"},
		{"not SigV4", func(req *http.Request) { req.Header.Set("Authorization", "Basic dXNlcjpwYXNz") }, 403, "AccessDeniedException", "not AWS4-HMAC-SHA256", false, "intercept"},
		// An API key forwarded intact would work without Warden too.
		{"Bedrock API key", func(req *http.Request) { req.Header.Set("Authorization", "Bearer ABSKQmVkcm9ja0FQSUtleQ==") }, 403, "AccessDeniedException", "not API keys", false, "intercept"},
		{"signed plus x-api-key", sign(map[string]string{"X-Api-Key": "ABSKQmVkcm9ja0FQSUtleQ=="}), 403, "AccessDeniedException", "not API keys", false, "intercept"},
		{"signed header Warden drops", sign(map[string]string{"X-Custom": "1"}), 400, "ValidationException", `x-custom\" is not one Warden forwards`, false, "intercept"},
		{"signed correctly", sign(nil), 200, "", "", true, ""},
	}
	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			e := startProxyEnv(t, "passthrough")
			tr := e.proxyTransport(h2)
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			for _, tc := range cases {
				before := len(e.emu.Calls())
				req, _ := http.NewRequestWithContext(testCtx(t), "POST", "https://"+runtimeHost+"/model/"+haiku+"/converse", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				tc.prepare(req)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || resp.Header.Get("X-Amzn-ErrorType") != tc.errType || !strings.Contains(string(b), tc.msg) {
					t.Errorf("%s: %d %q %s, want %d %q mentioning %q", tc.name, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b, tc.status, tc.errType, tc.msg)
				}
				if tc.errType != "" {
					var m struct{ Message string }
					if json.Unmarshal(b, &m) != nil || m.Message == "" {
						t.Errorf("%s: error body %q is not AWS-shaped", tc.name, b)
					}
				}
				calls := e.emu.Calls()
				if got := len(calls) > before; got != tc.forwarded {
					t.Errorf("%s: forwarded %v, want %v", tc.name, got, tc.forwarded)
				}
				if tc.forwarded && (!calls[len(calls)-1].SignatureOK || calls[len(calls)-1].AccessKeyID != appKey) {
					t.Errorf("%s: upstream signature %v (%s)", tc.name, calls[len(calls)-1].SignatureOK, calls[len(calls)-1].AuthError)
				}
			}
			for i, r := range e.audit.wait(t, len(cases)) {
				tc := cases[i]
				if r.Status != tc.status || r.Rule != tc.recordRule && tc.recordRule != "" || r.Protocol != wantProto(h2) {
					t.Errorf("%s: record status %d rule %q protocol %s", tc.name, r.Status, r.Rule, r.Protocol)
				}
			}
		})
	}
}

// An upstream that dies in the middle of a unary answer must reach the app
// as an error, never as a success with a short or empty body, over HTTP/1.1
// and h2, whether the upstream declared a Content-Length or not.
func TestForwardProxyTruncatedUnaryIsAnError(t *testing.T) {
	for _, declared := range []bool{true, false} {
		for _, h2 := range []bool{false, true} {
			name := "chunked/" + protoName(h2)
			if declared {
				name = "content-length/" + protoName(h2)
			}
			t.Run(name, func(t *testing.T) {
				up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("X-Amzn-Requestid", "upstream-1")
					if declared {
						w.Header().Set("Content-Length", "500")
					}
					w.WriteHeader(http.StatusOK)
					_, _ = io.WriteString(w, `{"output":{"message":`)
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler) // the upstream connection dies mid-body
				}))
				defer up.Close()
				e := startProxyEnvOpts(t, proxyEnvOpts{signing: "resign", upstream: up.URL})
				c := e.proxyClient(t, h2, appKey, appSecret)
				out, err := c.Converse(testCtx(t), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if err == nil {
					t.Fatalf("a truncated upstream answer reached the app as a success: %+v", out)
				}
				if r := e.audit.wait(t, 1)[0]; r.ErrorType != "UpstreamBodyError" {
					t.Errorf("record error type %q, want UpstreamBodyError", r.ErrorType)
				}
			})
		}
	}
}
