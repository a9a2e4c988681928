package policy

import (
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// The OpenAI-compatible and Anthropic-native operations: allowed by name or
// by "*", except Anthropic's Bedrock-only APIs, which only a policy naming
// them allows; allow.models applies to the body's model as to the path's.
func TestDecideCompatOperations(t *testing.T) {
	p := mustPolicy(t, `
  - name: star
    allow_weak_identity: true
    match: {tags: {app: star}}
    allow: {operations: ["*"], models: ["amazon.nova-lite-v1:0", "openai.gpt-oss-*"]}
  - name: named
    allow_weak_identity: true
    match: {tags: {app: named}}
    allow: {operations: [MantleResponses, AnthropicSessions], models: ["*"]}
`)
	star, named := tags("app=star"), tags("app=named")
	cases := []decideCase{
		{name: "star chat", id: star, op: bedrock.OpOpenAIChatCompletions, model: "openai.gpt-oss-20b-1:0", allow: true, app: "star"},
		{name: "star responses", id: star, op: bedrock.OpOpenAIResponses, model: "amazon.nova-lite-v1:0", allow: true, app: "star"},
		{name: "star mantle chat", id: star, op: bedrock.OpMantleChatCompletions, model: "openai.gpt-oss-120b-1:0", allow: true, app: "star"},
		{name: "star mantle messages", id: star, op: bedrock.OpMantleMessages, model: "openai.gpt-oss-120b-1:0", allow: true, app: "star"},
		{name: "star denied model", id: star, op: bedrock.OpOpenAIChatCompletions, model: "anthropic.claude-3-haiku-20240307-v1:0", app: "star", rule: "allow.models"},
		{name: "star agents", id: star, op: bedrock.OpAnthropicAgents, app: "star", rule: "allow.operations"},
		{name: "star sessions", id: star, op: bedrock.OpAnthropicSessions, app: "star", rule: "allow.operations"},
		{name: "star memory", id: star, op: bedrock.OpAnthropicMemoryStores, app: "star", rule: "allow.operations"},
		{name: "named sessions", id: named, op: bedrock.OpAnthropicSessions, allow: true, app: "named"},
		{name: "named agents", id: named, op: bedrock.OpAnthropicAgents, app: "named", rule: "allow.operations"},
		{name: "named responses", id: named, op: bedrock.OpMantleResponses, model: "openai.gpt-oss-20b-1:0", allow: true, app: "named"},
		{name: "named chat", id: named, op: bedrock.OpMantleChatCompletions, model: "openai.gpt-oss-20b-1:0", app: "named", rule: "allow.operations"},
	}
	runDecideCases(t, p, cases)
}

func TestOperationsHaveBits(t *testing.T) {
	seen := opSet(0)
	for _, op := range policyOperations {
		b := opBit(op)
		if b == 0 || seen&b != 0 {
			t.Fatalf("operation %s has bit %#x (already used: %v)", op, b, seen&b != 0)
		}
		seen |= b
	}
}
