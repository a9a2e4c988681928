package main

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/authz/policy"

	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

const (
	segmentedPolicy = "testdata/vpce/segmented.yaml"
	wardenRole      = "arn:aws:iam::444455556666:role/warden/warden"
	adminRole       = "arn:aws:iam::444455556666:role/platform-pipeline"
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
		{"segmented", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole}},
		// Two principals of the same account, one VPC endpoint required.
		{"segmented_vpce", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole,
			"--principal", "arn:aws:iam::444455556666:role/warden/shared", "--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
		// A wildcard principal (per-app roles under Warden's path) moves the
		// principal into an ArnLike condition; --indirect adds the account's
		// indirect ids.
		{"segmented_wildcard_principal", []string{"--config", segmentedPolicy, "--principal", wardenRole,
			"--principal", "arn:aws:iam::444455556666:role/warden/app-*", "--admin-principal", adminRole, "--indirect", "--region", "eu-central-1"}},
		// batch-jobs allows models "*": the resource can only be "*".
		{"star_glob", []string{"--config", policyFile, "--principal", "arn:aws:iam::123456789012:role/warden",
			"--admin-principal", "arn:aws:iam::123456789012:role/platform/deployer"}},
		// The OpenAI-compatible routes (InvokeModel on the body's model),
		// bedrock-mantle (its own prefix, in the role and the deny policy)
		// and Anthropic's Bedrock-only sessions.
		{"compat", []string{"--config", "testdata/vpce/compat.yaml", "--principal", wardenRole, "--admin-principal", adminRole,
			"--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
		{"only_vpce", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "vpce"}},
		{"only_deny", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole, "--only", "deny", "--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
		{"only_role", []string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "role", "--source-vpce", "vpce-0a1b2c3d4e5f60718"}},
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

// deployIAMArgs is how deploy/iam/*.json are generated; deploy/README.md
// shows the same command.
var deployIAMArgs = []string{"policy", "vpce-policy", "--config", "../../deploy/examples/warden.yaml",
	"--principal", "arn:aws:iam::111122223333:role/warden/*",
	"--admin-principal", "arn:aws:iam::111122223333:role/platform-pipeline",
	"--source-vpce", "vpce-0123456789abcdef0"}

// deployCentralIAMArgs is how deploy/iam/central-*.json are generated.
var deployCentralIAMArgs = []string{"policy", "identity-roles", "--config", "../../deploy/examples/warden-central.yaml",
	"--principal", "arn:aws:iam::111122223333:role/warden/warden-central"}

// TestDeployIAMPoliciesGenerated keeps the committed example policies equal
// to what `warden policy vpce-policy` prints for the example config, so they
// cannot lag the generator again; -update rewrites them.
func TestDeployIAMPoliciesGenerated(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
	}{
		{"vpce-policy.json", append(slices.Clone(deployIAMArgs), "--only", "vpce")},
		{"deny-direct-bedrock-scp.json", append(slices.Clone(deployIAMArgs), "--only", "deny")},
		{"warden-role-policy.json", append(slices.Clone(deployIAMArgs), "--only", "role")},
		{"central-warden-identity-policy.json", append(slices.Clone(deployCentralIAMArgs), "--only", "hub")},
		{"central-spoke-trust-policy.json", append(slices.Clone(deployCentralIAMArgs), "--only", "spoke-trust")},
		{"central-spoke-role-policy.json", append(slices.Clone(deployCentralIAMArgs), "--only", "spoke-role")},
	} {
		t.Run(tc.file, func(t *testing.T) {
			args := tc.args
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if args[1] == "vpce-policy" {
				checkVPCEOutput(t, args, out.Bytes())
			}
			path := filepath.Join("..", "..", "deploy", "iam", tc.file)
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s is not what `warden %s` prints (run go test ./cmd/warden -run TestDeployIAMPoliciesGenerated -update):\n--- got\n%s\n--- committed\n%s",
					path, strings.Join(args, " "), out.String(), want)
			}
		})
	}
	// Nothing else in deploy/iam: a hand-written policy there would drift.
	files, err := filepath.Glob("../../deploy/iam/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 6 {
		t.Errorf("deploy/iam holds %v; every file there must be generated by this test", files)
	}
}

// sdkOperations lists a client's operations: its exported methods shaped
// (ctx, *<Op>Input, ...func(*Options)) (*<Op>Output, error).
func sdkOperations(t *testing.T, client any) []string {
	t.Helper()
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	errType := reflect.TypeOf((*error)(nil)).Elem()
	typ := reflect.TypeOf(client)
	var ops []string
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		f := m.Type // the receiver is In(0)
		if f.NumIn() != 4 || !f.IsVariadic() || f.In(1) != ctxType || f.NumOut() != 2 || f.Out(1) != errType {
			continue
		}
		in, out := f.In(2), f.Out(0)
		if in.Kind() != reflect.Pointer || in.Elem().Name() != m.Name+"Input" || out.Kind() != reflect.Pointer || out.Elem().Name() != m.Name+"Output" {
			continue
		}
		ops = append(ops, m.Name)
	}
	return ops
}

// TestDenyPolicyCoversSDKOperations derives the data-plane operations from
// the SDK clients themselves: every operation of bedrockruntime and
// bedrockagentruntime must have a row in opActions (a new SDK operation
// fails here until someone decides its IAM action), and every action of the
// table, Mantle's documented ones included, must be denied to non-Warden
// principals by the generated policy.
func TestDenyPolicyCoversSDKOperations(t *testing.T) {
	table := map[string]map[string]opAction{}
	for _, o := range opActions() {
		if table[o.api] == nil {
			table[o.api] = map[string]opAction{}
		}
		if _, dup := table[o.api][o.op]; dup {
			t.Errorf("opActions: %s %s listed twice", o.api, o.op)
		}
		table[o.api][o.op] = o
		if len(o.actions) == 0 && o.why == "" {
			t.Errorf("opActions: %s %s has neither actions nor a reason", o.api, o.op)
		}
		for _, a := range o.actions {
			// One pattern only, for Claude Managed Agents' preview actions.
			if !regexp.MustCompile(`^(bedrock|bedrock-mantle):[A-Z][A-Za-z]+$`).MatchString(a) && a != actClaudeManagedAgents {
				t.Errorf("opActions: %s %s: action %q", o.api, o.op, a)
			}
		}
	}
	for _, c := range []struct {
		api    string
		client any
		min    int
	}{
		{apiRuntime, &bedrockruntime.Client{}, 11},
		{apiAgentRuntime, &bedrockagentruntime.Client{}, 25},
	} {
		ops := sdkOperations(t, c.client)
		if len(ops) < c.min {
			t.Fatalf("%s: found %d operations by reflection (%v), want at least %d", c.api, len(ops), ops, c.min)
		}
		for _, op := range ops {
			if _, ok := table[c.api][op]; !ok {
				t.Errorf("%s.%s has no row in opActions: look up its IAM action in the Service Authorization Reference and add it", c.api, op)
			}
		}
	}
	// The named actions, so a table edit cannot drop them silently.
	for _, a := range []string{
		actMantleInference, actMantleBearer, actCallWithBearer, actCreateInvocaction, actInvokeModel, actInvokeStream,
		"bedrock:InvokeAgent", "bedrock:InvokeInlineAgent", "bedrock:Retrieve", "bedrock:RetrieveAndGenerate",
		"bedrock:InvokeFlow", "bedrock:Rerank", "bedrock:GenerateQuery", "bedrock:OptimizePrompt", actClaudeManagedAgents,
	} {
		if !slices.Contains(dataPlaneActions(), a) {
			t.Errorf("dataPlaneActions lacks %s", a)
		}
	}

	for _, args := range [][]string{
		{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole, "--only", "deny"},
		append(slices.Clone(deployIAMArgs[2:]), "--only", "deny"),
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"policy", "vpce-policy"}, args...), &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var p iamPolicy
		if err := json.Unmarshal(out.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		denied := map[string]bool{}
		for _, s := range p.Statement {
			// Only statements that deny everyone but Warden count.
			if s.Effect == "Deny" && slices.Equal(s.Resource, []string{"*"}) && s.Condition["ArnNotLike"]["aws:PrincipalArn"] != nil && len(s.Condition) == 1 {
				for _, a := range s.Action {
					denied[a] = true
				}
			}
		}
		for _, o := range opActions() {
			for _, a := range o.actions {
				if !denied[a] {
					t.Errorf("%v: %s (%s %s) is not denied to non-Warden principals", args, a, o.api, o.op)
				}
			}
		}
	}
}

// arnLike is IAM's ArnLike on one pattern: * and ? match any run of
// characters / any one character, "/" included.
func arnLike(pattern, arn string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(arn)
}

// TestDenyPolicyGuardsWardenRoles: the exemption names roles, so whoever can
// create a role that matches it, or let themselves assume one, could call
// Bedrock directly. Every role the exemption matches must be covered by the
// guard statement, which only the admin principals escape.
func TestDenyPolicyGuardsWardenRoles(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append(slices.Clone(deployIAMArgs), "--only", "deny"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var p iamPolicy
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	var exempt []string
	var guard *iamStatement
	for i, s := range p.Statement {
		if s.Sid == "DenyBedrockDataPlaneExceptWarden" {
			for _, v := range s.Condition["ArnNotLike"]["aws:PrincipalArn"].([]any) {
				exempt = append(exempt, v.(string))
			}
		}
		if slices.Contains(s.Action, "iam:CreateRole") {
			guard = &p.Statement[i]
		}
	}
	if guard == nil {
		t.Fatalf("no statement denies iam:CreateRole:\n%s", out.String())
	}
	for _, a := range []string{"iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PassRole"} {
		if !slices.Contains(guard.Action, a) {
			t.Errorf("guard statement does not deny %s", a)
		}
	}
	if guard.Effect != "Deny" || len(guard.Condition) != 1 {
		t.Errorf("guard statement: %+v", guard)
	}
	admins, _ := guard.Condition["ArnNotLike"]["aws:PrincipalArn"].([]any)
	if len(admins) != 1 || admins[0] != "arn:aws:iam::111122223333:role/platform-pipeline" {
		t.Errorf("guard exempts %v, want only the platform pipeline", admins)
	}
	// Roles an app team would create to claim the exemption.
	for _, claim := range []string{
		"arn:aws:iam::111122223333:role/warden/warden",
		"arn:aws:iam::111122223333:role/warden/app-mine",
		"arn:aws:iam::111122223333:role/warden/nested/path/x",
	} {
		matched := slices.ContainsFunc(exempt, func(e string) bool { return arnLike(e, claim) })
		guarded := slices.ContainsFunc(guard.Resource, func(r string) bool { return arnLike(r, claim) })
		if !matched || !guarded {
			t.Errorf("%s: exempt %v, guarded %v (every exempt role must be guarded)", claim, matched, guarded)
		}
	}
	for _, other := range []string{"arn:aws:iam::111122223333:role/warden-app-x", "arn:aws:iam::111122223333:role/app/warden", "arn:aws:iam::999999999999:role/warden/x"} {
		if slices.ContainsFunc(exempt, func(e string) bool { return arnLike(e, other) }) {
			t.Errorf("%s is exempt from the deny", other)
		}
	}
	// An SCP holds at most 5,120 characters; the minified document must fit.
	var compact bytes.Buffer
	if err := json.Compact(&compact, out.Bytes()); err != nil {
		t.Fatal(err)
	}
	if compact.Len() > 5120 {
		t.Errorf("the deny policy is %d characters minified; an SCP holds 5120", compact.Len())
	}
}

// TestWardenRolePolicy: Warden's own role may do what Warden does — invoke
// the allowed models, apply guardrails, resolve indirect ids through the
// control plane — and, with --source-vpce, its runtime calls only through
// that endpoint (the control plane is another endpoint).
func TestWardenRolePolicy(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append(slices.Clone(deployIAMArgs), "--only", "role"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var p iamPolicy
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" || s.Principal != nil {
			t.Errorf("%s: Effect %s Principal %v", s.Sid, s.Effect, s.Principal)
		}
		runtime := !slices.Contains(s.Action, "bedrock:GetInferenceProfile")
		vpce := s.Condition["StringEquals"]["aws:SourceVpce"]
		if runtime != (vpce != nil) {
			t.Errorf("%s: aws:SourceVpce condition %v (runtime calls: %v)", s.Sid, vpce, runtime)
		}
		for _, a := range s.Action {
			allowed[a] = true
		}
	}
	want := append([]string{actInvokeModel, actInvokeStream, actCountTokens, actApplyGuardrail, actStartAsyncInvoke, actGetAsyncInvoke, actListAsyncInvokes}, controlPlaneReads[:]...)
	for _, a := range want {
		if !allowed[a] {
			t.Errorf("Warden's role may not %s", a)
		}
	}
	for a := range allowed {
		if a == actCallWithBearer || a == actCreateInvocaction || strings.HasPrefix(a, "bedrock-mantle:") || strings.HasPrefix(a, "iam:") {
			t.Errorf("Warden's role may %s, which Warden never needs", a)
		}
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
	var vpce, deny, role json.RawMessage
	switch only {
	case "vpce":
		vpce = out
	case "deny":
		deny = out
	case "role":
		role = out
	default:
		if len(doc) != 4 || doc["vpc_endpoint_policy"] == nil || doc["deny_policy"] == nil || doc["vpc_endpoint_service"] == nil || doc["warden_role_policy"] == nil {
			t.Fatalf("want keys vpc_endpoint_service, vpc_endpoint_policy, deny_policy and warden_role_policy, got %s", out)
		}
		var svc string
		if err := json.Unmarshal(doc["vpc_endpoint_service"], &svc); err != nil || !strings.HasPrefix(svc, "com.amazonaws.") || !strings.HasSuffix(svc, ".bedrock-runtime") {
			t.Errorf("vpc_endpoint_service = %s", doc["vpc_endpoint_service"])
		}
		vpce, deny, role = doc["vpc_endpoint_policy"], doc["deny_policy"], doc["warden_role_policy"]
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
				if a == actCallWithBearer || a == actCreateInvocaction || !strings.HasPrefix(a, "bedrock:") {
					t.Errorf("endpoint policy statement %s allows %s", s.Sid, a)
				}
			}
			// A Principal "*" must be narrowed by an aws:PrincipalArn condition.
			if p, ok := s.Principal.(string); ok && (p != "*" || s.Condition["ArnLike"]["aws:PrincipalArn"] == nil) {
				t.Errorf("endpoint policy statement %s: Principal %q without an ArnLike aws:PrincipalArn condition", s.Sid, p)
			}
		}
	}
	if role != nil {
		for _, s := range checkIAMPolicy(t, "warden_role_policy", role) {
			if s.Effect != "Allow" || s.Principal != nil {
				t.Errorf("role policy statement %s: Effect %s, Principal %v", s.Sid, s.Effect, s.Principal)
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
// Action arrays of single bedrock, bedrock-mantle or iam actions, Resource
// arrays of bedrock or iam ARNs (or "*"), Principal "*" or {"AWS": [ARN…]},
// Condition operator → a real global key → string list.
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
	action := regexp.MustCompile(`^(bedrock|bedrock-mantle|iam):[A-Z][A-Za-z]+$`)
	sids := map[string]bool{}
	sidRE := regexp.MustCompile(`^[A-Za-z0-9]+$`)
	var out []testStatement
	for i, rs := range p.Statement {
		var s testStatement
		d := json.NewDecoder(bytes.NewReader(rs))
		d.DisallowUnknownFields()
		if err := d.Decode(&s); err != nil {
			t.Fatalf("%s: Statement[%d]: %v", name, i, err)
		}
		where := name + ": " + s.Sid
		if !sidRE.MatchString(s.Sid) || sids[s.Sid] {
			t.Errorf("%s: Statement[%d]: empty, non-alphanumeric or duplicate Sid %q", name, i, s.Sid)
		}
		sids[s.Sid] = true
		if s.Effect != "Allow" && s.Effect != "Deny" {
			t.Errorf("%s: Effect %q", where, s.Effect)
		}
		if len(s.Action) == 0 || len(s.Resource) == 0 {
			t.Errorf("%s: empty Action or Resource", where)
		}
		if !slices.IsSorted(s.Action) || len(slices.Compact(slices.Clone(s.Action))) != len(s.Action) {
			t.Errorf("%s: Action is not sorted and unique: %v", where, s.Action)
		}
		for _, a := range s.Action {
			if !action.MatchString(a) && a != actClaudeManagedAgents { // the one pattern (vpce.go)
				t.Errorf("%s: Action %q is not one bedrock, bedrock-mantle or iam action", where, a)
			}
		}
		for _, r := range s.Resource {
			if r != "*" && !strings.HasPrefix(r, "arn:aws:bedrock:") && !strings.HasPrefix(r, "arn:aws:iam::") {
				t.Errorf("%s: Resource %q is not a bedrock or iam ARN", where, r)
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
				if (k != "aws:PrincipalArn" && k != "aws:SourceVpce") || !ok || len(vs) == 0 {
					t.Errorf("%s: condition %s %s = %v", where, op, k, v)
				}
				if k == "aws:PrincipalArn" && !strings.HasPrefix(op, "Arn") || k == "aws:SourceVpce" && !strings.HasPrefix(op, "String") {
					t.Errorf("%s: condition key %s under %s", where, k, op)
				}
			}
		}
		if !slices.IsSorted(s.Resource) {
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
	if code := run(context.Background(), []string{"policy", "vpce-policy", "--config", cfg, "--principal", wardenRole, "--admin-principal", adminRole}, &out, &errOut); code != 0 {
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
		apps := []policy.AppConfig{{Allow: policy.AllowConfig{Models: tc.globs, ProfileScopes: tc.scopes}}}
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
		{[]string{"--config", segmentedPolicy, "--principal", "warden"}, "IAM role ARN"},
		// A user's access keys can be minted by anyone with iam:CreateAccessKey.
		{[]string{"--config", segmentedPolicy, "--principal", "arn:aws:iam::444455556666:user/warden", "--admin-principal", adminRole}, "IAM role ARN"},
		// A wildcard account or a leading wildcard would exempt roles anyone can create.
		{[]string{"--config", segmentedPolicy, "--principal", "arn:aws:iam::*:role/warden/*", "--admin-principal", adminRole}, "12-digit"},
		{[]string{"--config", segmentedPolicy, "--principal", "arn:aws:iam::444455556666:role/*warden", "--admin-principal", adminRole}, "fixed path"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", "arn:aws:iam::444455556666:role/*"}, "fixed path"},
		// Without admins the deny policy cannot say who may change Warden's roles.
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole}, "--admin-principal is required"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--only", "deny"}, "--admin-principal is required"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole, "--only", "both"}, "--only"},
		{[]string{"--config", segmentedPolicy, "--principal", wardenRole, "--admin-principal", adminRole, "--source-vpce", "vpc-1"}, "VPC endpoint id"},
		{[]string{"--principal", wardenRole, "--admin-principal", adminRole}, "--config is required"},
		{[]string{"--config", "testdata/policy/invalid.yaml", "--principal", wardenRole, "--admin-principal", adminRole}, "invalid.yaml"},
	} {
		var out bytes.Buffer
		code := run(context.Background(), append([]string{"policy", "vpce-policy"}, tc.args...), &out, &out)
		if code == 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want an error containing %q:\n%s", tc.args, code, tc.want, out.String())
		}
	}
}

// FuzzCheckPrincipalARN: whatever principal pattern is accepted names one
// account and cannot match a role of another account or every role of its
// own (a name that starts with another character than the pattern).
func FuzzCheckPrincipalARN(f *testing.F) {
	for _, s := range []string{
		wardenRole, "arn:aws:iam::444455556666:role/warden/*", "arn:aws:iam::*:role/warden/*",
		"arn:aws:iam::444455556666:role/*", "arn:aws:iam::444455556666:user/warden", "arn:aws:iam::444455556666:root",
		"arn:aws-cn:iam::444455556666:role/w?", "arn:*:iam::444455556666:role/w", "warden", "",
		"arn:aws:iam::44445555666:role/w", "arn:aws:iam:us-east-1:444455556666:role/w", "arn:aws:iam::444455556666:role/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPrincipalARN("--principal", p) != nil {
			return
		}
		parts := strings.SplitN(p, ":", 6)
		other, first := "000000000000", "+"
		if parts[4] == other {
			other = "111111111111"
		}
		if parts[5][len("role/")] == '+' {
			first = "="
		}
		for _, arn := range []string{
			"arn:" + parts[1] + ":iam::" + other + ":" + parts[5],
			"arn:" + parts[1] + ":iam::" + other + ":role/" + strings.NewReplacer("*", "x", "?", "y").Replace(parts[5][len("role/"):]),
			"arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + first + "unrelated",
		} {
			if arnLike(p, arn) {
				t.Errorf("accepted %q matches %q", p, arn)
			}
		}
	})
}

// TestWardenRolePolicyCoversControlPlaneCalls reads the control-plane calls
// model resolution makes (cl.bedrock.X / cl.agent.X in authz) and checks the
// role policy grants each, so a new resolver call cannot ship without it.
func TestWardenRolePolicyCoversControlPlaneCalls(t *testing.T) {
	files, err := filepath.Glob("../../authz/*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if client, ok := sel.X.(*ast.SelectorExpr); ok && (client.Sel.Name == "bedrock" || client.Sel.Name == "agent") {
				calls["bedrock:"+sel.Sel.Name] = true
			}
			return true
		})
	}
	if len(calls) < 7 {
		t.Fatalf("found %d control-plane calls in authz (%v); the test no longer sees them", len(calls), calls)
	}
	for c := range calls {
		if !slices.Contains(controlPlaneReads[:], c) {
			t.Errorf("authz calls %s; Warden's role policy does not grant it (controlPlaneReads)", c)
		}
	}
}
