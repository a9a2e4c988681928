package policy

import (
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

func mustPolicyFromConfig(t testing.TB, yaml string) *Policy {
	t.Helper()
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
` + yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg.Policy())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const pOpusDeny = pOpus

// The apps allow everything; deny rules take some of it back.
const denyPolicy = `
deny:
  - name: no-opus
    models: ["anthropic.claude-3-opus-*"]
  - name: quarantine
    match: {tags: {k8s.namespace: quarantine}}
  - name: no-async-for-search
    match: {tags: {k8s.namespace: search}}
    operations: [StartAsyncInvoke, GetAsyncInvoke, ListAsyncInvokes]
  - name: no-eu
    regions: ["eu-*"]
    operations: [Converse]
apps:
  - name: search
    mode: dry-run
    match: {tags: {k8s.namespace: search}}
    allow:
      models: ["*"]
      operations: ["*"]
      profile_scopes: [us, eu, global]
      async_output_prefixes: ["s3://out/search/"]
  - name: everyone
    match: {exists: [k8s.namespace]}
    allow: {models: ["*"], operations: ["*"], profile_scopes: [us, eu, global], async_output_prefixes: ["s3://out/"]}
    limits: {max_body_bytes: 1000}
`

func TestDecideDenyRules(t *testing.T) {
	p := mustPolicyFromConfig(t, denyPolicy)
	other := tags("k8s.namespace=billing!")
	search := tags("k8s.namespace=search!")
	appProfile := "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	runDecideCases(t, p, []decideCase{
		{name: "allowed", id: other, model: pHaiku, allow: true, app: "everyone"},
		{name: "denied model", id: other, model: pOpusDeny, app: "everyone", rule: "deny[0]", mention: []string{"no-opus", "overrides any allow"}},
		{name: "denied model through a system profile", id: other, model: "us." + pOpusDeny, app: "everyone", rule: "deny[0]"},
		{name: "denied model behind an application profile", id: other, model: appProfile,
			foundations: []string{pOpusDeny}, regions: []string{"us-east-1"}, app: "everyone", rule: "deny[0]"},
		{name: "application profile to an allowed model", id: other, model: appProfile,
			foundations: []string{pHaiku}, regions: []string{"us-east-1"}, allow: true, app: "everyone"},
		{name: "quarantined workload, strong tag", id: tags("k8s.namespace=quarantine!"), model: pHaiku, app: "everyone", rule: "deny[1]"},
		{name: "quarantined workload, weak tag still denied", id: tags("k8s.namespace=quarantine"), model: pHaiku, rule: "deny[1]"},
		{name: "operation deny for one namespace", id: other, op: bedrock.OpListAsyncInvokes, allow: true, app: "everyone"},
		{name: "deny beats a dry-run app", id: search, op: bedrock.OpListAsyncInvokes, app: "search", rule: "deny[2]"},
		{name: "dry-run app still dry-run for its own denials", id: search, model: pHaiku, op: bedrock.OpInvokeModel, allow: true, app: "search", dryRun: true},
		{name: "eu profile denied by region", id: other, model: "eu." + pHaiku, app: "everyone", rule: "deny[3]"},
		{name: "global profile may reach eu", id: other, model: "global." + pHaiku, app: "everyone", rule: "deny[3]"},
		{name: "us profile not in eu", id: other, model: "us." + pHaiku, allow: true, app: "everyone"},
		{name: "region deny limited to its operation", id: other, model: "eu." + pHaiku, op: bedrock.OpInvokeModel, allow: true, app: "everyone"},
		{name: "eu model ARN", id: other, model: "arn:aws:bedrock:eu-west-1::foundation-model/" + pHaiku, app: "everyone", rule: "deny[3]"},
		{name: "bare id served in the upstream region", id: other, model: pHaiku, allow: true, app: "everyone"},
		{name: "no app: deny rule still names itself", id: tags("team=x"), model: pOpusDeny, rule: "deny[0]"},
	})
	if d := p.Decide(other, Call{Op: bedrock.OpConverse, Model: policyModel(t, pHaiku)}); d.MaxBodyBytes != 1000 {
		t.Errorf("app limit: %+v", d)
	}
	if d := p.Decide(search, Call{Op: bedrock.OpConverse, Model: policyModel(t, pHaiku)}); d.MaxBodyBytes != 0 {
		t.Errorf("no app limit: %+v", d)
	}
}

func TestDecideUpstreamRegionDeny(t *testing.T) {
	p := mustPolicyFromConfig(t, `
deny: [{regions: [us-east-1]}]
apps:
  - name: all
    match: {exists: [k8s.namespace]}
    allow: {models: ["*"], operations: ["*"], profile_scopes: [us]}
`)
	runDecideCases(t, p, []decideCase{
		{name: "bare id in the upstream region", id: tags("k8s.namespace=a!"), model: pHaiku, app: "all", rule: "deny[0]"},
		{name: "us profile may route there", id: tags("k8s.namespace=a!"), model: "us." + pHaiku, app: "all", rule: "deny[0]"},
		{name: "ARN in another region", id: tags("k8s.namespace=a!"), model: "arn:aws:bedrock:us-west-2::foundation-model/" + pHaiku, allow: true, app: "all"},
	})
}

func TestDecideGlobalDryRun(t *testing.T) {
	p := mustPolicyFromConfig(t, `
mode: dry-run
deny: [{models: ["anthropic.claude-3-opus-*"]}]
apps:
  - name: enforce-app
    match: {tags: {k8s.namespace: a}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
`)
	runDecideCases(t, p, []decideCase{
		{name: "allowed", id: tags("k8s.namespace=a!"), model: pHaiku, allow: true, app: "enforce-app", dryRun: true},
		{name: "app denial forwarded", id: tags("k8s.namespace=a!"), model: pNovaLite, app: "enforce-app", dryRun: true, rule: "allow.models"},
		{name: "deny rule forwarded", id: tags("k8s.namespace=a!"), model: pOpusDeny, app: "enforce-app", dryRun: true, rule: "deny[0]"},
		{name: "no app forwarded", id: tags("k8s.namespace=b!"), model: pHaiku, dryRun: true, rule: "default-deny"},
	})
	// Warden cannot inspect the bidirectional stream: never forwarded.
	if d := p.Decide(tags("k8s.namespace=a!"), Call{Op: bedrock.OpInvokeModelWithBidirectionalStream, Model: policyModel(t, pHaiku)}); d.DryRun || d.Allow {
		t.Errorf("bidirectional stream in global dry-run: %+v", d)
	}
}

func TestPolicyGlobalsValidation(t *testing.T) {
	head := "version: 1\nlisten: {endpoint: 127.0.0.1:8480}\nlimits: {max_body_bytes: 5000}\n"
	app := "apps:\n  - name: a\n    match: {tags: {k8s.namespace: n}}\n"
	cases := []struct {
		name, yaml string
		want       []string // nil = valid
	}{
		{"valid", "mode: dry-run\ndeny:\n  - {name: x, models: [\"a.*\"], operations: [Converse, \"*\"], regions: [eu-*]}\n" + app, nil},
		{"bad mode", "mode: audit\n" + app, []string{"mode", "audit"}},
		{"empty deny", "deny:\n  - name: all\n" + app, []string{"line 5", "deny[0] (all)", "at least one"}},
		{"deny unknown operation", "deny:\n  - {operations: [Chat]}\n" + app, []string{"deny[0]", "unknown operation \"Chat\""}},
		{"deny bad region", "deny:\n  - {regions: [\"eu west\"]}\n" + app, []string{"deny[0]", "\"eu west\""}},
		{"deny bad glob", "deny:\n  - {models: [\"[x]\"]}\n" + app, []string{"deny[0]", "models"}},
		{"deny bad selector", "deny:\n  - {match: {in: {k8s.namespace: []}}}\n" + app, []string{"deny[0]", "match.in.k8s.namespace"}},
		{"deny weak selector is fine", "deny:\n  - {match: {tags: {k8s.label.team: x}}}\n" + app, nil},
		{"deny unknown key", "deny:\n  - {model: [x]}\n" + app, []string{"model"}},
		{"app limit under global", app + "    limits: {max_body_bytes: 4000}\n", nil},
		{"app limit over global", app + "    limits: {max_body_bytes: 6000}\n", []string{"apps[0] (a)", "limits.max_body_bytes", "6000", "5000"}},
		{"app limit negative", app + "    limits: {max_body_bytes: -1}\n", []string{"apps[0] (a)", "positive"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePolicy([]byte(head + tc.yaml))
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
	// The app limit is checked against the default global limit too.
	if _, err := parsePolicy([]byte("version: 1\nlisten: {endpoint: 127.0.0.1:8480}\n" + app + "    limits: {max_body_bytes: 30000000}\n")); err == nil ||
		!strings.Contains(err.Error(), "25000000") {
		t.Errorf("over the default global limit: %v", err)
	}
}

func TestGlobalWarnings(t *testing.T) {
	cfg, err := parsePolicy([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
mode: dry-run
deny:
  - {match: {tags: {k8s.label.team: x}}}
  - {match: {tags: {k8s.namespace: x, k8s.label.team: y}}}
  - {models: ["*opus*"]}
apps:
  - name: a
    match: {tags: {k8s.namespace: n}}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(warnings(cfg), "\n")
	for _, want := range []string{"mode: dry-run", "deny[0]: selects only on weak tags (k8s.label.team)"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
	if strings.Contains(w, "deny[1]") || strings.Contains(w, "deny[2]") {
		t.Errorf("warnings %q name a rule with a strong selector or none", w)
	}
}

// BenchmarkDecideWithDenyRules: an allowed call checked against four deny rules.
func BenchmarkDecideWithDenyRules(b *testing.B) {
	p := mustPolicyFromConfig(b, denyPolicy)
	id := tags("k8s.namespace=billing!")
	c := Call{Op: bedrock.OpConverse, Model: policyModel(b, pHaiku)}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide(id, c)
	}
}
