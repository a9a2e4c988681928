package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/authz/identity"
)

const centralExample = "../../deploy/examples/warden-central.yaml"

func runIdentityRoles(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"policy", "identity-roles"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestIdentityRoles: the roles follow the config's identity.ec2 section:
// the hub assumes exactly the listed roles, each trust policy carries its
// account's external id and names only Warden's principals, ECS reads come
// only with ecs_tasks and ecs:ListClusters only where clusters are not
// listed.
func TestIdentityRoles(t *testing.T) {
	const principal = "arn:aws:iam::111122223333:role/warden/warden-central"
	stdout, stderr, code := runIdentityRoles(t, "--config", centralExample, "--principal", principal)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Hub    iamPolicy `json:"warden_identity_policy"`
		Spokes []struct {
			Account string `json:"account"`
			Role    string `json:"role_arn"`
			Trust   struct {
				Statement []trustStatement
			} `json:"trust_policy"`
			Policy iamPolicy `json:"role_policy"`
		} `json:"spoke_roles"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	sids := map[string]iamStatement{}
	for _, s := range out.Hub.Statement {
		sids[s.Sid] = s
	}
	if got := sids["AssumeSpokeIdentityRoles"].Resource; !slices.Equal(got, []string{"arn:aws:iam::222233334444:role/warden-identity", "arn:aws:iam::333344445555:role/warden-identity"}) {
		t.Errorf("hub assumes %v", got)
	}
	if a := sids["ReadEndpointConnections"].Action; !slices.Equal(a, []string{"ec2:DescribeVpcEndpointConnections"}) {
		t.Errorf("hub endpoint reads %v", a)
	}
	if a := actions(out.Hub); !slices.Contains(a, "ecs:ListClusters") || !slices.Contains(a, "ec2:DescribeNetworkInterfaces") {
		t.Errorf("hub's own-account reads %v (no ecs_clusters there: every cluster is listed)", a)
	}
	if r := sids["OwnAccountReadTasks"].Resource; !slices.Equal(r, []string{"arn:aws:ecs:*:111122223333:task/*"}) {
		t.Errorf("hub's own ecs:DescribeTasks on %v, want its account's tasks", r)
	}
	checkResourceStar(t, "hub", out.Hub)
	if len(out.Spokes) != 2 {
		t.Fatalf("spokes %+v", out.Spokes)
	}
	for i, want := range []struct {
		account, externalID  string
		listClusters         bool
		tasks, listCondition string
	}{
		{"222233334444", "warden-central-7f3a", false, "arn:aws:ecs:*:222233334444:task/payments/*", `["arn:aws:ecs:*:222233334444:cluster/payments"]`},
		{"333344445555", "warden-central-91c2", true, "arn:aws:ecs:*:333344445555:task/*", "null"},
	} {
		s := out.Spokes[i]
		if s.Account != want.account || s.Role != "arn:aws:iam::"+want.account+":role/warden-identity" {
			t.Errorf("spoke %d: %s %s", i, s.Account, s.Role)
		}
		if len(s.Trust.Statement) != 1 {
			t.Fatalf("spoke %s trust %+v", s.Account, s.Trust)
		}
		st := s.Trust.Statement[0]
		if st.Condition["StringEquals"]["sts:ExternalId"] != want.externalID {
			t.Errorf("spoke %s: external id %v, want %s", s.Account, st.Condition["StringEquals"], want.externalID)
		}
		if p, _ := json.Marshal(st.Condition["ArnLike"]["aws:PrincipalArn"]); string(p) != `["`+principal+`"]` {
			t.Errorf("spoke %s: principal arn condition %s", s.Account, p)
		}
		if !slices.Equal(st.Principal["AWS"], []string{"arn:aws:iam::111122223333:root"}) || !slices.Equal(st.Action, []string{"sts:AssumeRole"}) {
			t.Errorf("spoke %s: trust %+v", s.Account, st)
		}
		acts := actions(s.Policy)
		if slices.Contains(acts, "ecs:ListClusters") != want.listClusters || !slices.Contains(acts, "ecs:DescribeTasks") {
			t.Errorf("spoke %s: actions %v", s.Account, acts)
		}
		checkResourceStar(t, "spoke "+s.Account, s.Policy)
		for _, st := range s.Policy.Statement {
			switch st.Sid {
			case "ReadTasks":
				if !slices.Equal(st.Resource, []string{want.tasks}) {
					t.Errorf("spoke %s: ecs:DescribeTasks on %v, want %s", s.Account, st.Resource, want.tasks)
				}
			case "ListTasks":
				var got any
				if c := st.Condition["ArnLike"]; c != nil {
					got = c["ecs:cluster"]
				}
				if p, _ := json.Marshal(got); string(p) != want.listCondition {
					t.Errorf("spoke %s: ecs:ListTasks condition %s, want %s", s.Account, p, want.listCondition)
				}
			}
		}
	}

	// Without ecs_tasks, no ECS action anywhere.
	dir := t.TempDir()
	src, err := os.ReadFile(centralExample)
	if err != nil {
		t.Fatal(err)
	}
	noECS := filepath.Join(dir, "noecs.yaml")
	if err := os.WriteFile(noECS, bytes.Replace(src, []byte("ecs_tasks: true"), []byte("ecs_tasks: false"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runIdentityRoles(t, "--config", noECS, "--principal", principal)
	if code != 0 || strings.Contains(stdout, `"ecs:`) {
		t.Errorf("without ecs_tasks: exit %d %s\n%s", code, stderr, stdout)
	}
}

// actions are every action p grants.
func actions(p iamPolicy) []string {
	var out []string
	for _, s := range p.Statement {
		out = append(out, s.Action...)
	}
	return out
}

// noResourceLevel are the identity source's actions IAM supports no
// resource-level permissions for: only they may be granted on "*" (or, as
// ecs:ListTasks, on "*" narrowed by a condition where clusters are listed).
var noResourceLevel = []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcEndpointConnections",
	"ecs:DescribeTaskDefinition", "ecs:ListClusters", "ecs:ListTasks"}

func checkResourceStar(t *testing.T, who string, p iamPolicy) {
	t.Helper()
	for _, s := range p.Statement {
		if !slices.Contains(s.Resource, "*") {
			continue
		}
		for _, a := range s.Action {
			if !slices.Contains(noResourceLevel, a) {
				t.Errorf("%s: %s granted on Resource \"*\"; it takes a narrower resource", who, a)
			}
		}
	}
}

// TestIdentityRolesNotes: the full output says which reads stay on "*"
// and why; cluster ARNs in ecs_clusters narrow by their own region.
func TestIdentityRolesNotes(t *testing.T) {
	stdout, stderr, code := runIdentityRoles(t, "--config", centralExample, "--principal", "arn:aws:iam::111122223333:role/warden/warden-central")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct{ Notes []string }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Notes) != 1 || !strings.Contains(out.Notes[0], "no resource-level permissions") || !strings.Contains(out.Notes[0], "ec2:DescribeNetworkInterfaces") {
		t.Errorf("notes %q", out.Notes)
	}
	sts, err := readStatements(true, "aws-cn", identityEC2Account("222233334444", "arn:aws-cn:ecs:cn-north-1:222233334444:cluster/pay", "apps"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Sid == "ReadTasks" && !slices.Equal(s.Resource, []string{"arn:aws-cn:ecs:cn-north-1:222233334444:task/pay/*", "arn:aws-cn:ecs:*:222233334444:task/apps/*"}) {
			t.Errorf("ReadTasks on %v", s.Resource)
		}
	}
	if _, err := readStatements(true, "aws", identityEC2Account("222233334444", "arn:aws:ecs:us-east-1:222233334444:service/pay/x")); err == nil {
		t.Error("a service ARN in ecs_clusters was taken for a cluster")
	}
}

func TestIdentityRolesErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", centralExample}, "--principal is required"},
		{[]string{"--config", centralExample, "--principal", "arn:aws:iam::*:role/warden/x"}, "12-digit"},
		{[]string{"--config", centralExample, "--principal", "arn:aws:iam::111122223333:role/w", "--only", "nope"}, `--only "nope"`},
		{[]string{"--config", centralExample, "--principal", "arn:aws:iam::111122223333:role/w", "--spoke", "222233334444"}, "--spoke needs"},
		{[]string{"--config", centralExample, "--principal", "arn:aws:iam::111122223333:role/w", "--only", "spoke-trust", "--spoke", "111122223333"}, "not an account with a role_arn"},
		{[]string{"--config", "../../deploy/examples/warden.yaml", "--principal", "arn:aws:iam::111122223333:role/w"}, "identity.sources has no ec2"},
	} {
		_, stderr, code := runIdentityRoles(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestIdentityRolesCoverSourceCalls: every EC2, ECS and STS call the
// identity source makes (read from its code) has its action in the
// generated roles, so a new call cannot ship without its permission.
func TestIdentityRolesCoverSourceCalls(t *testing.T) {
	files, err := filepath.Glob("../../authz/identity/source_ec2*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no source files: %v", err)
	}
	granted := map[string]bool{"DescribeVpcEndpointConnections": true, "AssumeRole": true}
	for _, a := range append(slices.Clone(interfaceReads), ecsTaskReads...) {
		granted[a[strings.Index(a, ":")+1:]] = true
	}
	call := regexp.MustCompile(`\.((?:Describe|List|Get)[A-Z]\w*)\(ctx|New((?:Describe|List)[A-Z]\w*)Paginator\(|NewAssumeRoleProvider`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			op := m[1] + m[2]
			if op == "" {
				op = "AssumeRole"
			}
			found++
			if !granted[op] {
				t.Errorf("%s calls %s, which the generated identity roles do not grant (cmd/warden/identityroles.go)", filepath.Base(f), op)
			}
		}
	}
	if found < 6 {
		t.Errorf("found only %d AWS calls in the source: the pattern no longer matches its code", found)
	}
}

func identityEC2Account(account string, clusters ...string) identity.EC2AccountConfig {
	return identity.EC2AccountConfig{Account: account, ECSClusters: clusters}
}
