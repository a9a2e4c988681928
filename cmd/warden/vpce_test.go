package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/authz"
)

const (
	segmentedPolicy = "testdata/vpce/segmented.yaml"
	wardenRole      = "arn:aws:iam::444455556666:role/warden"
)

// The output of `warden policy vpce-policy` is compared with
// testdata/vpce/*.golden; run `go test ./cmd/warden -run TestVPCEPolicyGolden -update`
// after an intended change and review the diff.
func TestVPCEPolicyGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		// Explicit globs, a system-profile glob, profile scopes, an
		// application-profile ARN and an app allowed StartAsyncInvoke.
		{"segmented", []string{"--config", segmentedPolicy, "--principal", wardenRole}},
		// Two principals of the same account, one VPC endpoint required.
		{"segmented_vpce", []string{"--config", segmentedPolicy, "--principal", wardenRole,
			"--principal", "arn:aws:iam::444455556666:role/warden-shared", "--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
		// A wildcard principal (per-app roles) moves the principal into an
		// ArnLike condition; --indirect adds the account's indirect ids.
		{"segmented_wildcard_principal", []string{"--config", segmentedPolicy, "--principal", wardenRole,
			"--principal", "arn:aws:iam::444455556666:role/warden-app-*", "--indirect", "--region", "eu-central-1"}},
		// batch-jobs allows models "*": the resource can only be "*".
		{"star_glob", []string{"--config", policyFile, "--principal", "arn:aws:iam::123456789012:role/warden"}},
		{"only_vpce", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "vpce"}},
		{"only_deny", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "deny", "--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append([]string{"policy", "vpce-policy"}, tc.args...), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			checkVPCEOutput(t, tc.args, out.Bytes())
			golden := filepath.Join("testdata", "vpce", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
			}
			// Stable: a second run prints the same bytes.
			var again bytes.Buffer
			run(context.Background(), append([]string{"policy", "vpce-policy"}, tc.args...), &again, &errOut)
			if !bytes.Equal(out.Bytes(), again.Bytes()) {
				t.Error("output is not stable between runs")
			}
		})
	}
}

// checkVPCEOutput validates the structure of the emitted policies, whichever
// of them the arguments asked for.
func checkVPCEOutput(t *testing.T, args []string, out []byte) {
	t.Helper()
	only := ""
	if i := slices.Index(args, "--only"); i >= 0 {
		only = args[i+1]
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, out)
	}
	var vpce, deny json.RawMessage
	switch only {
	case "vpce":
		vpce = out
	case "deny":
		deny = out
	default:
		if len(doc) != 3 || doc["vpc_endpoint_policy"] == nil || doc["deny_policy"] == nil || doc["vpc_endpoint_service"] == nil {
			t.Fatalf("want keys vpc_endpoint_service, vpc_endpoint_policy and deny_policy, got %s", out)
		}
		var svc string
		if err := json.Unmarshal(doc["vpc_endpoint_service"], &svc); err != nil || !strings.HasPrefix(svc, "com.amazonaws.") || !strings.HasSuffix(svc, ".bedrock-runtime") {
			t.Errorf("vpc_endpoint_service = %s", doc["vpc_endpoint_service"])
		}
		vpce, deny = doc["vpc_endpoint_policy"], doc["deny_policy"]
	}
	if vpce != nil {
		stmts := checkIAMPolicy(t, "vpc_endpoint_policy", vpce)
		for _, s := range stmts {
			if s.Effect != "Allow" {
				t.Errorf("endpoint policy statement %s: Effect %s, want Allow", s.Sid, s.Effect)
			}
			if s.Principal == nil {
				t.Errorf("endpoint policy statement %s has no Principal", s.Sid)
			}
			for _, a := range s.Action {
				if a == actCallWithBearer || a == actCreateInvocaction || a == "bedrock:*" || a == "*" {
					t.Errorf("endpoint policy statement %s allows %s", s.Sid, a)
				}
			}
			// A Principal "*" must be narrowed by an aws:PrincipalArn condition.
			if p, ok := s.Principal.(string); ok && (p != "*" || s.Condition["ArnLike"]["aws:PrincipalArn"] == nil) {
				t.Errorf("endpoint policy statement %s: Principal %q without an ArnLike aws:PrincipalArn condition", s.Sid, p)
			}
		}
	}
	if deny != nil {
		stmts := checkIAMPolicy(t, "deny_policy", deny)
		first := stmts[0]
		if first.Effect != "Deny" || first.Principal != nil || !slices.Equal(first.Resource, []string{"*"}) {
			t.Errorf("deny statement %+v: want Effect Deny, no Principal, Resource *", first)
		}
		for _, a := range []string{actInvokeModel, actInvokeStream, actCountTokens, actApplyGuardrail, actCallWithBearer, actCreateInvocaction, actStartAsyncInvoke} {
			if !slices.Contains(first.Action, a) {
				t.Errorf("deny statement does not deny %s", a)
			}
		}
		if len(first.Condition["ArnNotLike"]["aws:PrincipalArn"].([]any)) == 0 {
			t.Errorf("deny statement has no ArnNotLike aws:PrincipalArn condition: %+v", first.Condition)
		}
		for _, s := range stmts {
			if s.Effect != "Deny" {
				t.Errorf("deny policy statement %s: Effect %s", s.Sid, s.Effect)
			}
		}
	}
}

type testStatement struct {
	Sid       string
	Effect    string
	Principal any
	Action    []string
	Resource  []string
	Condition map[string]map[string]any
}

// checkIAMPolicy checks the IAM grammar the policies use: Version
// 2012-10-17, a non-empty Statement array, unique Sids, Effect Allow|Deny,
// Action and Resource arrays of bedrock actions and ARNs (or "*"), Principal
// "*" or {"AWS": [ARN…]}, Condition operator → key → string list.
func checkIAMPolicy(t *testing.T, name string, raw json.RawMessage) []testStatement {
	t.Helper()
	var p struct {
		Version   string
		Statement []json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("%s: Version %q", name, p.Version)
	}
	if len(p.Statement) == 0 {
		t.Fatalf("%s: no Statement", name)
	}
	sids := map[string]bool{}
	var out []testStatement
	for i, rs := range p.Statement {
		var s testStatement
		d := json.NewDecoder(bytes.NewReader(rs))
		d.DisallowUnknownFields()
		if err := d.Decode(&s); err != nil {
			t.Fatalf("%s: Statement[%d]: %v", name, i, err)
		}
		where := name + ": " + s.Sid
		if s.Sid == "" || sids[s.Sid] {
			t.Errorf("%s: Statement[%d]: empty or duplicate Sid %q", name, i, s.Sid)
		}
		sids[s.Sid] = true
		if s.Effect != "Allow" && s.Effect != "Deny" {
			t.Errorf("%s: Effect %q", where, s.Effect)
		}
		if len(s.Action) == 0 || len(s.Resource) == 0 {
			t.Errorf("%s: empty Action or Resource", where)
		}
		for _, a := range s.Action {
			if !strings.HasPrefix(a, "bedrock:") || strings.ContainsAny(a, "*?") {
				t.Errorf("%s: Action %q is not one bedrock action", where, a)
			}
		}
		for _, r := range s.Resource {
			if r != "*" && !strings.HasPrefix(r, "arn:aws:bedrock:") {
				t.Errorf("%s: Resource %q is not a bedrock ARN", where, r)
			}
			if r == "*" && len(s.Resource) != 1 {
				t.Errorf("%s: Resource lists * beside other ARNs", where)
			}
		}
		switch pr := s.Principal.(type) {
		case nil, string:
		case map[string]any:
			arns, ok := pr["AWS"].([]any)
			if len(pr) != 1 || !ok || len(arns) == 0 {
				t.Errorf("%s: Principal %v", where, pr)
			}
			for _, a := range arns {
				if as, _ := a.(string); !strings.HasPrefix(as, "arn:aws:iam::") || strings.ContainsAny(as, "*?") {
					t.Errorf("%s: Principal ARN %v", where, a)
				}
			}
		default:
			t.Errorf("%s: Principal %v", where, pr)
		}
		for op, keys := range s.Condition {
			switch op {
			case "ArnLike", "ArnNotLike", "StringEquals", "StringNotEquals":
			default:
				t.Errorf("%s: condition operator %s", where, op)
			}
			for k, v := range keys {
				vs, ok := v.([]any)
				if !strings.HasPrefix(k, "aws:") || !ok || len(vs) == 0 {
					t.Errorf("%s: condition %s %s = %v", where, op, k, v)
				}
			}
		}
		if i == 0 && !slices.IsSorted(s.Resource) {
			t.Errorf("%s: Resource is not sorted", where)
		}
		out = append(out, s)
	}
	return out
}

func TestVPCEPolicyResources(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "vpce-policy", "--config", segmentedPolicy, "--principal", wardenRole, "--only", "vpce"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var p iamPolicy
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	models := p.Statement[0].Resource
	for _, want := range []string{
		"arn:aws:bedrock:*::foundation-model/anthropic.claude-3-5-haiku-*",
		"arn:aws:bedrock:*:444455556666:inference-profile/eu.anthropic.claude-3-5-haiku-*", // profile_scopes: [eu]
		"arn:aws:bedrock:*:444455556666:inference-profile/us.meta.llama3-*",
		"arn:aws:bedrock:*::foundation-model/meta.llama3-*", // the profile's base model
		"arn:aws:bedrock:eu-west-1:444455556666:application-inference-profile/abc123def456",
	} {
		if !slices.Contains(models, want) {
			t.Errorf("resources lack %s: %v", want, models)
		}
	}
	for _, r := range models {
		if r == "*" || strings.Contains(r, "us.anthropic") || strings.Contains(r, "inference-profile/us.amazon") {
			t.Errorf("unexpected resource %s", r)
		}
	}
	if !slices.Contains(p.Statement[0].Action, actStartAsyncInvoke) {
		t.Error("reports allows StartAsyncInvoke, the endpoint policy does not")
	}

	// Without an app allowed to start async invocations, no async action.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "w.yaml")
	os.WriteFile(cfg, []byte("version: 1\nlisten: {endpoint: 127.0.0.1:8480}\nupstream: {region: us-east-1}\nidentity: {sources: [static], static: {app: x}}\napps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: x}}\n    allow: {models: [\"amazon.nova-*\"], operations: [\"*\"]}\n"), 0o600)
	out.Reset()
	if code := run(context.Background(), []string{"policy", "vpce-policy", "--config", cfg, "--principal", wardenRole}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var both vpceOutput
	if err := json.Unmarshal(out.Bytes(), &both); err != nil {
		t.Fatal(err)
	}
	for _, s := range both.VPCEndpointPolicy.Statement {
		for _, a := range s.Action {
			if strings.Contains(a, "AsyncInvoke") {
				t.Errorf("%s allowed though no app may start async invocations (no async_output_prefixes)", a)
			}
		}
	}
	if !slices.Contains(both.DenyPolicy.Statement[0].Action, actStartAsyncInvoke) {
		t.Error("the deny policy must deny StartAsyncInvoke to others anyway")
	}
}

func TestVPCEModelResources(t *testing.T) {
	opts := vpceOptions{account: "444455556666"}
	ip := "arn:aws:bedrock:*:444455556666:inference-profile/"
	fm := "arn:aws:bedrock:*::foundation-model/"
	for _, tc := range []struct {
		globs, scopes []string
		want          []string
	}{
		{[]string{"amazon.nova-lite-v1:0"}, nil, []string{fm + "amazon.nova-lite-v1:0"}},
		{[]string{"amazon.nova-*"}, []string{"us", "eu"}, []string{ip + "eu.amazon.nova-*", ip + "us.amazon.nova-*", fm + "amazon.nova-*"}},
		{[]string{"global.anthropic.*"}, nil, []string{ip + "global.anthropic.*", fm + "anthropic.*"}},
		{[]string{"u*"}, nil, []string{ip + "u*", fm + "*", fm + "u*"}},
		{[]string{"anthropic.*", "meta.*"}, nil, []string{fm + "anthropic.*", fm + "meta.*"}},
		{[]string{"amazon.nova-*", "*haiku*"}, nil, []string{"*"}},
		{[]string{"arn:aws:bedrock:us-east-1:444455556666:imported-model/*"}, nil, []string{"arn:aws:bedrock:us-east-1:444455556666:imported-model/*"}},
	} {
		apps := []authz.AppConfig{{Allow: authz.AllowConfig{Models: tc.globs, ProfileScopes: tc.scopes}}}
		if got := modelResources(apps, opts); !slices.Equal(got, tc.want) {
			t.Errorf("%v scopes %v:\n got %q\nwant %q", tc.globs, tc.scopes, got, tc.want)
		}
	}
}

func TestVPCEPolicyUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", segmentedPolicy}, "--principal is required"},
		{[]string{"--config", segmentedPolicy, "--principal", "warden"}, "IAM principal ARN"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "both"}, "--only"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--source-vpce", "vpc-1"}, "VPC endpoint id"},
		{[]string{"--principal", wardenRole}, "--config is required"},
		{[]string{"--config", "testdata/policy/invalid.yaml", "--principal", wardenRole}, "invalid.yaml"},
	} {
		var out bytes.Buffer
		code := run(context.Background(), append([]string{"policy", "vpce-policy"}, tc.args...), &out, &out)
		if code == 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want an error containing %q:\n%s", tc.args, code, tc.want, out.String())
		}
	}
}
