package proxy_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

const (
	wardenKey    = "AKIAWARDENTEST000001"
	wardenSecret = "warden-test-secret"
	appKey       = "AKIAAPPKEY0000000001"
	appSecret    = "app-secret"
	appProfile   = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	haiku        = "anthropic.claude-3-5-haiku-20241022-v1:0"
	usHaiku      = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
)

// basePolicy is the policy most tests run; ${UPSTREAM} is the emulator.
const basePolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    allow_weak_identity: true # static sidecar tags are weak
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*", "amazon.titan-text-*",
               "meta.llama3-*", "amazon.nova-*", "mistral.*", "cohere.command-r-*", "ai21.jamba-*"]
      operations: [InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens]
`

// recorder captures audit records in memory.
type recorder struct {
	mu    sync.Mutex
	recs  []audit.Record
	begun []string // request ids Begin saw, in order
	ch    chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1024)} }

func (r *recorder) Begin(rec *audit.Record) error {
	r.mu.Lock()
	r.begun = append(r.begun, rec.RequestID)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Write(rec *audit.Record) {
	r.mu.Lock()
	r.recs = append(r.recs, *rec)
	r.mu.Unlock()
	r.ch <- struct{}{}
}
func (r *recorder) Close() error { return nil }

// wait returns once n records exist (records are written after the response
// completes, so a test must wait for them).
func (r *recorder) wait(t *testing.T, n int) []audit.Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.recs) >= n {
			out := append([]audit.Record(nil), r.recs...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d audit records", n)
		}
	}
}

type env struct {
	emu      *bedrocktest.Server
	cp       *bedrocktest.ControlPlane
	srv      *proxy.Server
	endpoint string
	audit    *recorder
	writer   audit.Writer // when set, Warden writes here instead of to audit
	capture  proxy.Capturer
	// profiling serves /debug/pprof/ on e.srv.AdminHandler().
	profiling bool
}

type envOption func(*envOpts)

type envOpts struct {
	policy string
	tls    *tls.Config
}

func withPolicy(p string) envOption   { return func(o *envOpts) { o.policy = p } }
func withTLS(c *tls.Config) envOption { return func(o *envOpts) { o.tls = c } }

func newEmulator(t testing.TB, extraKeys ...string) *bedrocktest.Server {
	creds := map[string]string{wardenKey: wardenSecret}
	for i := 0; i+1 < len(extraKeys); i += 2 {
		creds[extraKeys[i]] = extraKeys[i+1]
	}
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: creds,
		Profiles:    map[string]string{appProfile: haiku},
	})
	t.Cleanup(emu.Close)
	return emu
}

// newControlPlane emulates the Bedrock control plane Warden resolves
// indirect model ids through: appProfile targets haiku in two regions.
func newControlPlane(t testing.TB) *bedrocktest.ControlPlane {
	cp := bedrocktest.NewControlPlane(bedrocktest.ControlPlaneConfig{
		Credentials: map[string]string{wardenKey: wardenSecret},
		InferenceProfiles: map[string]bedrocktest.InferenceProfile{
			appProfile: {Name: "chatbot", Type: "APPLICATION", Models: []string{
				"arn:aws:bedrock:us-east-1::foundation-model/" + haiku,
				"arn:aws:bedrock:us-west-2::foundation-model/" + haiku,
			}},
		},
	})
	t.Cleanup(cp.Close)
	return cp
}

// startEnv runs the emulator and Warden in front of it.
func startEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	o := envOpts{policy: basePolicy}
	for _, f := range opts {
		f(&o)
	}
	e := &env{emu: newEmulator(t), cp: newControlPlane(t), audit: newRecorder()}
	policy := strings.ReplaceAll(o.policy, "${UPSTREAM}", e.emu.URL)
	policy = strings.ReplaceAll(policy, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, policy, "", o.tls)
	return e
}

// start runs Warden with policy on a loopback listener ("proxy" for the
// forward proxy, anything else for the endpoint, over TLS with tlsCfg) and
// sets e.srv and e.endpoint; Warden stops when the test ends.
func (e *env) start(t *testing.T, policy, listener string, tlsCfg *tls.Config) {
	t.Helper()
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	var w audit.Writer = e.audit
	if e.writer != nil {
		w = e.writer
	}
	// Background work (identity sources, verification sweeps) stops with the test.
	e.srv, err = proxy.New(t.Context(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       w,
		Capture:     e.capture,
		Logger:      zaptest.NewLogger(t),
		Profiling:   e.profiling,
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch listener {
	case "proxy":
		go func() { _ = e.srv.ServeProxy(ln) }()
	default:
		go func() { _ = e.srv.ServeEndpoint(ln, tlsCfg) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
	scheme := "http://"
	if tlsCfg != nil && listener != "proxy" {
		scheme = "https://"
	}
	e.endpoint = scheme + ln.Addr().String()
}

// client is the real AWS SDK pointed at Warden, as an app would be with
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME. It signs with the app's own key, which
// the emulator does not accept: only Warden's re-signing gets calls through.
func (e *env) client(t *testing.T, httpClient *http.Client) *bedrockruntime.Client {
	t.Helper()
	o := bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
		RetryMaxAttempts: 1,
	}
	// BufferedClient sidesteps a client-side race between smithy-go and
	// net/http that loopback servers trigger (see its doc).
	if httpClient != nil {
		o.HTTPClient = bedrocktest.BufferedClient(httpClient)
	} else {
		o.HTTPClient = bedrocktest.BufferedClient(nil)
	}
	return bedrockruntime.New(o)
}

func userMsg(text string) []types.Message {
	return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}
}

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// anthropicBody is a minimal native Anthropic Messages body.
const anthropicBody = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`

// allOps are the model-bearing operations exerciseAllOps calls, in order.
var allOps = []string{"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens"}

// exerciseAllOps calls every model-bearing operation once with the real SDK
// client and checks each answer has its family's shape: an Anthropic body,
// stream chunks, Converse usage, stream text ending in metadata, a token count.
func exerciseAllOps(t *testing.T, ctx context.Context, c *bedrockruntime.Client) {
	t.Helper()
	inv, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(haiku), ContentType: aws.String("application/json"), Body: []byte(anthropicBody),
	})
	if err != nil {
		t.Fatalf("InvokeModel: %v", err)
	}
	if !strings.Contains(string(inv.Body), `"content"`) {
		t.Errorf("InvokeModel body is not an Anthropic response: %s", inv.Body)
	}

	st, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(haiku), ContentType: aws.String("application/json"), Body: []byte(anthropicBody),
	})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	chunks := 0
	for ev := range st.GetStream().Events() {
		if _, ok := ev.(*types.ResponseStreamMemberChunk); ok {
			chunks++
		}
	}
	if err := st.GetStream().Err(); err != nil || chunks < 2 {
		t.Fatalf("InvokeModelWithResponseStream: %d chunks, err %v", chunks, err)
	}

	conv, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello there")})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if conv.Usage == nil || aws.ToInt32(conv.Usage.InputTokens) == 0 {
		t.Errorf("Converse usage missing: %+v", conv.Usage)
	}

	cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("stream please")})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	var text strings.Builder
	var sawMeta bool
	for ev := range cs.GetStream().Events() {
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				text.WriteString(d.Value)
			}
		case *types.ConverseStreamOutputMemberMetadata:
			sawMeta = true
		}
	}
	if err := cs.GetStream().Err(); err != nil || text.Len() == 0 || !sawMeta {
		t.Fatalf("ConverseStream: text %q metadata %v err %v", text.String(), sawMeta, err)
	}

	ct, err := c.CountTokens(ctx, &bedrockruntime.CountTokensInput{ModelId: aws.String(haiku),
		Input: &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{Messages: userMsg("count these tokens")}}})
	if err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	if aws.ToInt32(ct.InputTokens) == 0 {
		t.Errorf("CountTokens returned 0")
	}
}
