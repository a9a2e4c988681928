package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/internal/testenv"
)

// The CDK app in deploy/cdk is Warden's infrastructure as code: the Bedrock
// VPC endpoints with the endpoint policy `warden policy vpce-policy`
// generates, the endpoints' security group, Warden's role, the deny SCP and
// DNS Firewall rules. Its validation is TypeScript's (strict: an attribute
// name a construct does not have is a compile error) and `cdk synth` (the
// constructs' own checks); this test runs both on a copy of the app and
// checks the templates against the generated policies byte for byte.

// cdkProject copies the app (sources, settings, tsconfig, cdk.json) into a temporary
// directory beside a link to its node_modules, so compiling and
// synthesising write nothing into the tree; edit, when set, changes
// lib/network.ts first.
func cdkProject(t *testing.T, edit func(string) string) string {
	t.Helper()
	src, _ := filepath.Abs("../../deploy/cdk")
	_, nodeErr := exec.LookPath("node")
	_, libErr := os.Stat(filepath.Join(src, "node_modules", "aws-cdk-lib", "package.json"))
	_, cliErr := os.Stat(filepath.Join(src, "node_modules", ".bin", "cdk"))
	if nodeErr != nil || libErr != nil || cliErr != nil {
		if os.Getenv("WARDEN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or the CDK (%v, %v) missing; run npm ci in deploy/cdk", nodeErr, libErr, cliErr)
		}
		testenv.Missing(t, "node (%v) or the CDK (%v, %v) missing; run npm ci in deploy/cdk", nodeErr, libErr, cliErr)
	}
	dir := t.TempDir()
	for _, f := range []string{"cdk.json", "tsconfig.json", "warden-infra.json", "bin/warden.ts", "lib/settings.ts", "lib/network.ts", "lib/organization.ts"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "lib/network.ts" && edit != nil {
			data = []byte(edit(string(data)))
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(src, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runIn(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// compactJSON is data without insignificant whitespace, every other byte
// as written.
func compactJSON(t *testing.T, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	return b.String()
}

func vpcePolicyOutput(t *testing.T, only string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	args := append(slices.Clone(deployIAMArgs), "--only", only)
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("warden %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.Bytes()
}

// TestCDKSynth compiles and synthesises the CDK app and checks what it
// embeds: both endpoints carry exactly the endpoint policy `warden policy
// vpce-policy` prints for the example config, the SCP exactly its deny
// policy, Warden's role exactly its role policy with the placeholder
// endpoint id replaced by the runtime endpoint's; and the DNS Firewall,
// security group and trust policy say what the docs say.
func TestCDKSynth(t *testing.T) {
	dir := cdkProject(t, nil)
	iamDir, _ := filepath.Abs("../../deploy/iam")
	env := []string{"WARDEN_IAM_DIR=" + iamDir, "CDK_DISABLE_VERSION_CHECK=1", "CDK_DISABLE_CLI_TELEMETRY=true"}
	if out, err := runIn(t, dir, env, "node", "node_modules/typescript/bin/tsc", "-p", "."); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	// The app and its output directory come from cdk.json.
	if out, err := runIn(t, dir, env, "node_modules/.bin/cdk", "synth", "--quiet", "--no-notices"); err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, out)
	}
	type resource struct {
		Type       string                     `json:"Type"`
		Properties map[string]json.RawMessage `json:"Properties"`
	}
	template := func(stack string) map[string]resource {
		data, err := os.ReadFile(filepath.Join(dir, "cdk.out", stack+".template.json"))
		if err != nil {
			t.Fatal(err)
		}
		var tpl struct {
			Resources map[string]resource `json:"Resources"`
		}
		if err := json.Unmarshal(data, &tpl); err != nil {
			t.Fatal(err)
		}
		return tpl.Resources
	}
	network, organization := template("WardenNetwork"), template("WardenOrganization")

	vpce := compactJSON(t, vpcePolicyOutput(t, "vpce"))
	endpoints := 0
	for name, r := range network {
		if r.Type != "AWS::EC2::VPCEndpoint" {
			continue
		}
		endpoints++
		if got := compactJSON(t, r.Properties["PolicyDocument"]); got != vpce {
			t.Errorf("%s's PolicyDocument is not `warden policy vpce-policy --only vpce`:\n--- template\n%s\n--- warden\n%s", name, got, vpce)
		}
	}
	if endpoints != 2 {
		t.Errorf("%d VPC endpoints, want bedrock-runtime and bedrock-agent-runtime", endpoints)
	}
	scp := organization["DenyDirectBedrock"]
	if got, want := compactJSON(t, scp.Properties["Content"]), compactJSON(t, vpcePolicyOutput(t, "deny")); got != want {
		t.Errorf("the SCP's Content is not `--only deny`:\n%s\n%s", got, want)
	}
	role := network["WardenRole"]
	var policies []struct {
		PolicyDocument json.RawMessage `json:"PolicyDocument"`
	}
	if err := json.Unmarshal(role.Properties["Policies"], &policies); err != nil || len(policies) != 1 {
		t.Fatalf("role policies %s: %v", role.Properties["Policies"], err)
	}
	wantRole := strings.ReplaceAll(compactJSON(t, vpcePolicyOutput(t, "role")), `"vpce-0123456789abcdef0"`, `{"Ref":"BedrockRuntimeEndpoint"}`)
	if got := compactJSON(t, policies[0].PolicyDocument); got != wantRole || !strings.Contains(got, `"aws:SourceVpce"`) {
		t.Errorf("Warden's role policy is not `--only role` on the runtime endpoint:\n%s\n%s", got, wantRole)
	}
	if got := compactJSON(t, role.Properties["Path"]); got != `"/warden/"` {
		t.Errorf("Warden's role path %s, want /warden/ (the SCP's exemption and guard)", got)
	}
	trust := compactJSON(t, role.Properties["AssumeRolePolicyDocument"])
	for _, want := range []string{`"sts:AssumeRoleWithWebIdentity"`, `"oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE:aud":"warden.bedrock"`} {
		if !strings.Contains(trust, want) {
			t.Errorf("Warden's trust policy lacks %s: %s", want, trust)
		}
	}
	var domains []string
	if err := json.Unmarshal(network["BedrockBypassDomains"].Properties["Domains"], &domains); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bedrock-runtime.us-west-2.amazonaws.com", "bedrock-agent-runtime.eu-west-1.amazonaws.com",
		"bedrock-runtime.us-east-1.api.aws", "bedrock-mantle.us-east-1.api.aws"} {
		if !slices.Contains(domains, d) {
			t.Errorf("DNS Firewall does not block %s", d)
		}
	}
	if slices.Contains(domains, "bedrock-runtime.us-east-1.amazonaws.com") {
		t.Error("DNS Firewall blocks the home region's runtime name, which the VPC endpoint's private DNS serves")
	}
	ingress := compactJSON(t, network["FromWardenFleet"].Properties["SourceSecurityGroupId"])
	if ingress != `"sg-0123456789abcdef0"` || compactJSON(t, network["FromWardenFleet"].Properties["FromPort"]) != "443" {
		t.Errorf("the endpoints admit %s on %s, want the Warden fleet's group on 443", ingress, network["FromWardenFleet"].Properties["FromPort"])
	}
}

// TestCDKWrongAttributeFails: the validation catches an attribute a
// construct does not have, not just syntax.
func TestCDKWrongAttributeFails(t *testing.T) {
	dir := cdkProject(t, func(s string) string {
		if !strings.Contains(s, "privateDnsEnabled: true") {
			t.Fatal("lib/network.ts no longer sets privateDnsEnabled; pick another attribute for this test")
		}
		return strings.Replace(s, "privateDnsEnabled: true", "privateDNSEnabled: true", 1)
	})
	out, err := runIn(t, dir, nil, "node", "node_modules/typescript/bin/tsc", "-p", ".")
	if err == nil || !strings.Contains(out, "privateDNSEnabled") || !strings.Contains(out, "CfnVPCEndpointProps") {
		t.Fatalf("tsc accepted a misspelt attribute (%v):\n%s", err, out)
	}
}
