package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// Agent-runtime ownership: generated ids must be the app's, chosen ids are
// claimed by the first app, an unscoped DeleteAgentMemory is refused, and
// a store that cannot answer denies.
func TestCheckAgentOwner(t *testing.T) {
	ctx := context.Background()
	jobs := NewAsyncJobs(0)
	if err := jobs.Remember(ctx, AgentSessionKey("11111111-1111-1111-1111-111111111111"), "a"); err != nil {
		t.Fatal(err)
	}
	allow := func(app string) Decision { return Decision{Allow: true, App: app} }
	sess := func(op bedrock.Operation) *AgentCall {
		return &AgentCall{Route: bedrock.AgentRoute{Op: op, Session: "11111111-1111-1111-1111-111111111111"}}
	}
	invoke := func(session, memory string) *AgentCall {
		return &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpInvokeAgent, AgentID: "A1", AgentAliasID: "L1", SessionID: session},
			Facts: bedrock.AgentFacts{MemoryID: memory}}
	}
	for _, tc := range []struct {
		name  string
		jobs  JobStore
		app   string
		call  *AgentCall
		allow bool
		why   string
	}{
		{"owner reads its session", jobs, "a", sess(bedrock.OpGetSession), true, ""},
		{"another app's session", jobs, "b", sess(bedrock.OpGetInvocationStep), false, "session 11111111-1111-1111-1111-111111111111 was not created by this app"},
		{"unknown session", jobs, "a", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpDeleteSession, Session: "22222222-2222-2222-2222-222222222222"}}, false, "not created by this app"},
		{"ListSessions is filtered, not refused", jobs, "b", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpListSessions}}, true, ""},
		{"first InvokeAgent claims", jobs, "a", invoke("s1", "m1"), true, ""},
		{"claimed session", jobs, "b", invoke("s1", "m2"), false, "agent session A1/s1 belongs to another app"},
		{"claimed memory", jobs, "b", invoke("s2", "m1"), false, "agent memory A1/m1 belongs to another app"},
		{"memory read by owner", jobs, "a", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpGetAgentMemory, AgentID: "A1", MemoryID: "m1"}}, true, ""},
		{"memory read by another", jobs, "b", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpGetAgentMemory, AgentID: "A1", MemoryID: "m1"}}, false, "agent memory A1/m1"},
		{"delete every memory", jobs, "a", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpDeleteAgentMemory, AgentID: "A1"}}, false, "without a memoryId"},
		{"unknown RAG session", jobs, "a", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpRetrieveAndGenerate}, Facts: bedrock.AgentFacts{SessionID: "x"}}, false, "knowledge base session x"},
		{"store down", failingJobs{}, "a", sess(bedrock.OpGetSession), false, "could not be checked"},
		{"store down, claim", failingJobs{}, "a", invoke("s9", ""), false, "could not be recorded"},
		{"no session: nothing to check", failingJobs{}, "a", &AgentCall{Route: bedrock.AgentRoute{Op: bedrock.OpRetrieve}}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := CheckAgentOwner(ctx, tc.jobs, allow(tc.app), tc.call)
			if d.Allow != tc.allow || !tc.allow && (d.Rule != "agent-runtime.ownership" || !strings.Contains(d.Reason, tc.why)) {
				t.Fatalf("allow %v rule %q reason %q; want allow %v mentioning %q", d.Allow, d.Rule, d.Reason, tc.allow, tc.why)
			}
		})
	}
}
