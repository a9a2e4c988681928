package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/warden-egress/warden/bedrock"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"anthropic.claude-3-5-haiku-*", "anthropic.claude-3-5-haiku-20241022-v1:0", true},
		{"anthropic.claude-3-5-haiku-*", "anthropic.claude-3-opus-20240229-v1:0", false},
		{"anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-20241022-v1:0", false},
		{"*", "anything:at/all", true},
		{"arn:aws:bedrock:*:123456789012:application-inference-profile/*", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", true},
		{"arn:aws:bedrock:*:123456789012:application-inference-profile/*", "arn:aws:bedrock:us-east-1:999999999999:application-inference-profile/abc", false},
		{"amazon.nova-?ite-v1:0", "amazon.nova-lite-v1:0", true},
		{"amazon.nova-?ite-v1:0", "amazon.nova-liite-v1:0", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"", "", true},
		{"", "x", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, tc := range cases {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func policyModel(t testing.TB, s string) *bedrock.ModelID {
	t.Helper()
	m, err := bedrock.ParseModelID(s)
	if err != nil {
		t.Fatalf("ParseModelID(%q): %v", s, err)
	}
	return &m
}

func mustPolicy(t testing.TB, apps string) *Policy {
	t.Helper()
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
` + apps))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(cfg.Apps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tags builds an identity from "key=value" (weak) and "key=value!" (strong).
func tags(kv ...string) identity.Identity {
	id := identity.Identity{Source: "test", Tags: map[string]identity.Tag{}}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		if v, ok := strings.CutSuffix(v, "!"); ok {
			id.Tags[k] = identity.StrongTag("test", v)
			continue
		}
		id.Tags[k] = identity.WeakTag("test", v)
	}
	return id
}

// The original first-match behaviour, now with weak static tags allowed
// explicitly.
func TestDecideEquality(t *testing.T) {
	p := mustPolicy(t, `
  - name: payments-prod
    allow_weak_identity: true
    match: {tags: {team: payments, env: prod}}
    allow: {models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*"], operations: [Converse, ConverseStream]}
  - name: payments-any
    allow_weak_identity: true
    match: {tags: {team: payments}}
    allow: {models: ["amazon.nova-*"], operations: ["*"]}
`)
	prod := tags("team=payments", "env=prod")
	dev := tags("team=payments", "env=dev")
	cases := []struct {
		name    string
		id      identity.Identity
		op      bedrock.Operation
		model   string
		allow   bool
		app     string
		mention []string
	}{
		{"allowed", prod, bedrock.OpConverse, "anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"allowed via ARN", prod, bedrock.OpConverse, "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"system profile", prod, bedrock.OpConverseStream, "us.anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"eu profile not allowed", prod, bedrock.OpConverse, "eu.anthropic.claude-3-5-haiku-20241022-v1:0", false, "payments-prod", []string{"payments-prod", "Converse", "eu.anthropic"}},
		{"model denied", prod, bedrock.OpConverse, "anthropic.claude-3-opus-20240229-v1:0", false, "payments-prod", []string{"payments-prod", "Converse", "anthropic.claude-3-opus-20240229-v1:0"}},
		{"op denied", prod, bedrock.OpInvokeModel, "anthropic.claude-3-5-haiku-20241022-v1:0", false, "payments-prod", []string{"payments-prod", "InvokeModel", "allow.operations"}},
		{"first match wins", prod, bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "payments-prod", nil},
		{"second app", dev, bedrock.OpInvokeModel, "amazon.nova-lite-v1:0", true, "payments-any", nil},
		{"wildcard ops exclude bidi", dev, bedrock.OpInvokeModelWithBidirectionalStream, "amazon.nova-lite-v1:0", false, "", []string{"not supported"}},
		{"no app", tags("team=search"), bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "", []string{"no app matches", "Converse", "amazon.nova-lite-v1:0"}},
		{"empty identity", identity.Identity{}, bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "", []string{"no app matches"}},
		{"no model op", dev, bedrock.OpListAsyncInvokes, "", true, "payments-any", nil},
		{"wildcard ops include async but it needs a prefix", dev, bedrock.OpStartAsyncInvoke, "amazon.nova-lite-v1:0", false, "payments-any", []string{"async_output_prefixes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Call{Op: tc.op}
			if tc.model != "" {
				c.Model = policyModel(t, tc.model)
			}
			d := p.Decide(tc.id, c)
			if d.Allow != tc.allow || d.App != tc.app || d.DryRun {
				t.Fatalf("Decide = %+v, want allow=%v app=%q", d, tc.allow, tc.app)
			}
			for _, m := range tc.mention {
				if !strings.Contains(d.Reason, m) {
					t.Errorf("reason %q does not mention %q", d.Reason, m)
				}
			}
		})
	}
}

// policyAll exercises every selector kind, strength, models, regions,
// scopes, async prefixes and dry-run.
const policyAll = `
  - name: payments-prod
    match:
      tags: {k8s.namespace: payments}
      in: {k8s.serviceaccount: [api, worker]}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "amazon.nova-*"]
      operations: [Converse, ConverseStream, StartAsyncInvoke]
      regions: ["us-*"]
      profile_scopes: [us]
      async_output_prefixes: ["s3://pay-out/async/", "s3://pay-archive"]
  - name: search-canary
    mode: dry-run
    match:
      tags: {k8s.namespace: search}
      exists: [k8s.label.canary]
    allow: {models: ["amazon.nova-lite-v1:0"], operations: [Converse]}
  - name: pay-batch
    match: {glob: {ecs.family: "pay-*"}}
    allow: {models: ["*"], operations: [InvokeModel, Converse], profile_scopes: [global, eu], regions: ["*"]}
  - name: legacy
    allow_weak_identity: true
    match: {tags: {app: legacy}}
    allow:
      models: ["meta.*", "arn:aws:bedrock:us-east-1:123456789012:imported-model/*", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/legacy-*"]
      operations: [Converse, InvokeModel]
  - name: eu-only
    match: {tags: {k8s.namespace: eu-team}}
    allow: {models: ["anthropic.*"], operations: [Converse], regions: [eu-west-1, eu-central-1], profile_scopes: [eu]}
  - name: japan
    match: {tags: {k8s.namespace: jp-team}}
    allow: {models: ["anthropic.*"], operations: [Converse], regions: [ap-northeast-1, ap-northeast-3], profile_scopes: [jp, apac]}
`

const (
	pHaiku      = "anthropic.claude-3-5-haiku-20241022-v1:0"
	pOpus       = "anthropic.claude-3-opus-20240229-v1:0"
	pNovaLite   = "amazon.nova-lite-v1:0"
	pAppProfile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	pEuProfile  = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123def456"
	pRouter     = "arn:aws:bedrock:us-east-1:123456789012:prompt-router/my-router"
	pPrompt     = "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234:2"
	pImported   = "arn:aws:bedrock:us-east-1:123456789012:imported-model/abc123def456"
	pProvModel  = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456"
	pSageMaker  = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/legacy-llm"
)

type decideCase struct {
	name        string
	id          identity.Identity
	op          bedrock.Operation
	model       string
	foundations []string // non-nil: resolved
	regions     []string // Call.Regions
	s3          string
	allow       bool
	app         string
	dryRun      bool
	rule        string // suffix of Decision.Rule
	mention     []string
}

func runDecideCases(t *testing.T, p *Policy, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Call{Op: tc.op, S3OutputURI: tc.s3}
			if c.Op == "" {
				c.Op = bedrock.OpConverse
			}
			if tc.model != "" {
				c.Model = policyModel(t, tc.model)
			}
			if tc.foundations != nil {
				c.Foundations, c.Resolved, c.Regions = tc.foundations, true, tc.regions
			}
			d := p.Decide(tc.id, c)
			if d.Allow != tc.allow || d.App != tc.app || d.DryRun != tc.dryRun {
				t.Fatalf("Decide = %+v, want allow=%v app=%q dryRun=%v", d, tc.allow, tc.app, tc.dryRun)
			}
			if tc.rule != "" && !strings.HasSuffix(d.Rule, tc.rule) {
				t.Errorf("rule %q, want …%s", d.Rule, tc.rule)
			}
			if !d.Allow {
				// Every denial names the operation and the model as sent.
				want := append([]string{string(c.Op)}, tc.mention...)
				if tc.model != "" {
					want = append(want, tc.model)
				}
				if d.App != "" {
					want = append(want, "app "+d.App)
				}
				for _, m := range want {
					if !strings.Contains(d.Reason, m) {
						t.Errorf("reason %q does not mention %q", d.Reason, m)
					}
				}
			}
			// Explain reaches the same decision and the same app by a linear scan.
			ex := p.Explain(tc.id, c)
			if ex.Decision != d {
				t.Errorf("Explain decision %+v, Decide %+v", ex.Decision, d)
			}
			if d.App != "" && (len(ex.Apps) == 0 || !ex.Apps[len(ex.Apps)-1].Selected || ex.Apps[len(ex.Apps)-1].Name != d.App) {
				t.Errorf("Explain apps %+v do not end with the selected %s", ex.Apps, d.App)
			}
		})
	}
}

func TestDecideSelectors(t *testing.T) {
	p := mustPolicy(t, policyAll)
	runDecideCases(t, p, []decideCase{
		{name: "eq and in (first value)", id: tags("k8s.namespace=payments!", "k8s.serviceaccount=api!"), model: pHaiku, allow: true, app: "payments-prod", rule: "apps[0]"},
		{name: "eq and in (second value)", id: tags("k8s.namespace=payments!", "k8s.serviceaccount=worker!"), model: pHaiku, allow: true, app: "payments-prod"},
		{name: "in: value not listed", id: tags("k8s.namespace=payments!", "k8s.serviceaccount=admin!"), model: pHaiku, rule: "default-deny", mention: []string{"no app matches"}},
		{name: "in: tag missing", id: tags("k8s.namespace=payments!"), model: pHaiku, rule: "default-deny"},
		{name: "eq: other value", id: tags("k8s.namespace=billing!", "k8s.serviceaccount=api!"), model: pHaiku, rule: "default-deny"},
		{name: "exists with any value", id: tags("k8s.namespace=search!", "k8s.label.canary=whatever"), model: pNovaLite, allow: true, app: "search-canary", dryRun: true},
		{name: "exists with empty value", id: tags("k8s.namespace=search!", "k8s.label.canary="), model: pNovaLite, allow: true, app: "search-canary", dryRun: true},
		{name: "exists: tag missing", id: tags("k8s.namespace=search!"), model: pNovaLite, rule: "default-deny"},
		{name: "glob matches", id: tags("ecs.family=pay-batch!"), op: bedrock.OpInvokeModel, model: pOpus, allow: true, app: "pay-batch"},
		{name: "glob does not match", id: tags("ecs.family=payroll!"), op: bedrock.OpInvokeModel, model: pOpus, rule: "default-deny"},
		{name: "glob is anchored", id: tags("ecs.family=x-pay-batch!"), op: bedrock.OpInvokeModel, model: pOpus, rule: "default-deny"},
		{name: "weak-only app with allow_weak_identity", id: tags("app=legacy"), model: "meta.llama3-8b-instruct-v1:0", allow: true, app: "legacy"},
		{name: "strong tag satisfies a weak app too", id: tags("app=legacy!"), model: "meta.llama3-8b-instruct-v1:0", allow: true, app: "legacy"},
	})
}

func TestDecideStrength(t *testing.T) {
	p := mustPolicy(t, policyAll)
	runDecideCases(t, p, []decideCase{
		{name: "weak namespace does not satisfy", id: tags("k8s.namespace=payments", "k8s.serviceaccount=api!"), model: pHaiku, rule: "default-deny"},
		{name: "weak service account does not satisfy", id: tags("k8s.namespace=payments!", "k8s.serviceaccount=api"), model: pHaiku, rule: "default-deny"},
		{name: "weak ecs.family does not satisfy a glob", id: tags("ecs.family=pay-batch"), op: bedrock.OpInvokeModel, model: pOpus, rule: "default-deny"},
		{name: "weak-keyed exists beside a strong anchor", id: tags("k8s.namespace=search!", "k8s.label.canary=1"), model: pNovaLite, allow: true, app: "search-canary", dryRun: true},
		{name: "weak namespace beside a weak label", id: tags("k8s.namespace=search", "k8s.label.canary=1"), model: pNovaLite, rule: "default-deny"},
		// A later app must not pick up a caller an earlier one refused for strength.
		{name: "weak claim of everything", id: tags("k8s.namespace=payments", "k8s.serviceaccount=api", "ecs.family=pay-x", "app=legacy"), model: "meta.llama3-8b-instruct-v1:0", allow: true, app: "legacy"},
	})
}

func TestDecideModels(t *testing.T) {
	p := mustPolicy(t, policyAll)
	pay := tags("k8s.namespace=payments!", "k8s.serviceaccount=api!")
	batch := tags("ecs.family=pay-batch!")
	legacy := tags("app=legacy")
	runDecideCases(t, p, []decideCase{
		// System profiles: own canonical id, or base model in a listed scope.
		{name: "us profile, scope listed, base allowed", id: pay, model: "us.anthropic.claude-3-5-haiku-20241022-v1:0", allow: true, app: "payments-prod"},
		{name: "us profile ARN", id: pay, model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0", allow: true, app: "payments-prod"},
		{name: "eu profile, scope not listed", id: pay, model: "eu.anthropic.claude-3-5-haiku-20241022-v1:0", app: "payments-prod", rule: "allow.profile_scopes", mention: []string{"scope eu"}},
		{name: "global profile, not listed", id: pay, model: "global.anthropic.claude-3-5-haiku-20241022-v1:0", app: "payments-prod", rule: "allow.profile_scopes"},
		{name: "us profile of a denied model", id: pay, model: "us.anthropic.claude-3-opus-20240229-v1:0", app: "payments-prod", rule: "allow.models"},
		{name: "global profile, listed", id: batch, op: bedrock.OpInvokeModel, model: "global.anthropic.claude-3-5-haiku-20241022-v1:0", allow: true, app: "pay-batch"},
		{name: "us profile, other scopes listed", id: batch, op: bedrock.OpInvokeModel, model: "us.amazon.nova-lite-v1:0", app: "pay-batch", rule: "allow.profile_scopes"},
		// Regions.
		{name: "foundation ARN in an allowed region", id: pay, model: "arn:aws:bedrock:us-west-2::foundation-model/" + pHaiku, allow: true, app: "payments-prod"},
		{name: "foundation ARN in another region", id: pay, model: "arn:aws:bedrock:eu-west-1::foundation-model/" + pHaiku, app: "payments-prod", rule: "allow.regions", mention: []string{"eu-west-1"}},
		{name: "profile ARN received in another region", id: pay, model: "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0", app: "payments-prod", rule: "allow.regions"},
		{name: "eu geography needs all of eu-*", id: tags("k8s.namespace=eu-team!"), model: "eu.anthropic.claude-3-5-haiku-20241022-v1:0", app: "eu-only", rule: "allow.regions", mention: []string{"eu-*"}},
		{name: "eu-only app, foundation in eu-central-1", id: tags("k8s.namespace=eu-team!"), model: "arn:aws:bedrock:eu-central-1::foundation-model/" + pHaiku, allow: true, app: "eu-only"},
		{name: "jp geography is Tokyo and Osaka", id: tags("k8s.namespace=jp-team!"), model: "jp.anthropic.claude-3-5-haiku-20241022-v1:0", allow: true, app: "japan"},
		{name: "apac geography is wider than Japan", id: tags("k8s.namespace=jp-team!"), model: "apac.anthropic.claude-3-5-haiku-20241022-v1:0", app: "japan", rule: "allow.regions", mention: []string{"ap-*"}},
		{name: "global with regions * and scope listed", id: batch, op: bedrock.OpInvokeModel, model: "global.amazon.nova-lite-v1:0", allow: true, app: "pay-batch"},
		// Indirect ids.
		{name: "app profile unresolved", id: pay, model: pAppProfile, app: "payments-prod", rule: "model-resolution", mention: []string{"could not be resolved"}},
		{name: "app profile resolved to an allowed model", id: pay, model: pAppProfile, foundations: []string{pHaiku}, allow: true, app: "payments-prod"},
		{name: "app profile resolved to a denied model", id: pay, model: pAppProfile, foundations: []string{pOpus}, app: "payments-prod", rule: "allow.models", mention: []string{pOpus}},
		{name: "app profile in a denied region", id: pay, model: pEuProfile, foundations: []string{pHaiku}, app: "payments-prod", rule: "allow.regions", mention: []string{"eu-west-1"}},
		{name: "app profile over us profile ids", id: pay, model: pAppProfile, foundations: []string{"us.anthropic.claude-3-5-haiku-20241022-v1:0"}, allow: true, app: "payments-prod"},
		{name: "app profile over foundation ARNs", id: pay, model: pAppProfile, foundations: []string{"arn:aws:bedrock:us-east-1::foundation-model/" + pHaiku, "arn:aws:bedrock:us-west-2::foundation-model/" + pHaiku}, allow: true, app: "payments-prod"},
		{name: "app profile over foundation ARNs, one in eu", id: pay, model: pAppProfile, foundations: []string{"arn:aws:bedrock:us-east-1::foundation-model/" + pHaiku, "arn:aws:bedrock:eu-west-1::foundation-model/" + pHaiku}, app: "payments-prod", rule: "allow.regions"},
		{name: "resolution regions allowed", id: pay, model: pAppProfile, foundations: []string{pHaiku}, regions: []string{"us-east-1", "us-west-2"}, allow: true, app: "payments-prod"},
		{name: "resolution regions include eu", id: pay, model: pAppProfile, foundations: []string{pHaiku}, regions: []string{"eu-west-1", "us-east-1"}, app: "payments-prod", rule: "allow.regions", mention: []string{"eu-west-1"}},
		{name: "router, all targets allowed", id: pay, model: pRouter, foundations: []string{pHaiku, pNovaLite}, allow: true, app: "payments-prod"},
		{name: "router, one target denied", id: pay, model: pRouter, foundations: []string{pHaiku, pOpus}, app: "payments-prod", rule: "allow.models", mention: []string{pOpus}},
		{name: "router resolved to nothing", id: pay, model: pRouter, foundations: []string{}, app: "payments-prod", rule: "model-resolution", mention: []string{"no foundation model"}},
		{name: "router resolved to garbage", id: pay, model: pRouter, foundations: []string{"not a model"}, app: "payments-prod", rule: "model-resolution"},
		{name: "router resolved to another indirect id", id: pay, model: pRouter, foundations: []string{pAppProfile}, app: "payments-prod", rule: "model-resolution"},
		{name: "prompt resolved", id: pay, model: pPrompt, foundations: []string{pNovaLite}, allow: true, app: "payments-prod"},
		{name: "prompt unresolved", id: pay, model: pPrompt, app: "payments-prod", rule: "model-resolution"},
		{name: "provisioned model resolved", id: pay, model: pProvModel, foundations: []string{pHaiku}, allow: true, app: "payments-prod"},
		{name: "ARN in allow.models does not allow its hidden model", id: legacy, model: pImported, foundations: []string{pOpus}, app: "legacy", rule: "allow.models"},
		{name: "imported model matches its ARN", id: legacy, model: pImported, foundations: []string{}, allow: true, app: "legacy"},
		{name: "imported model resolved to itself", id: legacy, model: pImported, foundations: []string{pImported}, allow: true, app: "legacy"},
		{name: "custom model over an imported model", id: legacy, model: pProvModel, foundations: []string{pImported}, allow: true, app: "legacy"},
		{name: "custom model over an unlisted imported model", id: pay, model: pProvModel, foundations: []string{pImported}, app: "payments-prod", rule: "allow.models", mention: []string{"resolves to " + pImported}},
		{name: "imported model in another region", id: legacy, model: pProvModel, foundations: []string{"arn:aws:bedrock:us-west-2:123456789012:imported-model/abc123def456"}, app: "legacy", rule: "allow.models"},
		{name: "imported model unresolved", id: legacy, model: pImported, app: "legacy", rule: "model-resolution"},
		{name: "imported model not listed", id: pay, model: pImported, foundations: []string{}, app: "payments-prod", rule: "allow.models"},
		{name: "sagemaker endpoint by ARN", id: legacy, model: pSageMaker, allow: true, app: "legacy"},
		{name: "sagemaker endpoint not listed", id: legacy, model: "arn:aws:sagemaker:us-east-1:123456789012:endpoint/other", app: "legacy", rule: "allow.models"},
	})
}

func TestDecideAsync(t *testing.T) {
	p := mustPolicy(t, policyAll)
	pay := tags("k8s.namespace=payments!", "k8s.serviceaccount=api!")
	c := func(name, uri string, allow bool) decideCase {
		dc := decideCase{name: name, id: pay, op: bedrock.OpStartAsyncInvoke, model: pNovaLite, s3: uri, allow: allow, app: "payments-prod"}
		if !allow {
			dc.rule = "allow.async_output_prefixes"
		}
		return dc
	}
	runDecideCases(t, p, []decideCase{
		c("under prefix", "s3://pay-out/async/job-1/", true),
		c("object under prefix", "s3://pay-out/async/job-1/out.jsonl", true),
		c("the prefix itself", "s3://pay-out/async/", true),
		c("the prefix without slash", "s3://pay-out/async", true),
		c("bucket-wide prefix", "s3://pay-archive/2026/", true),
		c("bucket root", "s3://pay-archive", true),
		c("sibling sharing a string prefix", "s3://pay-out/asyncx/", false),
		c("bucket sharing a string prefix", "s3://pay-archive2/x", false),
		c("parent", "s3://pay-out/", false),
		c("dot-dot", "s3://pay-out/async/../other/", false),
		c("trailing dot-dot", "s3://pay-out/async/..", false),
		c("dot segment", "s3://pay-out/async/./x", false),
		c("encoded dot-dot", "s3://pay-out/async/%2e%2e/other/", false),
		c("encoded slash", "s3://pay-out/async%2fx", false),
		c("empty segment", "s3://pay-out/async//x", false),
		c("backslash", "s3://pay-out/async/..\\x", false),
		c("query", "s3://pay-out/async/?x", false),
		c("control character", "s3://pay-out/async/\nx", false),
		c("non-ASCII", "s3://pay-out/async/\u2215x", false),
		c("upper-case bucket", "s3://PAY-OUT/async/", false),
		c("other scheme", "https://pay-out.s3.amazonaws.com/async/", false),
		c("missing", "", false),
		{name: "model still checked", id: pay, op: bedrock.OpStartAsyncInvoke, model: pOpus, s3: "s3://pay-out/async/", app: "payments-prod", rule: "allow.models"},
		{name: "operation still checked", id: tags("app=legacy"), op: bedrock.OpStartAsyncInvoke, model: "meta.llama3-8b-instruct-v1:0", s3: "s3://pay-out/async/", app: "legacy", rule: "allow.operations"},
	})
}

func TestDecideDryRun(t *testing.T) {
	p := mustPolicy(t, policyAll)
	canary := tags("k8s.namespace=search!", "k8s.label.canary=1")
	runDecideCases(t, p, []decideCase{
		{name: "allowed", id: canary, model: pNovaLite, allow: true, app: "search-canary", dryRun: true},
		{name: "model denied", id: canary, model: pHaiku, app: "search-canary", dryRun: true, rule: "apps[1].allow.models"},
		{name: "operation denied", id: canary, op: bedrock.OpInvokeModel, model: pNovaLite, app: "search-canary", dryRun: true, rule: "apps[1].allow.operations"},
		{name: "enforce app is not dry-run", id: tags("k8s.namespace=payments!", "k8s.serviceaccount=api!"), model: pOpus, app: "payments-prod"},
		{name: "no app is never dry-run", id: tags("k8s.namespace=search!"), model: pNovaLite, rule: "default-deny"},
	})
}

// The reason a caller sees names only the deciding app and its own rules,
// never another app's name or selector values.
func TestReasonsLeakNothing(t *testing.T) {
	p := mustPolicy(t, policyAll)
	for _, id := range []identity.Identity{tags("k8s.namespace=payments", "k8s.serviceaccount=api"), tags("k8s.namespace=nobody!")} {
		d := p.Decide(id, Call{Op: bedrock.OpConverse, Model: policyModel(t, pHaiku)})
		for _, secret := range []string{"payments", "search", "canary", "pay-", "legacy", "api", "worker"} {
			if strings.Contains(d.Reason, secret) {
				t.Errorf("reason %q leaks %q", d.Reason, secret)
			}
		}
	}
}

func TestPolicyValidation(t *testing.T) {
	head := "version: 1\nlisten: {endpoint: 127.0.0.1:8480}\napps:\n"
	cases := []struct {
		name, apps string
		want       []string // "" = valid
	}{
		{"weak only", "  - name: w\n    match: {tags: {app: a, env: prod}}\n",
			[]string{"line 4", "apps[0] (w)", "weak tags (app, env)", "allow_weak_identity"}},
		{"weak only across kinds", "  - name: w\n    match: {tags: {k8s.label.app: a}, exists: [aws.tag.team], glob: {ecs.tag.x: \"*\"}, in: {k8s.annotation.y: [z]}}\n",
			[]string{"line 4", "aws.tag.team, ecs.tag.x, k8s.annotation.y, k8s.label.app"}},
		{"weak only allowed", "  - name: w\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n", nil},
		{"mixed strong and weak", "  - name: m\n    match: {tags: {k8s.namespace: n}, exists: [k8s.label.app]}\n", nil},
		{"strong exists only", "  - name: s\n    match: {exists: [warden.key_app]}\n", nil},
		{"second app's line", "  - name: ok\n    match: {tags: {k8s.namespace: n}}\n  - name: bad\n    match: {in: {k8s.namespace: []}}\n",
			[]string{"line 6", "apps[1] (bad)", "match.in.k8s.namespace", "empty"}},
		{"nothing selected", "  - name: e\n    match: {}\n", []string{"line 4", "at least one"}},
		{"bad glob", "  - name: g\n    match: {glob: {k8s.namespace: \"[a-z]\"}}\n", []string{"match.glob.k8s.namespace"}},
		{"empty key", "  - name: k\n    match: {tags: {\"\": x, k8s.namespace: n}}\n", []string{"not a tag key"}},
		{"bad mode", "  - name: m\n    mode: audit\n    match: {tags: {k8s.namespace: n}}\n", []string{"line 4", "mode", "audit"}},
		{"bad region", "  - name: r\n    match: {tags: {k8s.namespace: n}}\n    allow: {regions: [\"us east\", \"*-1\", us-*]}\n",
			[]string{"\"us east\"", "\"*-1\""}},
		{"bad scope", "  - name: s\n    match: {tags: {k8s.namespace: n}}\n    allow: {profile_scopes: [us, mars]}\n", []string{"mars", "profile_scopes"}},
		{"bad prefix", "  - name: p\n    match: {tags: {k8s.namespace: n}}\n    allow: {async_output_prefixes: [\"https://b/x\", \"s3://bkt/a/../b\", \"s3://bkt/a%2f\"]}\n",
			[]string{"https://b/x", "\"..\"", "%2f"}},
		{"async without prefixes", "  - name: a\n    match: {tags: {k8s.namespace: n}}\n    allow: {models: [\"*\"], operations: [StartAsyncInvoke]}\n",
			[]string{"line 4", "StartAsyncInvoke", "async_output_prefixes"}},
		{"unknown key", "  - name: u\n    match: {tags: {k8s.namespace: n}, regex: {a: b}}\n", []string{"regex"}},
		{"bad unpinned glob", "  - name: u\n    match: {tags: {k8s.namespace: n}}\n    allow: {unpinned_models: [\"arn:aws:bedrock:*:*:prompt/[A-Z]\"]}\n",
			[]string{"line 4", "allow.unpinned_models", "[A-Z]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePolicy([]byte(head + tc.apps))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPolicyWarnings(t *testing.T) {
	cases := []struct {
		name, apps string
		want       []string // substrings of the joined warnings; nil = none
	}{
		{"same selectors", `
  - {name: a, match: {tags: {k8s.namespace: n}}}
  - {name: b, match: {tags: {k8s.namespace: n}}}`, []string{"apps[1] (b): unreachable: apps[0] (a, line"}},
		{"narrower", `
  - {name: a, match: {tags: {k8s.namespace: n}}}
  - {name: b, match: {tags: {k8s.namespace: n, k8s.serviceaccount: s}}}`, []string{"apps[1] (b): unreachable"}},
		{"in subset", `
  - {name: a, match: {in: {k8s.namespace: [n, m, o]}}}
  - {name: b, match: {in: {k8s.namespace: [m, n]}}}`, []string{"apps[1] (b): unreachable"}},
		{"eq inside in", `
  - {name: a, match: {in: {k8s.namespace: [n, m]}}}
  - {name: b, match: {tags: {k8s.namespace: m}}}`, []string{"apps[1] (b): unreachable"}},
		{"exists covers all", `
  - {name: a, match: {exists: [k8s.namespace]}}
  - {name: b, match: {glob: {k8s.namespace: "pay-*"}}}`, []string{"apps[1] (b): unreachable"}},
		{"glob covers value", `
  - {name: a, match: {glob: {k8s.namespace: "pay-*"}}}
  - {name: b, match: {tags: {k8s.namespace: pay-x}, exists: [k8s.pod]}}`, []string{"apps[1] (b): unreachable"}},
		{"same glob", `
  - {name: a, match: {glob: {k8s.namespace: "pay-*"}}}
  - {name: b, match: {glob: {k8s.namespace: "pay-*"}}}`, []string{"apps[1] (b): unreachable"}},
		{"weak app shadows strict app", `
  - {name: a, allow_weak_identity: true, match: {tags: {k8s.namespace: n}}}
  - {name: b, match: {tags: {k8s.namespace: n}}}`, []string{"apps[1] (b): unreachable"}},
		{"strict app does not shadow weak app", `
  - {name: a, match: {tags: {k8s.namespace: n}}}
  - {name: b, allow_weak_identity: true, match: {tags: {k8s.namespace: n}}}`, nil},
		{"wider later app is reachable", `
  - {name: a, match: {tags: {k8s.namespace: n, k8s.serviceaccount: s}}}
  - {name: b, match: {tags: {k8s.namespace: n}}}`, nil},
		{"different values", `
  - {name: a, match: {tags: {k8s.namespace: n}}}
  - {name: b, match: {tags: {k8s.namespace: m}}}`, nil},
		{"overlapping globs are not decided", `
  - {name: a, match: {glob: {k8s.namespace: "pay-*"}}}
  - {name: b, match: {glob: {k8s.namespace: "pay-x*"}}}`, nil},
		{"in not a subset", `
  - {name: a, match: {in: {k8s.namespace: [n]}}}
  - {name: b, match: {in: {k8s.namespace: [n, m]}}}`, nil},
		{"async via *", `
  - {name: a, match: {tags: {k8s.namespace: n}}, allow: {operations: ["*"]}}`, []string{"apps[0] (a): allow.operations \"*\" includes StartAsyncInvoke"}},
		{"agent sessions are per app (no warning)", `
  - {name: a, match: {tags: {k8s.namespace: n}}, allow: {operations: [InvokeAgent, GetSession, GetAgentMemory], agents: ["*"]}}`, nil},
		{"agent invocations alone are not", `
  - {name: a, match: {tags: {k8s.namespace: n}}, allow: {operations: [InvokeAgent, Retrieve], agents: ["*"], knowledge_bases: ["*"]}}`, nil},
		{"regions exclude upstream", `
  - {name: a, match: {tags: {k8s.namespace: n}}, allow: {regions: [eu-*]}}`, []string{"upstream.region us-east-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parsePolicy([]byte("version: 1\nupstream: {region: us-east-1}\napps:" + tc.apps + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			w := strings.Join(warnings(cfg), "\n")
			if tc.want == nil && w != "" {
				t.Fatalf("unexpected warnings:\n%s", w)
			}
			for _, s := range tc.want {
				if !strings.Contains(w, s) {
					t.Errorf("warnings %q lack %q", w, s)
				}
			}
		})
	}
}

// The index must pick the same app as a linear scan in file order, for
// random policies and identities.
func TestIndexMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"k8s.namespace", "k8s.serviceaccount", "ecs.family", "app"}
	vals := []string{"a", "b", "c", "ab"}
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	for round := 0; round < 200; round++ {
		var cfgApps []AppConfig
		for i := 0; i < 1+r.IntN(12); i++ {
			m := MatchConfig{Tags: map[string]string{}, In: map[string][]string{}, Glob: map[string]string{}}
			for j := 0; j < 1+r.IntN(3); j++ {
				switch k := pick(keys); r.IntN(4) {
				case 0:
					m.Tags[k] = pick(vals)
				case 1:
					m.In[k] = []string{pick(vals), pick(vals)}
				case 2:
					m.Glob[k] = pick([]string{"a*", "*b", "?"})
				case 3:
					m.Exists = append(m.Exists, k)
				}
			}
			cfgApps = append(cfgApps, AppConfig{Name: fmt.Sprint("app", i), AllowWeakIdentity: r.IntN(2) == 0, Match: m})
		}
		p, err := NewPolicy(cfgApps)
		if err != nil {
			continue // e.g. weak-only selection
		}
		for n := 0; n < 50; n++ {
			id := identity.Identity{Tags: map[string]identity.Tag{}}
			for _, k := range keys {
				if r.IntN(3) > 0 {
					id.Tags[k] = identity.Tag{Value: pick(vals), Strong: r.IntN(2) == 0}
				}
			}
			want := -1
			for i := range p.apps {
				if p.apps[i].selects(id) {
					want = i
					break
				}
			}
			if got := p.match(id); got != want {
				t.Fatalf("round %d: match(%v) = %d, linear scan %d; apps %+v", round, id, got, want, cfgApps)
			}
		}
	}
}

func TestDecideAllowPathAllocatesNothing(t *testing.T) {
	p := mustPolicy(t, policyAll)
	id := tags("k8s.namespace=payments!", "k8s.serviceaccount=api!")
	for _, c := range []Call{
		{Op: bedrock.OpConverse, Model: policyModel(t, pHaiku)},
		{Op: bedrock.OpConverse, Model: policyModel(t, "us.anthropic.claude-3-5-haiku-20241022-v1:0")},
		{Op: bedrock.OpConverse, Model: policyModel(t, pRouter), Foundations: []string{pHaiku, pNovaLite}, Resolved: true},
		{Op: bedrock.OpStartAsyncInvoke, Model: policyModel(t, pNovaLite), S3OutputURI: "s3://pay-out/async/job/"},
	} {
		if n := testing.AllocsPerRun(100, func() {
			if !p.Decide(id, c).Allow {
				t.Fatal("denied")
			}
		}); n != 0 {
			t.Errorf("%s %s: %v allocations per decision", c.Op, c.Model.Raw, n)
		}
	}
}

// bigPolicy has n apps, each anchored on its own namespace.
func bigPolicy(b testing.TB, n int) *Policy {
	var s strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  - name: app-%d\n    match: {tags: {k8s.namespace: ns-%d}, in: {k8s.serviceaccount: [api, worker]}}\n"+
			"    allow: {models: [\"anthropic.claude-3-5-haiku-*\", \"amazon.nova-*\"], operations: [Converse, ConverseStream], profile_scopes: [us]}\n", i, i)
	}
	return mustPolicy(b, s.String())
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000} {
		p := bigPolicy(b, n)
		last := tags(fmt.Sprintf("k8s.namespace=ns-%d!", n-1), "k8s.serviceaccount=worker!", "k8s.pod=x", "k8s.label.app=y")
		for _, bc := range []struct {
			name string
			call Call
		}{
			{"allow", Call{Op: bedrock.OpConverse, Model: policyModel(b, pHaiku)}},
			{"allow-profile", Call{Op: bedrock.OpConverseStream, Model: policyModel(b, "us.anthropic.claude-3-5-haiku-20241022-v1:0")}},
			{"allow-router", Call{Op: bedrock.OpConverse, Model: policyModel(b, pRouter), Foundations: []string{pHaiku, pNovaLite}, Resolved: true}},
		} {
			b.Run(fmt.Sprintf("apps=%d/%s", n, bc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if !p.Decide(last, bc.call).Allow {
						b.Fatal("denied")
					}
				}
			})
		}
		b.Run(fmt.Sprintf("apps=%d/no-app", n), func(b *testing.B) {
			id := tags("k8s.namespace=nobody!")
			c := Call{Op: bedrock.OpConverse, Model: policyModel(b, pHaiku)}
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(id, c)
			}
		})
	}
}

func FuzzDecide(f *testing.F) {
	f.Add("k8s.namespace", "payments", true, "Converse", pHaiku, "s3://pay-out/async/x", pHaiku)
	f.Add("app", "legacy", false, "StartAsyncInvoke", pRouter, "s3://pay-out/async/../x", "us.amazon.nova-lite-v1:0")
	f.Add("ecs.family", "pay-batch", true, "InvokeModel", "global.anthropic.claude-3-5-haiku-20241022-v1:0", "", "")
	p := mustPolicy(f, policyAll)
	f.Fuzz(func(t *testing.T, key, value string, strong bool, op, model, s3, foundation string) {
		id := identity.Identity{Tags: map[string]identity.Tag{key: {Value: value, Strong: strong}, "k8s.serviceaccount": {Value: "api", Strong: true}}}
		c := Call{Op: bedrock.Operation(op), S3OutputURI: s3, Foundations: []string{foundation}, Resolved: foundation != ""}
		if m, err := bedrock.ParseModelID(model); err == nil {
			c.Model = &m
		}
		d := p.Decide(id, c)
		if ex := p.Explain(id, c); ex.Decision != d {
			t.Fatalf("Explain %+v != Decide %+v", ex.Decision, d)
		}
		if d.Allow && c.Op == bedrock.OpStartAsyncInvoke && (strings.Contains(s3, "..") || strings.Contains(s3, "%")) {
			t.Fatalf("allowed async output %q", s3)
		}
		if d.Allow && d.Reason != "allowed" {
			t.Fatalf("allow with reason %q", d.Reason)
		}
	})
}

func TestStaticSourceOnlyOnLoopback(t *testing.T) {
	s := identity.NewStaticSource(map[string]string{"app": "x"})
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.9.9.9:5000", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"10.0.0.5:5000", false},
		{"[2001:db8::1]:5000", false},
		{"0.0.0.0:1", false},
	} {
		_, err := s.Resolve(context.Background(), &identity.Conn{Remote: netip.MustParseAddrPort(tc.addr)})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
	if _, err := s.Resolve(context.Background(), nil); err == nil {
		t.Error("nil conn resolved")
	}
}

// An app in dry-run does not get an unresolved indirect id forwarded when
// deny rules exist: they cannot be checked without the model behind it.
func TestDryRunUnresolvedWithDenyRules(t *testing.T) {
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
deny: [{models: ["anthropic.*"]}]
apps:
  - name: a
    mode: dry-run
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg.Policy())
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Tags: map[string]identity.Tag{"app": {Value: "a"}}}
	d := p.Decide(id, Call{Op: "Converse", Model: policyModel(t, "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdefghijkl")})
	if d.Allow || d.DryRun {
		t.Fatalf("unresolved indirect id under per-app dry-run with deny rules: %+v", d)
	}
}

// Deny rules on regions judge a bare model id by the region Warden forwards
// to, wherever that came from.
func TestDenyRegionUsesEffectiveRegion(t *testing.T) {
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
identity: {sources: [static], static: {app: a}}
deny: [{regions: ["us-*"]}]
apps:
  - name: a
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg.Policy())
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Tags: map[string]identity.Tag{"app": {Value: "a"}}}
	call := Call{Op: "Converse", Model: policyModel(t, "anthropic.claude-3-haiku-20240307-v1:0")}
	if d := p.WithRegion("us-east-1").Decide(id, call); d.Allow {
		t.Fatalf("deny rule on us-* ignored for region us-east-1: %+v", d)
	}
	if d := p.WithRegion("eu-west-1").Decide(id, call); !d.Allow {
		t.Fatalf("eu-west-1 call denied: %+v", d)
	}
}

func TestRefuseStaleIdentity(t *testing.T) {
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
  - name: strict
    refuse_stale_identity: true
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
  - name: lenient
    allow_weak_identity: true
    match: {tags: {app: b}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg.Policy())
	if err != nil {
		t.Fatal(err)
	}
	call := Call{Op: "Converse", Model: policyModel(t, "amazon.nova-lite-v1:0")}
	for _, tc := range []struct {
		app   string
		stale bool
		allow bool
	}{{"a", false, true}, {"a", true, false}, {"b", true, true}} {
		id := identity.Identity{Tags: map[string]identity.Tag{"app": {Value: tc.app}}, Stale: tc.stale}
		d := p.Decide(id, call)
		if d.Allow != tc.allow {
			t.Errorf("app tag %s stale %v: %+v", tc.app, tc.stale, d)
		}
		if !d.Allow && !strings.Contains(d.Reason, "served from cache") {
			t.Errorf("reason %q", d.Reason)
		}
	}
}

// A prompt without a version runs its mutable DRAFT: denied unless the app
// lists it in allow.unpinned_models, before any resolution; a numbered
// version is unaffected (issue 13 §3).
func TestDecideUnpinnedPrompts(t *testing.T) {
	const (
		acct    = "arn:aws:bedrock:us-east-1:123456789012:"
		draft   = acct + "prompt/PROMPT1234"
		listed  = acct + "prompt/TEAMPROMPT"
		version = acct + "prompt/PROMPT1234:7"
	)
	p := mustPolicy(t, `
  - name: strict
    match: {tags: {k8s.namespace: strict}}
    allow: {models: ["anthropic.*"], operations: [Converse]}
  - name: lenient
    match: {tags: {k8s.namespace: lenient}}
    allow:
      models: ["anthropic.*"]
      operations: [Converse]
      unpinned_models: ["`+acct+`prompt/TEAM*"]
`)
	strict, lenient := tags("k8s.namespace=strict!"), tags("k8s.namespace=lenient!")
	pin := []string{"pin a version", "CreatePromptVersion", draft + ":1", "allow.unpinned_models"}
	runDecideCases(t, p, []decideCase{
		{name: "draft refused unresolved", id: strict, model: draft, app: "strict", rule: "apps[0].allow.unpinned_models", mention: pin},
		{name: "draft refused even if resolved", id: strict, model: draft, foundations: []string{pHaiku}, app: "strict", rule: "allow.unpinned_models", mention: pin},
		{name: "version resolved", id: strict, model: version, foundations: []string{pHaiku}, allow: true, app: "strict"},
		{name: "version unresolved", id: strict, model: version, app: "strict", rule: "model-resolution"},
		{name: "listed draft resolved", id: lenient, model: listed, foundations: []string{pHaiku}, allow: true, app: "lenient"},
		{name: "listed draft resolved to a denied model", id: lenient, model: listed, foundations: []string{pNovaLite}, app: "lenient", rule: "allow.models", mention: []string{pNovaLite}},
		{name: "listed draft unresolved", id: lenient, model: listed, app: "lenient", rule: "model-resolution"},
		{name: "unlisted draft in the lenient app", id: lenient, model: draft, app: "lenient", rule: "apps[1].allow.unpinned_models"},
		{name: "app profile unaffected", id: strict, model: pAppProfile, foundations: []string{pHaiku}, allow: true, app: "strict"},
	})

	// Resolves: the proxy asks the control plane only for what may pass.
	for _, tc := range []struct {
		name  string
		id    identity.Identity
		model string
		want  bool
	}{
		{"refused draft", strict, draft, false},
		{"version", strict, version, true},
		{"listed draft", lenient, listed, true},
		{"unlisted draft", lenient, draft, false},
		{"profile", strict, pAppProfile, true},
		{"no app", tags("k8s.namespace=nobody!"), version, false},
	} {
		if got := p.Resolves(tc.id, policyModel(t, tc.model)); got != tc.want {
			t.Errorf("Resolves(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Why a model could not be resolved ends the denial that comes of it, and
// nothing else: the policy writes the whole reason.
func TestDecideResolveReason(t *testing.T) {
	p := mustPolicy(t, policyAll)
	pay := tags("k8s.namespace=payments!", "k8s.serviceaccount=api!")
	unresolved := Call{Op: bedrock.OpConverse, Model: policyModel(t, pAppProfile), ResolveReason: "not found"}
	d := p.Decide(pay, unresolved)
	if d.Allow || d.Rule != "model-resolution" || !strings.HasSuffix(d.Reason, " could not be resolved to the foundation model(s) behind it: not found") {
		t.Errorf("unresolved: %+v", d)
	}
	resolved := unresolved
	resolved.Foundations, resolved.Resolved = []string{"anthropic.claude-3-opus-20240229-v1:0"}, true
	if d := p.Decide(pay, resolved); strings.Contains(d.Reason, "not found") {
		t.Errorf("a denial by another rule carries the resolver's reason: %+v", d)
	}
}
