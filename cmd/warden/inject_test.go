package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	agenttypes "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"gopkg.in/yaml.v3"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/internal/kubetest"
	"github.com/warden-egress/warden/internal/testenv"
	"github.com/warden-egress/warden/proxy/mitm"
)

var injectorConfigs = []string{
	filepath.Join("..", "..", "inject", "testdata", "injector.yaml"),
	filepath.Join("..", "..", "deploy", "kubernetes", "injector", "config.yaml"),
	filepath.Join("..", "..", "deploy", "kubernetes", "injector", "config-bundle.yaml"),
}

// The configuration the injector writes into a sidecar (WARDEN_CONFIG), in
// every mode, passes `warden policy validate` — for the tests' injector
// config and the two deploy/kubernetes/injector ships (a policy, bundles).
func TestInjectSidecarConfigValidates(t *testing.T) {
	for _, cfgPath := range injectorConfigs {
		for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
			t.Run(filepath.Base(filepath.Dir(cfgPath))+"/"+strings.TrimSuffix(filepath.Base(cfgPath), ".yaml")+"/"+mode, func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run(context.Background(), []string{"inject", "--print-config", mode, "--config", cfgPath}, &out, &errb); code != 0 {
					t.Fatalf("inject --print-config: exit %d: %s", code, errb.String())
				}
				file := filepath.Join(t.TempDir(), "warden.yaml")
				if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				var vout, verr bytes.Buffer
				if code := run(context.Background(), []string{"policy", "validate", "--strict", "--config", file}, &vout, &verr); code != 0 {
					t.Fatalf("policy validate: exit %d:\n%s%s\n%s", code, vout.String(), verr.String(), out.String())
				}
				if !strings.Contains(vout.String(), "valid") {
					t.Errorf("policy validate said: %s", vout.String())
				}
			})
		}
	}
}

// Bad invocations of serve --config-env and inject name what is wrong.
func TestInjectAndConfigEnvErrors(t *testing.T) {
	t.Setenv("WARDEN_EMPTY_CONFIG", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("image: x\nrole_arn: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"serve without config", []string{"serve"}, "one of --config and --config-env is required"},
		{"serve with both", []string{"serve", "--config", "x", "--config-env", "Y"}, "one of --config and --config-env is required"},
		{"serve empty env", []string{"serve", "--config-env", "WARDEN_EMPTY_CONFIG"}, "WARDEN_EMPTY_CONFIG: the environment variable is not set or empty"},
		{"inject without config", []string{"inject"}, "--config is required"},
		{"inject bad config", []string{"inject", "--config", bad}, "is not an IAM role ARN"},
		{"inject unknown mode", []string{"inject", "--config", injectorConfigs[0], "--print-config", "ebpf"}, `--print-config "ebpf"`},
		{"inject missing kubeconfig", []string{"inject", "--config", injectorConfigs[0], "--kubeconfig", "/nonexistent"}, "kubeconfig /nonexistent"},
		{"bootstrap without host", []string{"inject", "--bootstrap-self-signed", t.TempDir()}, "needs at least one --host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			if code := run(context.Background(), tc.args, io.Discard, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want failure naming %q", code, errb.String(), tc.want)
			}
		})
	}
}

// --bootstrap-self-signed writes the CA, certificate and a 0600 key, and
// prints the caBundle.
func TestInjectBootstrapSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"inject", "--bootstrap-self-signed", dir, "--host", "warden-inject.warden-system.svc"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "tls.crt": 0o644, "tls.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	if !strings.Contains(out.String(), "caBundle: LS0t") {
		t.Errorf("output: %s", out.String())
	}
}

// A sidecar started exactly as the injector starts it (serve --config-env
// WARDEN_CONFIG with the rendered endpoint-mode configuration, the
// identity env the injector writes, the downward-API files) serves each
// client through the variable the injector sets for it:
//   - the Go SDK through AWS_ENDPOINT_URL_BEDROCK_RUNTIME (LoadDefaultConfig),
//   - the Node AWS SDK v3 through AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
//   - Anthropic's Bedrock SDK through ANTHROPIC_BEDROCK_BASE_URL,
//
// and each call is identified as the pod's namespace and service account
// (strong tags), selecting the policy's app. Only what cannot exist on a
// test machine is moved: listen addresses, the upstream (the Bedrock
// emulator), the downward-API paths, the spool and a file sink.
func TestInjectedSidecarServesSDKs(t *testing.T) {
	jsDir, anthropicDir := nodeClients(t)
	emu := serveEmulator(t)
	sc := startInjectedSidecar(t, inject.ModeEndpoint, emu.URL)
	ep, stderr, auditPath := sc.listen, sc.stderr, sc.auditPath
	url := "http://" + ep
	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"

	// Go SDK: only the environment variable the injector sets.
	t.Setenv(inject.EnvAWSEndpoint, url)
	t.Setenv("AWS_REGION", "us-east-1")
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(awsCfg, func(o *bedrockruntime.Options) { o.HTTPClient = bedrocktest.BufferedClient(nil) })
	if _, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi from go"}}}}}); err != nil {
		t.Fatalf("Go SDK via %s: %v\n%s", inject.EnvAWSEndpoint, err, stderr.String())
	}

	nodeEnv := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIAAPPPLACEHOLDER01", "AWS_SECRET_ACCESS_KEY=placeholder",
		"AWS_SESSION_TOKEN=", "HTTPS_PROXY=", "https_proxy=", "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true"}
	// Node AWS SDK v3: the same variable.
	r := runNode(t, filepath.Join(jsDir, "client.mjs"), append(nodeEnv, inject.EnvAWSEndpoint+"="+url), "converse", model, "hi from node")
	if r["ok"] != true {
		t.Fatalf("Node AWS SDK via %s: %v", inject.EnvAWSEndpoint, r)
	}
	// Anthropic's Bedrock SDK: ANTHROPIC_BEDROCK_BASE_URL, nothing else.
	for _, op := range []string{"create", "stream"} {
		r = runNode(t, filepath.Join(anthropicDir, "client.mjs"), append(nodeEnv, inject.EnvAnthropicBedrock+"="+url), op, model, "hi from anthropic "+op)
		if r["ok"] != true || r["text"] == "" || r["baseURL"] != url {
			t.Fatalf("Anthropic Bedrock SDK (%s) via %s: %v\n%s", op, inject.EnvAnthropicBedrock, r, stderr.String())
		}
	}
	// Without the variable the SDK would go to AWS itself.
	r = runNode(t, filepath.Join(anthropicDir, "client.mjs"), append(nodeEnv, inject.EnvAnthropicBedrock+"="), "create", model, "x")
	if r["baseURL"] != "https://bedrock-runtime.us-east-1.amazonaws.com" {
		t.Errorf("without %s the SDK's base URL is %v", inject.EnvAnthropicBedrock, r["baseURL"])
	}

	recs := waitAuditRecords(t, auditPath, 4)
	wantOps := []string{"Converse", "Converse", "InvokeModel", "InvokeModelWithResponseStream"}
	for i, rec := range recs {
		if rec.App != "shop-prod" || rec.Decision != "allow" || rec.Operation != wantOps[i] ||
			rec.Tags["k8s.namespace"] != "shop" || rec.Tags["k8s.serviceaccount"] != "checkout" || rec.Tags["k8s.label.app"] != "checkout" {
			t.Errorf("record %d: app %q decision %q op %q tags %v", i, rec.App, rec.Decision, rec.Operation, rec.Tags)
		}
	}
	if n := len(emu.Calls()); n != 4 {
		t.Errorf("the emulator saw %d calls, want 4", n)
	}

	// The Go agent-runtime SDK through AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME
	// reaches the same sidecar, whose policy names no agent-runtime
	// operation: Warden's refusal (not AWS's) proves the route.
	t.Setenv(inject.EnvAWSAgentEndpoint, url)
	awsCfg, err = config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	agents := bedrockagentruntime.NewFromConfig(awsCfg, func(o *bedrockagentruntime.Options) { o.HTTPClient = bedrocktest.BufferedClient(nil) })
	_, err = agents.Retrieve(context.Background(), &bedrockagentruntime.RetrieveInput{KnowledgeBaseId: aws.String("KB00000001"),
		RetrievalQuery: &agenttypes.KnowledgeBaseQuery{Text: aws.String("hi")}})
	var denied *agenttypes.AccessDeniedException
	if !errors.As(err, &denied) || !strings.Contains(denied.ErrorMessage(), "Retrieve") {
		t.Fatalf("Go agent-runtime SDK via %s: %v; want Warden's AccessDeniedException for Retrieve\n%s", inject.EnvAWSAgentEndpoint, err, stderr.String())
	}
	if n := len(emu.Calls()); n != 4 {
		t.Errorf("the refused agent-runtime call reached the emulator (%d calls)", n)
	}
}

// injectedSidecar is `warden serve` started as the injector starts it.
type injectedSidecar struct {
	listen    string // the endpoint (endpoint mode) or proxy (proxy mode) address
	endpoint  string // the endpoint listener's address (every mode)
	auditPath string
	caDir     string
	stderr    *testenv.Buffer
}

// startInjectedSidecar runs serve --config-env WARDEN_CONFIG in process,
// with the injector's rendered configuration of mode and the identity env
// the injector writes; it moves only what cannot exist on a test machine:
// listen addresses, the upstream (the emulator serveEmulator started), the
// downward-API, CA and spool paths, and a file sink.
func startInjectedSidecar(t *testing.T, mode, emuURL string) *injectedSidecar {
	t.Helper()
	dir := t.TempDir()
	sc := &injectedSidecar{listen: freeAddr(t), auditPath: filepath.Join(dir, "audit.jsonl"), caDir: filepath.Join(dir, "warden-ca"), stderr: &testenv.Buffer{}}
	admin := freeAddr(t)
	labels := filepath.Join(dir, "labels")
	if err := os.WriteFile(labels, []byte("app=\"checkout\"\npod-template-hash=\"7d4b9c6f5\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(renderSidecarConfig(t, mode), &cfg); err != nil {
		t.Fatal(err)
	}
	listen := cfg["listen"].(map[string]any)
	key := "endpoint"
	if mode == inject.ModeProxy {
		key = "proxy"
	}
	if _, ok := listen[key]; !ok {
		t.Fatalf("the %s-mode config has no listen.%s: %v", mode, key, listen)
	}
	if _, ok := listen["endpoint"]; !ok {
		t.Fatalf("the %s-mode config has no listen.endpoint: %v", mode, listen)
	}
	sc.endpoint = sc.listen
	listenMoved := map[string]any{key: sc.listen, "admin": admin}
	if key != "endpoint" {
		sc.endpoint = freeAddr(t)
		listenMoved["endpoint"] = sc.endpoint
	}
	cfg["listen"] = listenMoved
	up := cfg["upstream"].(map[string]any)
	up["url"], up["insecure"] = emuURL, true
	ks := cfg["identity"].(map[string]any)["kubernetes_sidecar"].(map[string]any)
	if ks["trust_pod_env"] != true {
		t.Fatalf("the injector's sidecar config does not trust the pod env: %v", ks)
	}
	ks["labels_path"], ks["annotations_path"] = labels, filepath.Join(dir, "annotations")
	if ca, ok := cfg["ca"].(map[string]any); ok {
		if ca["cert_out"] != inject.CACertFile || ca["bundle_out"] != inject.CABundleFile {
			t.Fatalf("ca: %v", ca)
		}
		if err := os.Mkdir(sc.caDir, 0o755); err != nil {
			t.Fatal(err)
		}
		ca["cert_out"] = filepath.Join(sc.caDir, filepath.Base(inject.CACertFile))
		ca["bundle_out"] = filepath.Join(sc.caDir, filepath.Base(inject.CABundleFile))
	}
	cfg["audit"] = map[string]any{"spool": map[string]any{"dir": filepath.Join(dir, "spool")},
		"sinks": []any{map[string]any{"file": map[string]any{"path": sc.auditPath}}}}
	moved, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// What the injector writes into Warden's container env.
	t.Setenv(inject.ConfigEnv, string(moved))
	t.Setenv(inject.PodNamespaceEnv, "shop")
	t.Setenv(inject.PodSAEnv, "checkout")
	t.Setenv(inject.PodNameEnv, "checkout-7d4b9c6f5-abcde")
	t.Setenv(inject.PodIPEnv, "10.1.2.3")
	t.Setenv(inject.HostIPEnv, "192.168.0.10")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config-env", inject.ConfigEnv}, io.Discard, sc.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	waitHTTP(t, "http://"+admin+"/readyz")
	return sc
}

// In proxy mode the sidecar writes only the CA certificate (and the bundle
// of system roots plus it) into the shared warden-ca directory — no key —
// and clients configured by the env the injector writes reach Bedrock
// through it: the Go SDK trusting AWS_CA_BUNDLE, the Node AWS SDK trusting
// NODE_EXTRA_CA_CERTS, both through HTTPS_PROXY to the real Bedrock host
// name (the CONNECT never leaves loopback).
func TestInjectedProxySidecarServesSDKs(t *testing.T) {
	jsDir, _ := nodeClients(t)
	emu := serveEmulator(t)
	// A stand-in system root bundle, so the test does not depend on the host's.
	other, err := mitm.New(mitm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", roots)
	sc := startInjectedSidecar(t, inject.ModeProxy, emu.URL)

	entries, err := os.ReadDir(sc.caDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
		data, err := os.ReadFile(filepath.Join(sc.caDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Errorf("%s in the shared warden-ca directory holds a private key", e.Name())
		}
	}
	if strings.Join(files, ",") != "bundle.crt,ca.crt" {
		t.Errorf("warden-ca holds %v, want bundle.crt and ca.crt only", files)
	}
	// The env the injector writes into app containers, with the paths moved
	// like the sidecar's.
	env := map[string]string{}
	for _, e := range appEnvOf(t, inject.ModeProxy) {
		env[e.Name] = e.Value
	}
	proxyURL := "http://" + sc.listen
	if env[inject.EnvHTTPSProxy] != "http://127.0.0.1:8481" {
		t.Fatalf("HTTPS_PROXY %q", env[inject.EnvHTTPSProxy])
	}
	caBundle := filepath.Join(sc.caDir, filepath.Base(env[inject.EnvAWSCABundle]))
	nodeCA := filepath.Join(sc.caDir, filepath.Base(env[inject.EnvNodeExtraCA]))
	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"

	// Go SDK: AWS_CA_BUNDLE read by LoadDefaultConfig. The proxy is set on
	// the transport from the same value, because net/http reads
	// HTTPS_PROXY once per process (an earlier test may have).
	t.Setenv(inject.EnvAWSCABundle, caBundle)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv(inject.EnvAWSEndpoint, "")
	pu, _ := neturl.Parse(proxyURL)
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.Proxy = http.ProxyURL(pu) })
	awsCfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(awsCfg)
	if _, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi via proxy"}}}}}); err != nil {
		t.Fatalf("Go SDK via HTTPS_PROXY + AWS_CA_BUNDLE: %v\n%s", err, sc.stderr.String())
	}
	// Without Warden's CA the MITM'd connection is refused.
	t.Setenv(inject.EnvAWSCABundle, roots)
	bare, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(
		awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.Proxy = http.ProxyURL(pu) })))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bedrockruntime.NewFromConfig(bare, func(o *bedrockruntime.Options) { o.RetryMaxAttempts = 1 }).Converse(context.Background(),
		&bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "x"}}}}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without Warden's CA: %v, want a certificate error", err)
	}

	// Node AWS SDK: HTTPS_PROXY and NODE_EXTRA_CA_CERTS.
	r := runNode(t, filepath.Join(jsDir, "client.mjs"), []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIAAPPPLACEHOLDER01",
		"AWS_SECRET_ACCESS_KEY=placeholder", "AWS_SESSION_TOKEN=", inject.EnvAWSEndpoint + "=", "https_proxy=",
		inject.EnvHTTPSProxy + "=" + proxyURL, inject.EnvNodeExtraCA + "=" + nodeCA, "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true"},
		"converse", model, "hi from node via proxy")
	if r["ok"] != true {
		t.Fatalf("Node AWS SDK via HTTPS_PROXY + NODE_EXTRA_CA_CERTS: %v\n%s", r, sc.stderr.String())
	}

	// The Go SDK as an unmodified app in a process of its own: nothing but
	// the env the injector writes (HTTPS_PROXY, https_proxy, AWS_CA_BUNDLE)
	// and placeholder credentials, read by net/http's ProxyFromEnvironment
	// and by LoadDefaultConfig, with no proxy or roots set in code.
	res := runInjectedGoApp(t, map[string]string{
		inject.EnvHTTPSProxy: proxyURL, inject.EnvHTTPSProxyLower: proxyURL, inject.EnvAWSCABundle: caBundle,
	}, model)
	if res != "ok" {
		t.Fatalf("Go SDK in its own process via %s + %s from the environment: %s\n%s", inject.EnvHTTPSProxy, inject.EnvAWSCABundle, res, sc.stderr.String())
	}
	// The lower-case https_proxy alone (what curl and many Python clients
	// read first) takes the same process through Warden too.
	if res := runInjectedGoApp(t, map[string]string{inject.EnvHTTPSProxyLower: proxyURL, inject.EnvAWSCABundle: caBundle}, model); res != "ok" {
		t.Fatalf("Go SDK in its own process via %s alone: %s\n%s", inject.EnvHTTPSProxyLower, res, sc.stderr.String())
	}
	// The same process without HTTPS_PROXY would go to AWS itself; with
	// it but without Warden's CA, the MITM'd connection is refused.
	if res := runInjectedGoApp(t, map[string]string{inject.EnvHTTPSProxy: proxyURL, inject.EnvHTTPSProxyLower: proxyURL}, model); !strings.Contains(res, "certificate") {
		t.Errorf("Go SDK via %s without %s: %s, want a certificate error", inject.EnvHTTPSProxy, inject.EnvAWSCABundle, res)
	}

	// Every variable the injector writes in proxy mode, at once (the
	// endpoint variables too, pointing at the endpoint listener, moved like
	// the proxy's): the Go SDK in its own process, and Anthropic's Bedrock
	// SDK, which reads ANTHROPIC_BEDROCK_BASE_URL and no proxy variable.
	full := map[string]string{}
	for k, v := range env {
		full[k] = v
	}
	endpointURL := "http://" + sc.endpoint
	for _, k := range []string{inject.EnvAWSEndpoint, inject.EnvAWSAgentEndpoint, inject.EnvAnthropicBedrock} {
		if full[k] != "http://127.0.0.1:8480" {
			t.Fatalf("proxy mode: %s = %q, want Warden's endpoint", k, full[k])
		}
		full[k] = endpointURL
	}
	full[inject.EnvHTTPSProxy], full[inject.EnvHTTPSProxyLower] = proxyURL, proxyURL
	full[inject.EnvAWSCABundle], full[inject.EnvNodeExtraCA] = caBundle, nodeCA
	if res := runInjectedGoApp(t, full, model); res != "ok" {
		t.Fatalf("Go SDK in its own process with every proxy-mode variable: %s\n%s", res, sc.stderr.String())
	}
	_, anthropicDir := nodeClients(t)
	var anEnv []string
	for k, v := range full {
		anEnv = append(anEnv, k+"="+v)
	}
	anEnv = append(anEnv, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIAAPPPLACEHOLDER01", "AWS_SECRET_ACCESS_KEY=placeholder", "AWS_SESSION_TOKEN=")
	if r := runNode(t, filepath.Join(anthropicDir, "client.mjs"), anEnv, "create", model, "hi from anthropic in proxy mode"); r["ok"] != true || r["baseURL"] != endpointURL {
		t.Fatalf("Anthropic Bedrock SDK with every proxy-mode variable: %v\n%s", r, sc.stderr.String())
	}

	recs := waitAuditRecords(t, sc.auditPath, 6)
	for i, rec := range recs[:6] {
		if rec.App != "shop-prod" || rec.Decision != "allow" || rec.Tags["k8s.namespace"] != "shop" {
			t.Errorf("record %d: app %q decision %q tags %v", i, rec.App, rec.Decision, rec.Tags)
		}
	}
}

// injectedAppRole is the helper role (TestMain) of runInjectedGoApp.
const injectedAppRole = "injected-go-app"

// runInjectedGoApp runs the test binary as an app: one Converse with the
// Go SDK configured by LoadDefaultConfig alone, in an environment holding
// only PATH, HOME, the region, placeholder credentials, SSL_CERT_FILE (the
// test's stand-in system roots) and env. It returns "ok" or the error.
func runInjectedGoApp(t *testing.T, env map[string]string, model string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run="+netnsHelperRegex)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), netnsHelperEnv + "=" + injectedAppRole,
		netnsArgsEnv + "=" + model, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIAAPPPLACEHOLDER01",
		"AWS_SECRET_ACCESS_KEY=placeholder", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_EC2_METADATA_DISABLED=true", "SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	_, res, found := strings.Cut(string(out), netnsResultMark)
	if err != nil || !found {
		t.Fatalf("the Go app process: %v\n%s", err, out)
	}
	return strings.TrimSpace(res)
}

// injectedGoApp is the app process of runInjectedGoApp.
func injectedGoApp() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "LoadDefaultConfig: " + err.Error()
	}
	client := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) { o.RetryMaxAttempts = 1 })
	_, err = client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(os.Getenv(netnsArgsEnv)),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi from a go app"}}}}})
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// appEnvOf is the env the injector writes into an app container in mode.
func appEnvOf(t *testing.T, mode string) []corev1.EnvVar {
	t.Helper()
	data, err := os.ReadFile(injectorConfigs[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := inject.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{inject.AnnotationMode: mode}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	out, _, err := in.Mutate(pod, inject.Namespace{Name: "shop", Labels: map[string]string{inject.LabelEnrolled: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Spec.Containers[0].Env
}

type sidecarRecord struct {
	App       string            `json:"app"`
	Decision  string            `json:"decision"`
	Operation string            `json:"operation"`
	Tags      map[string]string `json:"tags"`
}

func waitAuditRecords(t *testing.T, path string, n int) []sidecarRecord {
	t.Helper()
	var recs []sidecarRecord
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs = recs[:0]
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r sidecarRecord
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Operation != "" {
				recs = append(recs, r)
			}
		}
		f.Close()
		if len(recs) >= n {
			return recs
		}
	}
	t.Fatalf("%d audit records in %s, want %d", len(recs), path, n)
	return nil
}

func renderSidecarConfig(t *testing.T, mode string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"inject", "--print-config", mode, "--config", injectorConfigs[0]}, &out, &errb); code != 0 {
		t.Fatalf("inject --print-config: %s", errb.String())
	}
	return out.Bytes()
}

// nodeClients returns the Node AWS SDK and Anthropic Bedrock SDK client
// directories, skipping without Node (failing where WARDEN_REQUIRE_NODE).
func nodeClients(t *testing.T) (string, string) {
	t.Helper()
	js, _ := filepath.Abs(filepath.Join("..", "..", "proxy", "testdata", "jsclient"))
	an, _ := filepath.Abs(filepath.Join("..", "..", "inject", "testdata", "anthropicclient"))
	_, nodeErr := exec.LookPath("node")
	_, jsErr := os.Stat(filepath.Join(js, "node_modules", "@aws-sdk", "client-bedrock-runtime"))
	_, anErr := os.Stat(filepath.Join(an, "node_modules", "@anthropic-ai", "bedrock-sdk"))
	if nodeErr != nil || jsErr != nil || anErr != nil {
		if os.Getenv("WARDEN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or the SDKs (%v, %v) missing; run npm ci in proxy/testdata/jsclient and inject/testdata/anthropicclient", nodeErr, jsErr, anErr)
		}
		testenv.Missing(t, "node (%v) or the SDKs (%v, %v) missing", nodeErr, jsErr, anErr)
	}
	return js, an
}

func runNode(t *testing.T, script string, env []string, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s\n%s", filepath.Base(script), err, out, stderr.String())
	}
	var r map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return r
}

// warden inject --audit lists, in enrolled namespaces only, the pods
// admitted before enrolment and those injected by another version, image
// or policy; a pod with the current sidecar is not listed. (Real
// kube-apiserver, no kubelet: the pods are stored objects.)
func TestInjectAudit(t *testing.T) {
	c := kubetest.Shared(t)
	ctx := context.Background()
	data, err := os.ReadFile(injectorConfigs[0])
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := inject.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(icfg, injectorVersion())
	if err != nil {
		t.Fatal(err)
	}
	enrolled, plain := c.Namespace(t), c.Namespace(t)
	for _, ns := range []string{enrolled, plain} {
		c.ServiceAccount(t, ns, "default")
	}
	mk := func(ns, name string, mutate func(p *corev1.Pod) *corev1.Pod) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		if mutate != nil {
			p = mutate(p)
		}
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inject1 := func(p *corev1.Pod) *corev1.Pod {
		out, _, err := in.Mutate(p, inject.Namespace{Name: enrolled, Labels: map[string]string{inject.LabelEnrolled: "true"}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Created before the namespace is enrolled: no webhook, no sidecar.
	mk(enrolled, "before-enrolment", nil)
	mk(plain, "not-enrolled", nil)
	mk(enrolled, "current", inject1)
	mk(enrolled, "old-version", func(p *corev1.Pod) *corev1.Pod {
		p = inject1(p)
		p.Annotations[inject.AnnotationInjected] = "v0.0.1"
		return p
	})
	mk(enrolled, "old-image", func(p *corev1.Pod) *corev1.Pod {
		p = inject1(p)
		p.Spec.InitContainers[0].Image = "ghcr.io/warden-egress/warden:v0.0.1"
		return p
	})
	// Current version, image and annotations, but the team's own
	// configuration in the sidecar (written before the policies, or the
	// annotations copied from an injected pod): judged by WARDEN_CONFIG.
	mk(enrolled, "forged-config", func(p *corev1.Pod) *corev1.Pod {
		p = inject1(p)
		for i, e := range p.Spec.InitContainers[0].Env {
			if e.Name == inject.ConfigEnv {
				p.Spec.InitContainers[0].Env[i].Value = "version: 1\napps: [{name: anything, match: {}, allow: {models: ['*']}}]\n"
			}
		}
		return p
	})
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, enrolled, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels[inject.LabelEnrolled] = "true"
	if _, err := c.Client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	code := run(ctx, []string{"inject", "--audit", "--config", injectorConfigs[0], "--kubeconfig", c.Kubeconfig}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "4 pod(s) in enrolled namespaces do not run the current sidecar") {
		t.Fatalf("exit %d, stderr %s\n%s", code, errb.String(), out.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == enrolled {
			got[f[1]] = f[2] + " " + strings.Join(f[3:], " ")
		}
		if len(f) > 0 && f[0] == plain {
			t.Errorf("a pod of a namespace that is not enrolled is listed: %s", line)
		}
	}
	want := map[string]string{
		"before-enrolment": inject.FindingNotInjected,
		"old-version":      inject.FindingOutdated + ` injector "v0.0.1"`,
		"old-image":        inject.FindingOutdated + " image ghcr.io/warden-egress/warden:v0.0.1",
		"forged-config":    inject.FindingOutdated + " config ",
	}
	for pod, prefix := range want {
		if !strings.HasPrefix(got[pod], prefix) {
			t.Errorf("%s: %q, want it to start with %q", pod, got[pod], prefix)
		}
	}
	if _, listed := got["current"]; listed || len(got) != len(want) {
		t.Errorf("listed: %v", got)
	}
}

// `warden inject` as a process: it serves the webhook over TLS with the
// bootstrap certificate, answers an AdmissionReview for an enrolled
// namespace of a real API server with a JSON patch, and counts it on
// /metrics.
func TestInjectServesWebhook(t *testing.T) {
	c := kubetest.Shared(t)
	ctx := context.Background()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "kt-injcmd-", Labels: map[string]string{inject.LabelEnrolled: "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	dir := filepath.Join(t.TempDir(), "tls")
	if code := run(ctx, []string{"inject", "--bootstrap-self-signed", dir, "--host", "127.0.0.1"}, io.Discard, io.Discard); code != 0 {
		t.Fatal("bootstrap failed")
	}
	hook, metrics := freeAddr(t), freeAddr(t)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	stderr := &testenv.Buffer{}
	go func() {
		done <- run(sctx, []string{"inject", "--config", injectorConfigs[0], "--kubeconfig", c.Kubeconfig,
			"--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key"),
			"--listen", hook, "--metrics-listen", metrics}, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("warden inject exited %d: %s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("warden inject did not shut down")
		}
	}()
	waitHTTP(t, "http://"+metrics+"/readyz")

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
	pod, _ := json.Marshal(&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}})
	review := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"abc-123",
		"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":%q,"operation":"CREATE","object":%s}}`, ns.Name, pod)
	resp, err := hc.Post("https://"+hook+"/inject", "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Response struct {
			UID       string `json:"uid"`
			Allowed   bool   `json:"allowed"`
			PatchType string `json:"patchType"`
			Patch     []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response.UID != "abc-123" || !out.Response.Allowed || out.Response.PatchType != "JSONPatch" ||
		!bytes.Contains(out.Response.Patch, []byte(`"name":"warden"`)) {
		t.Fatalf("response: %+v (patch %s)", out.Response, out.Response.Patch)
	}
	// The WARDEN_CONFIG the webhook wrote passes `warden policy validate`.
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out.Response.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	var wardenCfg string
	for _, op := range ops {
		var cs []corev1.Container
		if op.Path == "/spec/initContainers" && json.Unmarshal(op.Value, &cs) == nil {
			for _, c := range cs {
				for _, e := range c.Env {
					if c.Name == inject.ContainerName && e.Name == inject.ConfigEnv {
						wardenCfg = e.Value
					}
				}
			}
		}
	}
	if wardenCfg == "" {
		t.Fatalf("no WARDEN_CONFIG in the patch: %s", out.Response.Patch)
	}
	cfgFile := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(cfgFile, []byte(wardenCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var vout, verr bytes.Buffer
	if code := run(ctx, []string{"policy", "validate", "--strict", "--config", cfgFile}, &vout, &verr); code != 0 {
		t.Fatalf("policy validate of the webhook's WARDEN_CONFIG: %s%s", vout.String(), verr.String())
	}
	mresp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(body), `warden_inject_admissions_total{outcome="injected"} 1`) {
		t.Errorf("/metrics lacks the injected admission:\n%s", grepLines(string(body), "warden_inject"))
	}

	// The same process registered with the API server (TLS on loopback, the
	// bootstrap CA as caBundle): a pod created through the API server is
	// stored with the sidecar, and the WARDEN_CONFIG of the stored pod
	// passes `warden policy validate --strict`. No kubelet: the stored
	// object is what is checked.
	c.ServiceAccount(t, ns.Name, "default")
	url := "https://" + hook + "/inject"
	fail, none, ifNeeded, timeout := admissionregv1.Fail, admissionregv1.SideEffectClassNone, admissionregv1.IfNeededReinvocationPolicy, int32(5)
	mwc := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "warden-inject-" + ns.Name},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:         "inject.warden-egress.io",
			ClientConfig: admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy: &fail, SideEffects: &none, ReinvocationPolicy: &ifNeeded, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns.Name}},
		}},
	}
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	app := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	}
	injected := func(p *corev1.Pod) *corev1.Container {
		for i := range p.Spec.InitContainers {
			if p.Spec.InitContainers[i].Name == inject.ContainerName {
				return &p.Spec.InitContainers[i]
			}
		}
		return nil
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p, err := c.Client.CoreV1().Pods(ns.Name).Create(ctx, app("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && injected(p) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server does not call warden inject after 60s (last: %v)", err)
		}
	}
	if _, err := c.Client.CoreV1().Pods(ns.Name).Create(ctx, app("stored"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stored, err := c.Client.CoreV1().Pods(ns.Name).Get(ctx, "stored", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wc := injected(stored)
	if wc == nil {
		t.Fatalf("stored pod has no %s init container", inject.ContainerName)
	}
	storedCfg := ""
	for _, e := range wc.Env {
		if e.Name == inject.ConfigEnv {
			storedCfg = e.Value
		}
	}
	storedFile := filepath.Join(t.TempDir(), "stored.yaml")
	if err := os.WriteFile(storedFile, []byte(storedCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	vout.Reset()
	verr.Reset()
	if code := run(ctx, []string{"policy", "validate", "--strict", "--config", storedFile}, &vout, &verr); code != 0 || storedCfg == "" {
		t.Fatalf("policy validate of the stored pod's WARDEN_CONFIG (%d bytes): %s%s", len(storedCfg), vout.String(), verr.String())
	}
}
