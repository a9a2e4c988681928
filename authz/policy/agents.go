package policy

import (
	"fmt"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// AgentCall is what an agent-runtime call names, for the policy to check:
// the ids in its path and the facts in its body. Decide does no I/O, so
// every indirect model a fact names is resolved by the caller first.
type AgentCall struct {
	Route bedrock.AgentRoute
	Facts bedrock.AgentFacts
	// Models has one entry per Facts.Models, in the same order.
	Models []AgentModel
}

// AgentModel is one model an agent-runtime body names, classified and (for
// an indirect id) resolved as Call's Model is.
type AgentModel struct {
	Path string           // where the body names it ("generationConfiguration…modelArn")
	Raw  string           // as the body spells it
	ID   *bedrock.ModelID // nil when the value is not a model id Warden knows
	// Foundations, Regions and Resolved are as in Call.
	Foundations []string
	Regions     []string
	Resolved    bool
}

// DraftAlias is the alias id Bedrock gives the test alias of every agent and
// flow: it runs the DRAFT, which the owner edits in place.
const DraftAlias = "TSTALIASID"

// agentAllow is an app's compiled agent-runtime allowlists.
type agentAllow struct {
	agents, unpinnedAgents []string // globs over "AGENT_ID/ALIAS_ID"
	flows, unpinnedFlows   []string // globs over "FLOW_ID/ALIAS_ID"
	kbs                    []string // globs over knowledge base ids
	s3                     []string // s3:// prefixes, each ending in '/'
	lambdas                []string // globs over Lambda ARNs
	tools                  []string // built-in tool signatures, exact
}

func compileAgentAllow(a *AllowConfig) agentAllow {
	c := agentAllow{
		agents: a.Agents, unpinnedAgents: a.UnpinnedAgents, flows: a.Flows, unpinnedFlows: a.UnpinnedFlows,
		kbs: a.KnowledgeBases, lambdas: a.Lambdas, tools: a.BuiltinTools,
	}
	for _, p := range a.S3InputPrefixes {
		c.s3 = append(c.s3, normaliseS3Prefix(p))
	}
	return c
}

func anyGlobOf(globs []string, s string) bool {
	for _, g := range globs {
		if Glob(g, s) {
			return true
		}
	}
	return false
}

// checkAgent checks every id an agent-runtime call names: the path's agent
// alias, knowledge base and flow alias, then each fact of the body. The
// first failure decides, naming where the id was found.
func (a *app) checkAgent(ac *AgentCall) verdict {
	r := &ac.Route
	if r.AgentID != "" {
		if v := a.checkAgentAlias(r.AgentID, r.AgentAliasID, "the path"); v.field != "" {
			return v
		}
	}
	if r.KnowledgeBaseID != "" {
		if v := a.checkKB(r.KnowledgeBaseID, "the path"); v.field != "" {
			return v
		}
	}
	if r.FlowID != "" {
		if v := a.checkFlowAlias(r.FlowID, r.FlowAliasID); v.field != "" {
			return v
		}
	}
	f := &ac.Facts
	for _, x := range f.AgentAliases {
		agent, alias, ok := agentAliasARN(x.Value)
		if !ok {
			return deny("allow.agents", "%s %q is not an agent alias ARN", x.Path, x.Value)
		}
		if v := a.checkAgentAlias(agent, alias, x.Path); v.field != "" {
			return v
		}
	}
	for _, x := range f.KnowledgeBases {
		if v := a.checkKB(x.Value, x.Path); v.field != "" {
			return v
		}
	}
	if len(ac.Models) != len(f.Models) {
		return deny("model-resolution", "the models the body names were not all classified")
	}
	for i := range ac.Models {
		if v := a.checkAgentModel(&ac.Models[i]); v.field != "" {
			return v
		}
	}
	for _, x := range f.S3 {
		if v := a.checkS3Input(x); v.field != "" {
			return v
		}
	}
	for _, x := range f.Lambdas {
		if !anyGlobOf(a.agents.lambdas, x.Value) {
			return deny("allow.lambdas", "Lambda function %s (%s) is not in allow.lambdas", x.Value, x.Path)
		}
	}
	for _, x := range f.BuiltinTools {
		listed := false
		for _, t := range a.agents.tools {
			listed = listed || t == x.Value
		}
		if !listed {
			return deny("allow.builtin_tools", "built-in tool %s (%s) is not in allow.builtin_tools", x.Value, x.Path)
		}
	}
	return allowed
}

func (a *app) checkAgentAlias(agent, alias, where string) verdict {
	key := agent + "/" + alias
	if !anyGlobOf(a.agents.agents, key) {
		return deny("allow.agents", "agent alias %s (%s) is not in allow.agents", key, where)
	}
	if alias == DraftAlias && !anyGlobOf(a.agents.unpinnedAgents, key) {
		return deny("allow.unpinned_agents", "agent alias %s (%s) is the test alias, which runs the agent's DRAFT that its owner can change "+
			"after Warden checked it; call an alias pointing to a numbered version, or list %s in allow.unpinned_agents to accept the DRAFT", key, where, key)
	}
	return allowed
}

func (a *app) checkFlowAlias(flow, alias string) verdict {
	key := flow + "/" + alias
	if !anyGlobOf(a.agents.flows, key) {
		return deny("allow.flows", "flow alias %s is not in allow.flows", key)
	}
	if alias == DraftAlias && !anyGlobOf(a.agents.unpinnedFlows, key) {
		return deny("allow.unpinned_flows", "flow alias %s is the test alias, which runs the flow's DRAFT that its owner can change "+
			"after Warden checked it; call an alias pointing to a numbered version, or list %s in allow.unpinned_flows to accept the DRAFT", key, key)
	}
	return allowed
}

func (a *app) checkKB(id, where string) verdict {
	if !anyGlobOf(a.agents.kbs, id) {
		return deny("allow.knowledge_bases", "knowledge base %s (%s) is not in allow.knowledge_bases", id, where)
	}
	return allowed
}

// checkAgentModel checks one model a body names as a runtime call's model
// is checked, and names where it was found.
func (a *app) checkAgentModel(m *AgentModel) verdict {
	if m.ID == nil {
		return deny("allow.models", "%s %q is not a model id Warden recognises", m.Path, m.Raw)
	}
	v := a.checkModel(m.ID, &Call{Foundations: m.Foundations, Regions: m.Regions, Resolved: m.Resolved})
	if v.field != "" {
		v.why = fmt.Sprintf("model %s (%s): %s", m.Raw, m.Path, v.why)
	}
	return v
}

// checkS3Input allows an S3 object Bedrock reads with Warden's credentials
// only under one of the app's allow.s3_input_prefixes.
func (a *app) checkS3Input(x bedrock.AgentFact) verdict {
	if err := validS3URI(x.Value); err != nil {
		return deny("allow.s3_input_prefixes", "%s %q is not accepted: %v", x.Path, x.Value, err)
	}
	for _, p := range a.agents.s3 {
		if S3Under(p, x.Value) {
			return allowed
		}
	}
	return deny("allow.s3_input_prefixes", "S3 object %s (%s) is not under allow.s3_input_prefixes", x.Value, x.Path)
}

// agentAliasArn splits arn:PARTITION:bedrock:REGION:ACCOUNT:agent-alias/AGENT/ALIAS.
func agentAliasARN(s string) (agent, alias string, ok bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "bedrock" {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(parts[5], "agent-alias/")
	if !ok {
		return "", "", false
	}
	agent, alias, ok = strings.Cut(rest, "/")
	if !ok || !agentIDLike(agent) || !agentIDLike(alias) {
		return "", "", false
	}
	return agent, alias, true
}

// agentIDLike is Bedrock's [0-9a-zA-Z]{1,10} for agent and alias ids.
func agentIDLike(s string) bool {
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// AgentModels classifies each model an agent-runtime body names; the caller
// resolves the indirect ones (Foundations, Regions, Resolved) before Decide.
func AgentModels(f *bedrock.AgentFacts) []AgentModel {
	out := make([]AgentModel, len(f.Models))
	for i, x := range f.Models {
		out[i] = AgentModel{Path: x.Path, Raw: x.Value}
		if m, err := bedrock.ParseModelID(x.Value); err == nil {
			out[i].ID = &m
		}
	}
	return out
}

// validateAgentAllow checks an app's agent-runtime allowlists.
func validateAgentAllow(a *AllowConfig, add func(string, ...any)) {
	for _, l := range []struct {
		key   string
		globs []string
	}{
		{"agents", a.Agents}, {"unpinned_agents", a.UnpinnedAgents}, {"flows", a.Flows}, {"unpinned_flows", a.UnpinnedFlows},
		{"knowledge_bases", a.KnowledgeBases}, {"lambdas", a.Lambdas},
	} {
		for _, g := range l.globs {
			if err := validateGlob(g); err != nil {
				add("allow.%s %q: %v", l.key, g, err)
			}
		}
	}
	for _, g := range append(append([]string(nil), a.Agents...), a.Flows...) {
		if !strings.Contains(g, "/") && g != "*" {
			add("allow.agents/allow.flows %q: want ID/ALIAS_ID (globs allowed: ABCDEFGHIJ/*)", g)
		}
	}
	for _, p := range a.S3InputPrefixes {
		if err := validS3Prefix(p); err != nil {
			add("allow.s3_input_prefixes: %q: %v", p, err)
		}
	}
	for _, t := range a.BuiltinTools {
		if t == "" || hasControlOrSpace(t) {
			add("allow.builtin_tools: %q is not a built-in tool signature (AMAZON.CodeInterpreter, AMAZON.UserInput, …)", t)
		}
	}
	listed := map[string]bool{}
	for _, op := range a.Operations {
		listed[op] = true
	}
	for _, need := range []struct {
		op, key string
		list    []string
	}{
		{"InvokeAgent", "agents", a.Agents}, {"GetAgentMemory", "agents", a.Agents}, {"DeleteAgentMemory", "agents", a.Agents},
		{"Retrieve", "knowledge_bases", a.KnowledgeBases}, {"InvokeFlow", "flows", a.Flows},
	} {
		if listed[need.op] && len(need.list) == 0 {
			add("allow.operations lists %s but allow.%s is empty, so every %s would be denied", need.op, need.key, need.op)
		}
	}
}

// AgentUnsupported decides an agent-runtime call of the app d selected
// whose app has what Warden does not apply to agent-runtime bodies yet:
// caps (limits.max_prompt_chars, max_output_tokens), an attached Bedrock
// guardrail, or token or cost budgets (tokenBudgets: the budget package's
// answer, since agents report their tokens only in traces the caller may
// not enable). Such a call is refused rather than forwarded uncapped or
// unmetered, and the refusal names what is missing. refused is false when
// nothing is missing (or no app selected the call). A dry-run app's
// refusal is a dry-run denial: the caller forwards it and records it.
func AgentUnsupported(d Decision, a *AppConfig, tokenBudgets bool, op bedrock.Operation) (deny Decision, refused bool) {
	if d.App == "" {
		return d, false
	}
	var what []string
	if a != nil {
		if a.Limits.MaxPromptChars > 0 || a.Limits.MaxOutputTokens > 0 {
			what = append(what, "limits.max_prompt_chars/max_output_tokens")
		}
		if a.BedrockGuardrail != nil {
			what = append(what, "bedrock_guardrail")
		}
	}
	if tokenBudgets {
		what = append(what, "token or cost budgets")
	}
	if len(what) == 0 {
		return d, false
	}
	return Decision{App: d.App, DryRun: d.DryRun, MaxBodyBytes: d.MaxBodyBytes, Rule: "agent-runtime.unsupported",
		Reason: "warden: app " + d.App + " has " + strings.Join(what, ", ") + ", which Warden does not apply to agent-runtime calls yet; operation " +
			string(op) + " is refused rather than forwarded uncapped or unmetered"}, true
}
