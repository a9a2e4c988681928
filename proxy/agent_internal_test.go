package proxy

import (
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// agentDispatchSeeds are a path of every agent-runtime route template and a
// few runtime ones, as the SDKs send them.
var agentDispatchSeeds = [][2]string{
	{"POST", "/agents/AGENT00001/agentAliases/ALIAS00001/sessions/sess-1/text"},
	{"POST", "/agents/sess-1"},
	{"GET", "/agents/AGENT00001/agentAliases/ALIAS00001/memories?memoryId=m1"},
	{"POST", "/knowledgebases/KB00000001/retrieve"},
	{"POST", "/retrieveAndGenerate"},
	{"POST", "/retrieveAndGenerateStream"},
	{"POST", "/rerank"},
	{"POST", "/generateQuery"},
	{"POST", "/optimize-prompt"},
	{"POST", "/flows/FLOW000001/aliases/ALIAS00001"},
	{"PUT", "/sessions/"},
	{"POST", "/sessions/"},
	{"GET", "/sessions/0f8fad5b-d9cb-469f-a165-70867728950e/"},
	{"PUT", "/sessions/0f8fad5b-d9cb-469f-a165-70867728950e/invocations/"},
	{"GET", "/tags/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Asession%2F0f8fad5b-d9cb-469f-a165-70867728950e"},
	{"POST", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"},
	{"POST", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke"},
	{"POST", "/guardrail/gr1/version/1/apply"},
	{"POST", "/async-invoke"},
	{"GET", "/async-invoke"},
	// The OpenAI-compatible and Anthropic routes endpoint mode also serves,
	// two of them under resources the agent runtime has too (/v1/agents,
	// /v1/sessions against /agents/, /sessions/).
	{"POST", "/openai/v1/chat/completions"},
	{"POST", "/openai/v1/responses"},
	{"POST", "/bedrock-mantle/v1/chat/completions"},
	{"POST", "/bedrock-mantle/v1/responses"},
	{"POST", "/bedrock-mantle/anthropic/v1/messages"},
	{"GET", "/v1/agents"},
	{"POST", "/v1/sessions"},
	{"GET", "/v1/memory_stores"},
}

// Endpoint mode picks the parser by the path's first segment, agent-runtime
// paths first: no operation either parser (ParseAgentRoute, and
// ParseEndpointRoute with the OpenAI-compatible and Anthropic routes) accepts
// may be sent to the other, and every agent-runtime operation must be
// recognised as one.
func TestAgentDispatch(t *testing.T) {
	seen := map[bedrock.Operation]bool{}
	for _, s := range agentDispatchSeeds {
		path, query, _ := strings.Cut(s[1], "?")
		c := &call{escapedPath: path}
		ar, aerr := bedrock.ParseAgentRoute(s[0], path, query)
		_, rerr := bedrock.ParseEndpointRoute(s[0], path, query)
		switch {
		case aerr == nil && !isAgentCall(c):
			t.Errorf("%s %s is agent-runtime %s but dispatched to the runtime", s[0], s[1], ar.Op)
		case rerr == nil && isAgentCall(c):
			t.Errorf("%s %s is a runtime operation but dispatched to the agent runtime", s[0], s[1])
		case aerr != nil && rerr != nil:
			t.Errorf("%s %s: seed accepted by neither parser (%v; %v)", s[0], s[1], aerr, rerr)
		}
		if aerr == nil {
			seen[ar.Op] = true
		}
	}
	for _, op := range []bedrock.Operation{bedrock.OpInvokeAgent, bedrock.OpInvokeInlineAgent, bedrock.OpRetrieve, bedrock.OpRetrieveAndGenerate,
		bedrock.OpRetrieveAndGenerateStream, bedrock.OpInvokeFlow, bedrock.OpRerank, bedrock.OpGenerateQuery, bedrock.OpOptimizePrompt,
		bedrock.OpGetAgentMemory, bedrock.OpCreateSession, bedrock.OpListSessions, bedrock.OpGetSession, bedrock.OpCreateInvocation, bedrock.OpListTagsForResource} {
		if !seen[op] {
			t.Errorf("no seed exercises %s", op)
		}
	}
}

func FuzzAgentDispatch(f *testing.F) {
	for _, s := range agentDispatchSeeds {
		path, query, _ := strings.Cut(s[1], "?")
		f.Add(s[0], path, query)
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		c := &call{escapedPath: path}
		agent := isAgentCall(c)
		if _, err := bedrock.ParseAgentRoute(method, path, query); err == nil && !agent {
			t.Fatalf("%q %q %q: agent-runtime operation dispatched to the runtime", method, path, query)
		}
		if _, err := bedrock.ParseEndpointRoute(method, path, query); err == nil && agent {
			t.Fatalf("%q %q %q: runtime operation dispatched to the agent runtime", method, path, query)
		}
	})
}
