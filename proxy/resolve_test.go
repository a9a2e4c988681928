package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
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
	resAcct      = "arn:aws:bedrock:us-east-1:123456789012:"
	resFM        = "arn:aws:bedrock:us-east-1::foundation-model/"
	resOpus      = "anthropic.claude-3-opus-20240229-v1:0"
	resOKProfile = resAcct + "application-inference-profile/okok12345678"
	resBadProf   = resAcct + "application-inference-profile/opus12345678"
	resNewProf   = resAcct + "application-inference-profile/neww12345678"
	resRouter    = resAcct + "prompt-router/mixed1234567"
	resOKRouter  = resAcct + "prompt-router/haikuonly123"
	resBadPrompt = resAcct + "prompt/OPUSPROMPT"
	resOKPrompt  = resAcct + "prompt/HAIKUPRMPT"
)

// resolvePolicy is basePolicy's app with the control plane configured; the
// profile ARNs are NOT in allow.models: they are allowed only through the
// models they resolve to.
const resolvePolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
models:
  control_plane_url: "${CONTROL_PLANE}"
  agent_url: "${CONTROL_PLANE}"
  cache_ttl: ${CACHE_TTL}
  timeout: 2s
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    match: {tags: {app: chatbot, env: prod}}
    allow_weak_identity: true
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel]
`

type resolveEnv struct {
	emu      *bedrocktest.Server
	cp       *bedrocktest.ControlPlane
	endpoint string
	audit    *recorder
}

// startResolveEnv runs the runtime emulator, the control-plane emulator
// and Warden in front of both (Warden's one key is accepted by both).
func startResolveEnv(t *testing.T, cacheTTL string) *resolveEnv {
	t.Helper()
	all := map[string]string{resOKProfile: haiku, resBadProf: resOpus, resNewProf: haiku, resRouter: haiku,
		resOKRouter: haiku, resBadPrompt: resOpus, resOKPrompt: haiku}
	e := &resolveEnv{
		emu: bedrocktest.NewServer(bedrocktest.Config{
			Region: "us-east-1", Credentials: map[string]string{wardenKey: wardenSecret}, Profiles: all,
		}),
		cp: bedrocktest.NewControlPlane(bedrocktest.ControlPlaneConfig{
			Credentials: map[string]string{wardenKey: wardenSecret},
			InferenceProfiles: map[string]bedrocktest.InferenceProfile{
				resOKProfile: {Models: []string{resFM + haiku}},
				resBadProf:   {Models: []string{resFM + resOpus}},
				resNewProf:   {Models: []string{resFM + haiku}},
			},
			PromptRouters: map[string]bedrocktest.PromptRouter{
				resRouter:   {Models: []string{resFM + haiku, resFM + resOpus}, Fallback: resFM + haiku},
				resOKRouter: {Models: []string{resAcct + "inference-profile/" + usHaiku}, Fallback: resFM + haiku},
			},
			Prompts: map[string]bedrocktest.Prompt{
				resBadPrompt: {Variants: []bedrocktest.PromptVariant{{ModelID: resBadProf}}},
				resOKPrompt:  {Variants: []bedrocktest.PromptVariant{{ModelID: haiku}}},
			},
			Logf: bedrocktest.TestLogf(t),
		}),
		audit: newRecorder(),
	}
	t.Cleanup(e.emu.Close)
	t.Cleanup(e.cp.Close)
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${CONTROL_PLANE}", e.cp.URL, "${CACHE_TTL}", cacheTTL).Replace(resolvePolicy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	srv, err := proxy.New(context.Background(), proxy.Options{
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
	go func() { _ = srv.ServeEndpoint(ln, nil) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e.endpoint = "http://" + ln.Addr().String()
	return e
}

func (e *resolveEnv) converse(model string) error {
	c := bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
		RetryMaxAttempts: 1,
	})
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")})
	return err
}

func wantDenied(t *testing.T, err error, mention ...string) {
	t.Helper()
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("error %v, want AccessDeniedException", err)
	}
	t.Logf("denied: %s", ade.ErrorMessage())
	for _, m := range mention {
		if !strings.Contains(ade.ErrorMessage(), m) {
			t.Errorf("message %q does not mention %q", ade.ErrorMessage(), m)
		}
	}
}

func TestResolveIndirectModelsEndToEnd(t *testing.T) {
	e := startResolveEnv(t, "5m")

	// Allowed through the model behind it; the audit record names it.
	if err := e.converse(resOKProfile); err != nil {
		t.Fatalf("profile → haiku: %v", err)
	}
	recs := e.audit.wait(t, 1)
	if r := recs[0]; r.Decision != "allow" || len(r.ModelResolved) != 1 || r.ModelResolved[0] != haiku || r.ModelResolvedStale {
		t.Errorf("audit: decision %s model_resolved %q stale %v", r.Decision, r.ModelResolved, r.ModelResolvedStale)
	}
	if calls := e.emu.Calls(); len(calls) != 1 || calls[0].ModelID != resOKProfile || !calls[0].SignatureOK {
		t.Errorf("upstream calls: %+v", calls)
	}

	// A profile behind a denied model, a router with one denied target and
	// a prompt whose variant is such a profile: 403 naming the model.
	wantDenied(t, e.converse(resBadProf), resBadProf, resOpus)
	wantDenied(t, e.converse(resRouter), resRouter, resOpus)
	wantDenied(t, e.converse(resBadPrompt), resBadPrompt, resOpus)
	// A router whose targets are all allowed (a system profile among them).
	if err := e.converse(resOKRouter); err != nil {
		t.Errorf("router → haiku, us.haiku: %v", err)
	}
	if err := e.converse(resOKPrompt); err != nil {
		t.Errorf("prompt → haiku: %v", err)
	}
	recs = e.audit.wait(t, 6)
	for _, i := range []int{1, 2, 3} {
		if r := recs[i]; r.Decision != "deny" || r.Status != 403 || !resContains(r.ModelResolved, resOpus) {
			t.Errorf("record %d: decision %s status %d model_resolved %q", i, r.Decision, r.Status, r.ModelResolved)
		}
	}
	if got := e.emu.Calls(); len(got) != 3 {
		t.Errorf("upstream saw %d calls, want 3 (denied calls never leave Warden)", len(got))
	}

	// Cached: asking again costs no control-plane call.
	before := e.cp.CallCount("")
	if err := e.converse(resOKProfile); err != nil {
		t.Fatal(err)
	}
	if e.cp.CallCount("") != before {
		t.Error("a cached resolution called the control plane again")
	}

	// System inference profiles and foundation ids are direct: no lookup.
	e.cp.Reset()
	if err := e.converse(usHaiku); err != nil {
		t.Fatalf("system profile: %v", err)
	}
	if err := e.converse(haiku); err != nil {
		t.Fatalf("foundation model: %v", err)
	}
	if n := e.cp.CallCount(""); n != 0 {
		t.Errorf("direct ids made %d control-plane calls", n)
	}
	for _, c := range e.cp.Calls() {
		if !c.SignatureOK || c.AccessKeyID != wardenKey {
			t.Errorf("control-plane call not signed by Warden: %+v", c)
		}
	}
}

func resContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// An outage of the control plane: a warm cache is served stale (and the
// audit record says so); an id never resolved is denied.
func TestResolveControlPlaneOutage(t *testing.T) {
	// A 1ms cache_ttl makes every later call a refresh, so the outage is
	// seen at once; stale_ttl keeps its 1h default.
	e := startResolveEnv(t, "1ms")
	if err := e.converse(resOKProfile); err != nil {
		t.Fatal(err)
	}
	e.cp.SetDown(true)
	time.Sleep(5 * time.Millisecond) // past cache_ttl
	if err := e.converse(resOKProfile); err != nil {
		t.Fatalf("outage with a warm cache: %v", err)
	}
	recs := e.audit.wait(t, 2)
	if r := recs[1]; r.Decision != "allow" || !r.ModelResolvedStale || len(r.ModelResolved) != 1 {
		t.Errorf("stale record: decision %s model_resolved %q stale %v", r.Decision, r.ModelResolved, r.ModelResolvedStale)
	}
	if e.cp.CallCount(bedrocktest.OpGetInferenceProfile) < 2 {
		t.Error("the refresh did not reach the control plane")
	}

	wantDenied(t, e.converse(resNewProf), resNewProf, "could not be resolved", "control plane")
	// Down for good: connection refused.
	e.cp.Close()
	wantDenied(t, e.converse(resBadPrompt), resBadPrompt, "could not be resolved")
	recs = e.audit.wait(t, 4)
	if r := recs[2]; r.Decision != "deny" || r.Rule != "model-resolution" || len(r.ModelResolved) != 0 {
		t.Errorf("unresolved record: %+v", r)
	}
	if got := e.emu.Calls(); len(got) != 2 {
		t.Errorf("upstream saw %d calls, want 2", len(got))
	}
}

// The audit JSON carries model_resolved (and model_resolved_stale).
func TestAuditModelResolvedJSON(t *testing.T) {
	lines := []string{
		string((&audit.Record{Model: resOKProfile, ModelResolved: []string{haiku, usHaiku}, ModelResolvedStale: true}).AppendJSON(nil)),
		string((&audit.Record{Model: haiku}).AppendJSON(nil)),
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	got, _ := first["model_resolved"].([]any)
	if len(got) != 2 || got[0] != haiku || got[1] != usHaiku || first["model_resolved_stale"] != true {
		t.Errorf("record: %s", lines[0])
	}
	if _, ok := second["model_resolved"]; ok {
		t.Errorf("direct model has model_resolved: %s", lines[1])
	}
}
