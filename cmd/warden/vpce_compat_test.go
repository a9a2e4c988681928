package main

import (
	"slices"
	"testing"

	"github.com/warden-egress/warden/authz/policy"
)

// Warden's role may call bedrock-mantle only when an app may use it (by
// name or "*"), and never only through the bedrock-runtime VPC endpoint.
func TestWardenRolePolicyMantle(t *testing.T) {
	opts := vpceOptions{account: "123456789012", region: "us-east-1", sourceVPCE: []string{"vpce-0abc"}}
	for _, tc := range []struct {
		ops  []string
		want bool
	}{
		{[]string{"Converse", "OpenAIChatCompletions"}, false},
		{[]string{"MantleResponses"}, true},
		{[]string{"MantleMessages"}, true},
		{[]string{"*"}, true},
	} {
		apps := []policy.AppConfig{{Name: "a", Allow: policy.AllowConfig{Operations: tc.ops, Models: []string{"openai.gpt-oss-*"}}}}
		p := wardenRolePolicy(apps, opts)
		got := false
		for _, s := range p.Statement {
			if slices.Contains(s.Action, actMantleInference) {
				got = true
				if s.Condition != nil {
					t.Errorf("%v: the mantle statement has the condition %v", tc.ops, s.Condition)
				}
			}
		}
		if got != tc.want {
			t.Errorf("operations %v: bedrock-mantle:CreateInference allowed %v, want %v", tc.ops, got, tc.want)
		}
	}
}
