package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
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
	"github.com/warden-egress/warden/authz/models"
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
	resBadPrompt = resAcct + "prompt/OPUSPROMPT:1"
	resOKPrompt  = resAcct + "prompt/HAIKUPRMPT:1"
	// resDraft has no version: it runs its DRAFT, which its owner can re-point.
	resDraft = resAcct + "prompt/DRAFTPRMPT"
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
      unpinned_models: [${UNPINNED}]
`

// resolveOpts vary startResolveEnv's Warden.
type resolveOpts struct {
	cacheTTL string           // models.cache_ttl
	unpinned string           // allow.unpinned_models, a YAML flow list's items
	now      func() time.Time // the resolver's clock; nil is time.Now
}

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
	return startResolveEnvOpts(t, resolveOpts{cacheTTL: cacheTTL})
}

func startResolveEnvOpts(t *testing.T, o resolveOpts) *resolveEnv {
	t.Helper()
	all := map[string]string{resOKProfile: haiku, resBadProf: resOpus, resNewProf: haiku, resRouter: haiku,
		resOKRouter: haiku, resBadPrompt: resOpus, resOKPrompt: haiku, resDraft: haiku}
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
				resDraft:     {Variants: []bedrocktest.PromptVariant{{ModelID: haiku}}},
			},
			Logf: bedrocktest.TestLogf(t),
		}),
		audit: newRecorder(),
	}
	t.Cleanup(e.emu.Close)
	t.Cleanup(e.cp.Close)
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${CONTROL_PLANE}", e.cp.URL, "${CACHE_TTL}", o.cacheTTL,
		"${UNPINNED}", o.unpinned).Replace(resolvePolicy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	srv, err := proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
		Now:         o.now,
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

// resClock is a clock tests move by hand.
type resClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *resClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *resClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// A prompt without a version runs its DRAFT, which its owner can re-point
// after Warden checked it (issue 13 §3). By default it is denied with a
// message saying how to pin a version, and costs no control-plane call.
func TestResolveUnpinnedPromptDenied(t *testing.T) {
	e := startResolveEnv(t, "5m")
	wantDenied(t, e.converse(resDraft), resDraft, "pin a version", "CreatePromptVersion", resDraft+":1", "allow.unpinned_models")
	if n := e.cp.CallCount(""); n != 0 {
		t.Errorf("a refused unversioned prompt made %d control-plane calls, want 0", n)
	}
	// The same prompt pinned to a version is resolved and allowed.
	if err := e.converse(resOKPrompt); err != nil {
		t.Fatalf("versioned prompt: %v", err)
	}
	if n := e.cp.CallCount(bedrocktest.OpGetPrompt); n != 1 {
		t.Errorf("versioned prompt: %d GetPrompt calls, want 1", n)
	}
	recs := e.audit.wait(t, 2)
	if r := recs[0]; r.Decision != "deny" || r.Status != 403 || r.Rule != "apps[0].allow.unpinned_models" || len(r.ModelResolved) != 0 {
		t.Errorf("denied record: decision %s status %d rule %q model_resolved %q", r.Decision, r.Status, r.Rule, r.ModelResolved)
	}
	if got := e.emu.Calls(); len(got) != 1 || got[0].ModelID != resOKPrompt {
		t.Errorf("upstream calls %+v, want only the versioned prompt's", got)
	}
}

// An app that lists the prompt in allow.unpinned_models gets it, resolved
// again after models.unpinned_cache_ttl: a DRAFT re-pointed to a denied
// model is denied once that short TTL has passed, and never served stale
// while the control plane fails. Versioned prompts keep models.cache_ttl.
func TestResolveUnpinnedPromptOptIn(t *testing.T) {
	clk := &resClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := startResolveEnvOpts(t, resolveOpts{cacheTTL: "5m", unpinned: `"` + resAcct + `prompt/DRAFT*"`, now: clk.now})
	getPrompt := func() int { return e.cp.CallCount(bedrocktest.OpGetPrompt) }

	if err := e.converse(resDraft); err != nil {
		t.Fatalf("listed unversioned prompt → haiku: %v", err)
	}
	if err := e.converse(resOKPrompt); err != nil {
		t.Fatalf("versioned prompt: %v", err)
	}
	if n := getPrompt(); n != 2 {
		t.Fatalf("%d GetPrompt calls, want 2", n)
	}
	// Not resolved on every call: within the TTL the answer is reused.
	if err := e.converse(resDraft); err != nil {
		t.Fatal(err)
	}
	if n := getPrompt(); n != 2 {
		t.Errorf("a call within unpinned_cache_ttl asked the control plane again (%d calls)", n)
	}

	// The owner re-points the DRAFT to a model the app may not use.
	e.cp.UpdatePrompt(resDraft, bedrocktest.Prompt{Variants: []bedrocktest.PromptVariant{{ModelID: resOpus}}})
	clk.add(models.DefaultModelsUnpinnedCacheTTL + time.Second)
	wantDenied(t, e.converse(resDraft), resDraft, resOpus)
	// The versioned prompt was not asked for again: it keeps cache_ttl.
	if err := e.converse(resOKPrompt); err != nil {
		t.Fatal(err)
	}
	if n := getPrompt(); n != 3 {
		t.Errorf("%d GetPrompt calls after the short TTL, want 3 (only the DRAFT re-resolved)", n)
	}

	// Back to haiku; then the control plane fails past the short TTL: the
	// DRAFT is denied, not served stale.
	e.cp.UpdatePrompt(resDraft, bedrocktest.Prompt{Variants: []bedrocktest.PromptVariant{{ModelID: haiku}}})
	clk.add(models.DefaultModelsUnpinnedCacheTTL + time.Second)
	if err := e.converse(resDraft); err != nil {
		t.Fatalf("re-pointed back to haiku: %v", err)
	}
	e.cp.SetDown(true)
	clk.add(models.DefaultModelsUnpinnedCacheTTL + time.Second)
	wantDenied(t, e.converse(resDraft), resDraft, "could not be resolved", "control plane")

	recs := e.audit.wait(t, 7)
	want := []struct {
		decision string
		resolved string
	}{{"allow", haiku}, {"allow", haiku}, {"allow", haiku}, {"deny", resOpus}, {"allow", haiku}, {"allow", haiku}, {"deny", ""}}
	for i, w := range want {
		r := recs[i]
		got := strings.Join(r.ModelResolved, ",")
		if r.Decision != w.decision || got != w.resolved || r.ModelResolvedStale {
			t.Errorf("record %d (%s): decision %s model_resolved %q stale %v, want %s %q", i, r.Model, r.Decision, got, r.ModelResolvedStale, w.decision, w.resolved)
		}
	}
	if r := recs[6]; r.Rule != "model-resolution" {
		t.Errorf("outage record: rule %q, want model-resolution", r.Rule)
	}
}
