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

// Warden's role may call Claude Managed Agents (Anthropic's Bedrock-only
// APIs) only when an app names one of their operations ("*" does not), and
// the deny policy refuses them to everyone else whatever the apps allow
// (the one action AWS's guide names matches the pattern).
func TestWardenRolePolicyClaudeManagedAgents(t *testing.T) {
	opts := vpceOptions{account: "123456789012", region: "us-east-1"}
	for _, tc := range []struct {
		ops  []string
		want bool
	}{
		{[]string{"*"}, false},
		{[]string{"Converse", "MantleMessages"}, false},
		{[]string{"AnthropicSessions"}, true},
		{[]string{"AnthropicMemoryStores"}, true},
	} {
		apps := []policy.AppConfig{{Name: "a", Allow: policy.AllowConfig{Operations: tc.ops, Models: []string{"anthropic.claude-*"}}}}
		got := false
		for _, s := range wardenRolePolicy(apps, opts).Statement {
			if slices.Contains(s.Action, actClaudeManagedAgents) {
				got = true
			}
		}
		if got != tc.want {
			t.Errorf("operations %v: %s allowed %v, want %v", tc.ops, actClaudeManagedAgents, got, tc.want)
		}
	}
	if !slices.Contains(dataPlaneActions(), actClaudeManagedAgents) {
		t.Error("the deny policy does not cover Claude Managed Agents")
	}
	if !arnLike(actClaudeManagedAgents, "bedrock:CreateAnthropicSessionConnection") {
		t.Error("the pattern misses the action AWS's guide names")
	}
}
