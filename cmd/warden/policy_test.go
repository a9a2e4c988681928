package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/policy")

const (
	policyFile = "testdata/policy/policy.yaml"
	profileARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
)

// The output of `warden policy validate|test|explain` is compared with
// testdata/policy/*.golden; run `go test ./cmd/warden -run TestPolicyGolden -update`
// after an intended change and review the diff.
func TestPolicyGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"validate_ok", []string{"validate", "--config", policyFile}, 0},
		{"validate_positional", []string{"validate", policyFile}, 0},
		{"validate_warnings", []string{"validate", "--config", "testdata/policy/warnings.yaml"}, 0},
		{"validate_strict", []string{"validate", "--strict", "--config", "testdata/policy/warnings.yaml"}, 1},
		{"validate_invalid", []string{"validate", "--config", "testdata/policy/invalid.yaml"}, 1},
		{"test_pass", []string{"test", "--config", policyFile, "--cases", "testdata/policy/cases.yaml"}, 0},
		{"test_fail", []string{"test", "--config", policyFile, "--cases", "testdata/policy/cases_failing.yaml"}, 1},
		{"explain_allow", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=payments:strong", "--tag", "k8s.serviceaccount=worker:strong", "--tag", "k8s.label.app=pay",
			"--op", "Converse", "--model", "us.anthropic.claude-3-5-haiku-20241022-v1:0"}, 0},
		{"explain_weak_namespace", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=payments", "--tag", "k8s.serviceaccount=api:strong",
			"--op", "Converse", "--model", "anthropic.claude-3-5-haiku-20241022-v1:0"}, 0},
		{"explain_model_denied", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=payments:strong", "--tag", "k8s.serviceaccount=api:strong",
			"--op", "Converse", "--model", profileARN, "--foundation", "anthropic.claude-3-5-haiku-20241022-v1:0",
			"--foundation", "anthropic.claude-3-opus-20240229-v1:0"}, 0},
		{"explain_unresolved", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=payments:strong", "--tag", "k8s.serviceaccount=api:strong",
			"--operation", "Converse", "--model", profileARN, "--unresolved"}, 0},
		{"explain_dry_run", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=search:strong", "--tag", "k8s.label.canary=yes",
			"--op", "Converse", "--model", "amazon.nova-pro-v1:0"}, 0},
		{"explain_async", []string{"explain", "--config", policyFile,
			"--tag", "k8s.namespace=payments:strong", "--tag", "k8s.serviceaccount=api:strong",
			"--op", "StartAsyncInvoke", "--model", "amazon.nova-lite-v1:0", "--s3-output", "s3://payments-batch/outgoing/"}, 0},
		{"explain_glob", []string{"explain", "--config", policyFile,
			"--tag", "ecs.family=batch-nightly:strong", "--op", "InvokeModel", "--model", "eu.amazon.nova-lite-v1:0"}, 0},
		{"explain_no_tags", []string{"explain", "--config", policyFile, "--op", "Converse", "--model", "meta.llama3-8b-instruct-v1:0"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"policy"}, tc.args...), &out, &out)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			golden := filepath.Join("testdata", "policy", tc.name+".golden")
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
		})
	}
}

// The example policy and its cases file are what CI runs.
func TestPolicyExampleCases(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"policy", "test", "--config", "../../deploy/examples/warden.yaml",
		"--cases", "../../deploy/examples/warden.cases.yaml"}, &out, &out); code != 0 {
		t.Fatalf("example cases: exit %d\n%s", code, out.String())
	}
	if code := run(context.Background(), []string{"policy", "validate", "--strict", "../../deploy/examples/warden.yaml"}, &out, &out); code != 0 {
		t.Fatalf("example policy has warnings: exit %d\n%s", code, out.String())
	}
}

func TestPolicyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badCases := write("bad.yaml", "cases:\n  - name: x\n    operation: Converse\n    expect: maybe\n  - name: y\n    expect: allow\n    model: not/a/model\n    colour: red\n")
	noField := write("nofield.yaml", "cases:\n  - name: x\n    operation: Converse\n    model: nope\n    expect: allow\n")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"policy"}, []string{"usage", "missing subcommand"}},
		{[]string{"policy", "frobnicate"}, []string{"unknown subcommand"}},
		{[]string{"policy", "validate"}, []string{"--config is required"}},
		{[]string{"policy", "test", "--config", policyFile}, []string{"--cases is required"}},
		{[]string{"policy", "test", "--config", policyFile, "--cases", badCases}, []string{"colour"}},
		{[]string{"policy", "test", "--config", policyFile, "--cases", noField}, []string{"nofield.yaml:2: cases[0]: model"}},
		{[]string{"policy", "explain", "--config", policyFile}, []string{"--op is required"}},
		{[]string{"policy", "explain", "--config", policyFile, "--op", "Converse", "--tag", "novalue"}, []string{"KEY=VALUE"}},
		{[]string{"policy", "explain", "--config", policyFile, "--op", "Converse", "--model", "x/y"}, []string{"--model"}},
		{[]string{"policy", "validate", policyFile, "extra"}, []string{"unexpected arguments"}},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &out); code == 0 {
			t.Errorf("%v: exit 0", tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
	// Case-file validation reports every bad case with its line.
	var out bytes.Buffer
	run(context.Background(), []string{"policy", "test", "--config", policyFile, "--cases", write("bad2.yaml",
		"cases:\n  - name: x\n    operation: Converse\n    expect: maybe\n  - name: y\n    expect: allow\n")}, &out, &out)
	for _, w := range []string{"bad2.yaml:2: cases[0]: expect", "bad2.yaml:5: cases[1]: operation is required"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestParseTagFlag(t *testing.T) {
	for _, tc := range []struct {
		in, key, value string
		strong         bool
	}{
		{"k8s.namespace=payments:strong", "k8s.namespace", "payments", true},
		{"app=chatbot", "app", "chatbot", false},
		{"app=chatbot:weak", "app", "chatbot", false},
		{"aws.access_key_id=a:b:strong", "aws.access_key_id", "a:b", true},
		{"k=", "k", "", false},
	} {
		k, tag, err := parseTagFlag(tc.in)
		if err != nil || k != tc.key || tag.Value != tc.value || tag.Strong != tc.strong {
			t.Errorf("parseTagFlag(%q) = %q %+v %v", tc.in, k, tag, err)
		}
	}
	if _, _, err := parseTagFlag("=x"); err == nil {
		t.Error("empty key accepted")
	}
}
