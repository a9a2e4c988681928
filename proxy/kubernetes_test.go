package proxy_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/kubetest"
	"github.com/warden-egress/warden/proxy"
)

// TestMain stops the shared kube-apiserver (started by the first test that
// needs it) after the package's tests.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const k8sAudience = "warden.test"

// startK8sEnv runs the emulator and a Warden whose policy (with ${UPSTREAM},
// ${KUBECONFIG} and ${NS} substituted) uses the kubetest cluster. The
// identity sources' informers stop with the test.
func startK8sEnv(t *testing.T, kc *kubetest.Cluster, ns, policy string) *env {
	t.Helper()
	e := &env{emu: newEmulator(t), audit: newRecorder()}
	policy = strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${KUBECONFIG}", kc.Kubeconfig, "${NS}", ns).Replace(policy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.srv, err = proxy.New(ctx, proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeEndpoint(ln, nil) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = e.srv.Shutdown(sctx)
	})
	e.endpoint = "http://" + ln.Addr().String()
	return e
}

// tokenTransport is how an app that can add a header presents its projected
// service-account token: a wrapper around the SDK client's HTTP transport.
// The header is added after signing, so it is not a SigV4 signed header.
type tokenTransport struct {
	header, token string
	next          http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(t.header, t.token)
	return t.next.RoundTrip(r)
}

func converseHaiku(t *testing.T, c *bedrockruntime.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello")})
	return err
}

func wantAccessDenied(t *testing.T, err error, contains string) {
	t.Helper()
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("want AccessDeniedException, got %v", err)
	}
	if !strings.Contains(ade.ErrorMessage(), contains) {
		t.Errorf("message %q does not say %q", ade.ErrorMessage(), contains)
	}
}

// TestKubernetesTokenEndToEnd: the real Go SDK presents a projected
// service-account token (issued by a real kube-apiserver with Warden's
// audience) in a header; Warden verifies it by TokenReview and selects the
// app by k8s.namespace + k8s.serviceaccount. A bad token is a 403 and never
// falls back to the static identity that would have allowed the call; the
// token never reaches the upstream.
func TestKubernetesTokenEndToEnd(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	kc.ServiceAccount(t, ns, "intruder")
	pod := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-0", ServiceAccount: "chatbot", IP: "10.20.0.1"})

	e := startK8sEnv(t, kc, ns, `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static, token]
  static: {app: chatbot, env: prod}
  token: {audience: `+k8sAudience+`, kubeconfig: "${KUBECONFIG}"}
apps:
  - name: chatbot-k8s
    match: {tags: {k8s.namespace: "${NS}", k8s.serviceaccount: chatbot}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
  - name: static-fallback
    allow_weak_identity: true
    match: {tags: {app: chatbot}}
    allow: {models: ["*"], operations: ["*"]}
`)
	with := func(tok string) *bedrockruntime.Client {
		return e.client(t, &http.Client{Transport: tokenTransport{header: "X-Warden-Token", token: tok, next: http.DefaultTransport}})
	}

	// 1. A valid token: allowed as the app selecting namespace + service account.
	tok := kc.Token(t, ns, "chatbot", k8sAudience, pod)
	if err := converseHaiku(t, with(tok)); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	recs := e.audit.wait(t, 1)
	if r := recs[0]; r.App != "chatbot-k8s" || r.Decision != "allow" || r.IdentitySource != identity.SourceToken ||
		r.Tags[identity.TagK8sNamespace] != ns || r.Tags[identity.TagK8sServiceAccount] != "chatbot" || r.Tags[identity.TagK8sPod] != "chatbot-0" {
		t.Errorf("audit record: app %q decision %q source %q tags %v", r.App, r.Decision, r.IdentitySource, r.Tags)
	}
	calls := e.emu.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d upstream calls, want 1", len(calls))
	}
	for k, vs := range calls[0].Header {
		for _, v := range vs {
			if strings.EqualFold(k, "X-Warden-Token") || strings.Contains(v, tok) || strings.Contains(v, tok[:40]) {
				t.Errorf("token reached the upstream in header %s", k)
			}
		}
	}

	// 2. A bad token: 403, and no fallback to the static identity (which
	// would have allowed it), and nothing reaches the upstream.
	wantAccessDenied(t, converseHaiku(t, with("not-a-token")), "could not be verified")
	// A token for another audience (e.g. the one IRSA uses) is refused too.
	wantAccessDenied(t, converseHaiku(t, with(kc.Token(t, ns, "chatbot", "sts.amazonaws.com", pod))), "could not be verified")
	// 3. A valid token of a service account no app selects: denied by policy.
	wantAccessDenied(t, converseHaiku(t, with(kc.Token(t, ns, "intruder", k8sAudience, nil))), "")
	recs = e.audit.wait(t, 4)
	for _, r := range recs[1:] {
		if r.Decision == "allow" || r.App == "static-fallback" {
			t.Errorf("denied call recorded as %q app %q (source %q)", r.Decision, r.App, r.IdentitySource)
		}
	}
	if n := len(e.emu.Calls()); n != 1 {
		t.Errorf("%d upstream calls, want still 1", n)
	}

	// 4. Without the header the static source answers (loopback), proving
	// the denials above were the token's and not the policy's.
	if err := converseHaiku(t, e.client(t, nil)); err != nil {
		t.Fatalf("no token: %v", err)
	}
	if r := e.audit.wait(t, 5)[4]; r.App != "static-fallback" {
		t.Errorf("no token: app %q", r.App)
	}
}

// TestKubernetesSharedEndToEnd: a shared Warden identifies callers by
// source IP through the pod informer. The test binds its client to
// loopback addresses that pods in the real API server "hold".
func TestKubernetesSharedEndToEnd(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	kc.ServiceAccount(t, ns, "node-agent")
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-0", ServiceAccount: "chatbot", IP: "127.0.20.1",
		Labels: map[string]string{"app": "chatbot"}})
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "agent", ServiceAccount: "node-agent", IP: "127.0.20.2", HostNetwork: true})

	e := startK8sEnv(t, kc, ns, `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [kubernetes]
  trusted_cidrs: [127.0.20.0/24]
  kubernetes: {kubeconfig: "${KUBECONFIG}", reuse_grace: 1s}
apps:
  - name: chatbot-k8s
    match: {tags: {k8s.namespace: "${NS}", k8s.serviceaccount: chatbot}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
  - name: agent
    match: {tags: {k8s.serviceaccount: node-agent}}
    allow: {models: ["*"], operations: ["*"]}
`)
	from := func(ip string) *bedrockruntime.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return e.client(t, &http.Client{Transport: &http.Transport{DialContext: d.DialContext}})
	}
	// The pod's informer event may land just after the source synced.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := converseHaiku(t, from("127.0.20.1"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod IP: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	recs := e.audit.wait(t, 1)
	last := recs[len(recs)-1]
	if last.App != "chatbot-k8s" || last.IdentitySource != identity.SourceKubernetes || last.Tags[identity.TagK8sPod] != "chatbot-0" ||
		last.Tags[identity.TagK8sLabelPrefix+"app"] != "chatbot" {
		t.Errorf("audit: app %q source %q tags %v", last.App, last.IdentitySource, last.Tags)
	}
	// A hostNetwork pod's IP (the node's) and an IP no pod holds: no
	// identity, so no app.
	wantAccessDenied(t, converseHaiku(t, from("127.0.20.2")), "")
	wantAccessDenied(t, converseHaiku(t, from("127.0.20.3")), "")
	// Loopback itself is outside trusted_cidrs.
	wantAccessDenied(t, converseHaiku(t, from("127.0.0.1")), "")
}
