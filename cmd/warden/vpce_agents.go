package main

import (
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// The agent runtime (bedrock-agent-runtime) in `warden policy vpce-policy`:
// when some app may call an agent-runtime operation, the output adds the
// policy for a com.amazonaws.REGION.bedrock-agent-runtime VPC endpoint and
// Warden's role policy grants the same calls:
//
//   - bedrock:InvokeAgent, GetAgentMemory and DeleteAgentMemory on the agent
//     aliases the apps allow (allow.agents, allow.unpinned_agents:
//     "AGENT/ALIAS" globs → agent-alias/AGENT/ALIAS);
//   - bedrock:Retrieve on the knowledge bases they allow (knowledge-base/KB);
//   - bedrock:InvokeFlow on the flow aliases they allow (flow/FLOW/alias/ALIAS);
//   - the operations that name no such resource (InvokeInlineAgent,
//     RetrieveAndGenerate, Rerank, GenerateQuery, OptimizePrompt, the
//     sessions API) on "*": which knowledge bases, models and sessions they
//     touch is Warden's decision (the models Bedrock then invokes for the
//     call are checked against Warden's role's bedrock:InvokeModel grant).
//
// Agents invoke models under their own service roles, which the deny policy
// would refuse: --agent-service-role names them (by a dedicated role path,
// see docs/agents.md), exempts them from the deny for the model-invocation
// and retrieval actions only, and puts them under the same guard as Warden's
// roles (no iam:PassRole, iam:UpdateAssumeRolePolicy, … but by the admins).

// agentModelActions are what an agent's or a knowledge base's service role
// calls: the exemption --agent-service-role grants.
var agentModelActions = [...]string{
	"bedrock:ApplyGuardrail", "bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:Retrieve",
}

// agentOpsAllowed returns the agent-runtime operations some app may call,
// in the bedrock package's order.
func agentOpsAllowed(apps []policy.AppConfig) []bedrock.Operation {
	var out []bedrock.Operation
	for _, op := range bedrock.AgentOperations() {
		if opAllowed(apps, string(op)) {
			out = append(out, op)
		}
	}
	return out
}

// agentStatements are the agent-runtime calls Warden makes for the apps;
// nil when no app may call one. No Principal and no Condition: the callers
// add theirs.
func agentStatements(apps []policy.AppConfig, opts vpceOptions) []iamStatement {
	ops := agentOpsAllowed(apps)
	if len(ops) == 0 {
		return nil
	}
	has := func(op bedrock.Operation) bool {
		for _, o := range ops {
			if o == op {
				return true
			}
		}
		return false
	}
	arn := func(kind, rest string) string { return "arn:aws:bedrock:*:" + opts.account + ":" + kind + "/" + rest }
	set := func(globs func(a policy.AppConfig) []string, res func(string) string) []string {
		m := map[string]bool{}
		for _, a := range apps {
			for _, g := range globs(a) {
				m[res(g)] = true
			}
		}
		out := make([]string, 0, len(m))
		for r := range m {
			out = append(out, r)
		}
		sort.Strings(out)
		return out
	}
	var out []iamStatement
	var agentActs []string
	for _, op := range []bedrock.Operation{bedrock.OpDeleteAgentMemory, bedrock.OpGetAgentMemory, bedrock.OpInvokeAgent} {
		if has(op) {
			agentActs = append(agentActs, op.AgentIAMAction())
		}
	}
	aliases := set(func(a policy.AppConfig) []string { return append(slices2(a.Allow.Agents), a.Allow.UnpinnedAgents...) },
		func(g string) string { return arn("agent-alias", g) })
	if len(agentActs) > 0 && len(aliases) > 0 {
		out = append(out, iamStatement{Sid: "WardenInvokesAllowedAgents", Effect: "Allow", Action: agentActs, Resource: aliases})
	}
	kbs := set(func(a policy.AppConfig) []string { return a.Allow.KnowledgeBases }, func(g string) string { return arn("knowledge-base", g) })
	if len(kbs) > 0 && (has(bedrock.OpRetrieve) || has(bedrock.OpRetrieveAndGenerate) || has(bedrock.OpRetrieveAndGenerateStream)) {
		// RetrieveAndGenerate retrieves with the caller's bedrock:Retrieve.
		out = append(out, iamStatement{Sid: "WardenRetrievesAllowedKnowledgeBases", Effect: "Allow", Action: []string{"bedrock:Retrieve"}, Resource: kbs})
	}
	flows := set(func(a policy.AppConfig) []string { return append(slices2(a.Allow.Flows), a.Allow.UnpinnedFlows...) },
		func(g string) string {
			f, al, _ := strings.Cut(g, "/")
			return arn("flow", f+"/alias/"+al)
		})
	if has(bedrock.OpInvokeFlow) && len(flows) > 0 {
		out = append(out, iamStatement{Sid: "WardenInvokesAllowedFlows", Effect: "Allow", Action: []string{"bedrock:InvokeFlow"}, Resource: flows})
	}
	var other []string
	for _, op := range ops {
		switch op {
		case bedrock.OpInvokeAgent, bedrock.OpGetAgentMemory, bedrock.OpDeleteAgentMemory, bedrock.OpRetrieve, bedrock.OpInvokeFlow:
			continue
		}
		if a := op.AgentIAMAction(); a != "" {
			other = append(other, a)
		}
	}
	sort.Strings(other)
	if other = dedupe(other); len(other) > 0 {
		out = append(out, iamStatement{Sid: "WardenAgentRuntimeCalls", Effect: "Allow", Action: other, Resource: []string{"*"}})
	}
	return out
}

func slices2(s []string) []string { return append([]string(nil), s...) }

// agentEndpointPolicy is the bedrock-agent-runtime VPC endpoint's policy:
// only Warden's principals, only the agent-runtime calls the apps need.
func agentEndpointPolicy(apps []policy.AppConfig, opts vpceOptions) *iamPolicy {
	stmts := agentStatements(apps, opts)
	if len(stmts) == 0 {
		return nil
	}
	principal, cond := principalMatch(opts.principals)
	p := &iamPolicy{Version: "2012-10-17"}
	for _, s := range stmts {
		s.Principal, s.Condition = principal, cond
		p.Statement = append(p.Statement, s)
	}
	return p
}
