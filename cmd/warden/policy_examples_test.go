package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	examplePolicy = "../../deploy/examples/warden.yaml"
	exampleCases  = "../../deploy/examples/warden.cases.yaml"
)

// The decisions the policy cases reach, not only whether they pass: each
// case's decision, app, rule and reason (`policy test -v`) and its full
// explanation (`policy explain`) are golden, so moving the policy code
// (issue 12) can be checked to change no decision. Run
// `go test ./cmd/warden -run TestPolicyDecisionsGolden -update` after an
// intended change and review the diff.
func TestPolicyDecisionsGolden(t *testing.T) {
	explain := explainExampleCases(t)
	for _, tc := range []struct {
		name string
		args []string
		out  func() ([]byte, int)
	}{
		{"decisions_examples", []string{"test", "-v", "--config", examplePolicy, "--cases", exampleCases}, nil},
		{"decisions_cases", []string{"test", "-v", "--config", policyFile, "--cases", "testdata/policy/cases.yaml"}, nil},
		{"explain_examples", nil, explain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var code int
			if tc.out != nil {
				got, code = tc.out()
			} else {
				var out bytes.Buffer
				code = run(context.Background(), append([]string{"policy"}, tc.args...), &out, &out)
				got = out.Bytes()
			}
			if code != 0 {
				t.Errorf("exit %d, want 0:\n%s", code, got)
			}
			golden := filepath.Join("testdata", "policy", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// exampleCase is what explain needs of a case in warden.cases.yaml; the
// file's other keys (expectations) are ignored.
type exampleCase struct {
	Name        string            `yaml:"name"`
	Tags        map[string]string `yaml:"tags"`
	StrongTags  map[string]string `yaml:"strong_tags"`
	Operation   string            `yaml:"operation"`
	Model       string            `yaml:"model"`
	Foundations []string          `yaml:"foundations"`
	Resolved    *bool             `yaml:"resolved"`
	Regions     []string          `yaml:"regions"`
	S3OutputURI string            `yaml:"s3_output_uri"`
}

// explainExampleCases runs `policy explain` for every example case, with
// the flags that describe the same call, and returns the outputs in order
// and the first non-zero exit code.
func explainExampleCases(t *testing.T) func() ([]byte, int) {
	t.Helper()
	data, err := os.ReadFile(exampleCases)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []exampleCase `yaml:"cases"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", exampleCases, err)
	}
	if len(file.Cases) == 0 {
		t.Fatalf("%s: no cases", exampleCases)
	}
	return func() ([]byte, int) {
		var out bytes.Buffer
		code := 0
		for _, c := range file.Cases {
			args := []string{"policy", "explain", "--config", examplePolicy}
			for _, tags := range []struct {
				m      map[string]string
				suffix string
			}{{c.Tags, ""}, {c.StrongTags, ":strong"}} {
				keys := make([]string, 0, len(tags.m))
				for k := range tags.m {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					args = append(args, "--tag", k+"="+tags.m[k]+tags.suffix)
				}
			}
			args = append(args, "--op", c.Operation)
			if c.Model != "" {
				args = append(args, "--model", c.Model)
			}
			for _, f := range c.Foundations {
				args = append(args, "--foundation", f)
			}
			for _, r := range c.Regions {
				args = append(args, "--region", r)
			}
			if c.Resolved != nil && !*c.Resolved {
				args = append(args, "--unresolved")
			}
			if c.S3OutputURI != "" {
				args = append(args, "--s3-output", c.S3OutputURI)
			}
			fmt.Fprintf(&out, "### %s\n$ warden %s\n", c.Name, strings.Join(args, " "))
			if rc := run(context.Background(), args, &out, &out); rc != 0 && code == 0 {
				code = rc
			}
			out.WriteString("\n")
		}
		return out.Bytes(), code
	}
}
