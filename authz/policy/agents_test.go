package policy

import (
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

const agentApps = `
  - name: rag
    match: {tags: {k8s.namespace: rag}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "amazon.titan-embed-*"]
      operations: ["*", InvokeAgent, InvokeInlineAgent, Retrieve, RetrieveAndGenerate, InvokeFlow, GetAgentMemory]
      agents: ["AGENT00001/ALIAS00001", "AGENT00002/*"]
      unpinned_agents: ["AGENT00002/TSTALIASID"]
      knowledge_bases: ["KB00000001"]
      flows: ["FLOW000001/*"]
      s3_input_prefixes: ["s3://rag-docs/team-a/"]
      lambdas: ["arn:aws:lambda:us-east-1:123456789012:function:team-a-*"]
      builtin_tools: [AMAZON.UserInput]
  - name: star
    match: {tags: {k8s.namespace: star}}
    allow:
      models: ["*"]
      operations: ["*"]
      agents: ["*"]
      knowledge_bases: ["*"]
`

// agentCall builds the call the proxy would: the route from the path, the
// facts from the body, the body's models classified (none indirect here).
func agentCall(t *testing.T, method, path, body string) Call {
	t.Helper()
	p, q, _ := strings.Cut(path, "?")
	r, err := bedrock.ParseAgentRoute(method, p, q)
	if err != nil {
		t.Fatalf("ParseAgentRoute(%s %s): %v", method, path, err)
	}
	f, err := bedrock.AgentRequestFacts(r.Op, []byte(body))
	if err != nil {
		t.Fatalf("AgentRequestFacts(%s): %v", r.Op, err)
	}
	return Call{Op: r.Op, Agent: &AgentCall{Route: r, Facts: f, Models: AgentModels(&f)}}
}

func TestDecideAgents(t *testing.T) {
	p := mustPolicy(t, agentApps)
	rag, star := tags("k8s.namespace=rag!"), tags("k8s.namespace=star!")
	const haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"
	const kbRAG = `{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KB00000001","modelArn":"%s"}}}`
	const extRAG = `{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"EXTERNAL_SOURCES","externalSourcesConfiguration":{"modelArn":"` + haiku + `","sources":[{"sourceType":"S3","s3Location":{"uri":"%s"}}]}}}`
	inline := func(extra string) string {
		return `{"foundationModel":"` + haiku + `","instruction":"be helpful and brief","inputText":"hi"` + extra + `}`
	}
	cases := []struct {
		name         string
		who          string // "rag" or "star"
		method, path string
		body         string
		rule         string // "" = allowed
		reason       string
	}{
		{"invoke agent pinned alias", "rag", "POST", "/agents/AGENT00001/agentAliases/ALIAS00001/sessions/s1/text", `{"inputText":"hi"}`, "", ""},
		{"invoke agent other alias", "rag", "POST", "/agents/AGENT00001/agentAliases/ALIAS00009/sessions/s1/text", `{"inputText":"hi"}`,
			"apps[0].allow.agents", "agent alias AGENT00001/ALIAS00009 (the path) is not in allow.agents"},
		{"invoke agent draft alias refused", "rag", "POST", "/agents/AGENT00001/agentAliases/TSTALIASID/sessions/s1/text", `{"inputText":"hi"}`,
			"apps[0].allow.agents", "not in allow.agents"},
		{"invoke agent draft alias not opted in", "star", "POST", "/agents/AGENT00003/agentAliases/TSTALIASID/sessions/s1/text", `{"inputText":"hi"}`,
			"apps[1].allow.operations", `"*" does not include them`},
		{"invoke agent draft alias opted in", "rag", "POST", "/agents/AGENT00002/agentAliases/TSTALIASID/sessions/s1/text", `{"inputText":"hi"}`, "", ""},
		{"agent memory", "rag", "GET", "/agents/AGENT00001/agentAliases/ALIAS00001/memories?memoryId=m1&memoryType=SESSION_SUMMARY", "", "", ""},
		{"agent memory other agent", "rag", "GET", "/agents/AGENT00009/agentAliases/ALIAS00001/memories?memoryId=m1&memoryType=SESSION_SUMMARY", "",
			"apps[0].allow.agents", "AGENT00009/ALIAS00001"},
		{"operation not listed", "rag", "DELETE", "/agents/AGENT00001/agentAliases/ALIAS00001/memories", "",
			"apps[0].allow.operations", "DeleteAgentMemory"},
		{"star excludes agent ops", "star", "POST", "/knowledgebases/KB00000001/retrieve", `{"retrievalQuery":{"text":"q"}}`,
			"apps[1].allow.operations", `"*" does not include them`},
		{"retrieve", "rag", "POST", "/knowledgebases/KB00000001/retrieve", `{"retrievalQuery":{"text":"q"}}`, "", ""},
		{"retrieve other kb", "rag", "POST", "/knowledgebases/KB00000002/retrieve", `{"retrievalQuery":{"text":"q"}}`,
			"apps[0].allow.knowledge_bases", "knowledge base KB00000002 (the path)"},
		{"rag allowed", "rag", "POST", "/retrieveAndGenerate", sprintf(kbRAG, haiku), "", ""},
		{"rag model denied", "rag", "POST", "/retrieveAndGenerate", sprintf(kbRAG, "anthropic.claude-3-opus-20240229-v1:0"),
			"apps[0].allow.models", "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.modelArn"},
		{"rag model ARN denied", "rag", "POST", "/retrieveAndGenerate", sprintf(kbRAG, "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-opus-20240229-v1:0"),
			"apps[0].allow.models", "model not in allow.models"},
		{"rag model not an id", "rag", "POST", "/retrieveAndGenerate", sprintf(kbRAG, "not a model"),
			"apps[0].allow.models", "not a model id"},
		{"rag external S3 allowed", "rag", "POST", "/retrieveAndGenerate", sprintf(extRAG, "s3://rag-docs/team-a/doc.pdf"), "", ""},
		{"rag external S3 other prefix", "rag", "POST", "/retrieveAndGenerate", sprintf(extRAG, "s3://rag-docs/team-b/doc.pdf"),
			"apps[0].allow.s3_input_prefixes", "s3://rag-docs/team-b/doc.pdf"},
		{"rag external S3 prefix sibling", "rag", "POST", "/retrieveAndGenerate", sprintf(extRAG, "s3://rag-docs/team-a-evil/doc.pdf"),
			"apps[0].allow.s3_input_prefixes", "not under"},
		{"rag external S3 dot segment", "rag", "POST", "/retrieveAndGenerate", sprintf(extRAG, "s3://rag-docs/team-a/../team-b/x"),
			"apps[0].allow.s3_input_prefixes", "segment"},
		{"inline agent", "rag", "POST", "/agents/sess1", inline(""), "", ""},
		{"inline agent model denied", "rag", "POST", "/agents/sess1", strings.Replace(inline(""), haiku, "meta.llama3-70b-instruct-v1:0", 1),
			"apps[0].allow.models", "(foundationModel)"},
		{"inline collaborator model denied", "rag", "POST", "/agents/sess1",
			inline(`,"agentCollaboration":"SUPERVISOR","collaborators":[{"foundationModel":"meta.llama3-70b-instruct-v1:0","instruction":"sub agent instruction","agentName":"x"}]`),
			"apps[0].allow.models", "collaborators[0].foundationModel"},
		{"inline collaborator alias", "rag", "POST", "/agents/sess1",
			inline(`,"collaboratorConfigurations":[{"agentAliasArn":"arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT00001/ALIAS00001","collaboratorName":"c","collaboratorInstruction":"x"}]`), "", ""},
		{"inline collaborator alias denied", "rag", "POST", "/agents/sess1",
			inline(`,"collaboratorConfigurations":[{"agentAliasArn":"arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT00009/ALIAS00001","collaboratorName":"c","collaboratorInstruction":"x"}]`),
			"apps[0].allow.agents", "collaboratorConfigurations[0].agentAliasArn"},
		{"inline kb denied", "rag", "POST", "/agents/sess1", inline(`,"knowledgeBases":[{"knowledgeBaseId":"KB00000009","description":"d"}]`),
			"apps[0].allow.knowledge_bases", "knowledgeBases[0].knowledgeBaseId"},
		{"inline code interpreter denied", "rag", "POST", "/agents/sess1", inline(`,"actionGroups":[{"actionGroupName":"ci","parentActionGroupSignature":"AMAZON.CodeInterpreter"}]`),
			"apps[0].allow.builtin_tools", "AMAZON.CodeInterpreter"},
		{"inline user input allowed", "rag", "POST", "/agents/sess1", inline(`,"actionGroups":[{"actionGroupName":"ui","parentActionGroupSignature":"AMAZON.UserInput"}]`), "", ""},
		{"inline lambda allowed", "rag", "POST", "/agents/sess1",
			inline(`,"actionGroups":[{"actionGroupName":"l","actionGroupExecutor":{"lambda":"arn:aws:lambda:us-east-1:123456789012:function:team-a-tools"}}]`), "", ""},
		{"inline lambda denied", "rag", "POST", "/agents/sess1",
			inline(`,"actionGroups":[{"actionGroupName":"l","actionGroupExecutor":{"lambda":"arn:aws:lambda:us-east-1:123456789012:function:payroll"}}]`),
			"apps[0].allow.lambdas", "function:payroll"},
		{"inline agent file S3 denied", "rag", "POST", "/agents/sess1",
			inline(`,"inlineSessionState":{"files":[{"name":"f","useCase":"CHAT","source":{"sourceType":"S3","s3Location":{"uri":"s3://other/x.csv"}}}]}`),
			"apps[0].allow.s3_input_prefixes", "s3://other/x.csv"},
		{"flow", "rag", "POST", "/flows/FLOW000001/aliases/ALIAS00001", `{"inputs":[]}`, "", ""},
		{"flow draft alias not opted in", "rag", "POST", "/flows/FLOW000001/aliases/TSTALIASID", `{"inputs":[]}`,
			"apps[0].allow.unpinned_flows", "TSTALIASID"},
		{"flow other", "rag", "POST", "/flows/FLOW000002/aliases/ALIAS00001", `{"inputs":[]}`,
			"apps[0].allow.flows", "FLOW000002/ALIAS00001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := rag
			if tc.who == "star" {
				id = star
			}
			d := p.Decide(id, agentCall(t, tc.method, tc.path, tc.body))
			if tc.rule == "" {
				if !d.Allow {
					t.Fatalf("denied by %s: %s", d.Rule, d.Reason)
				}
				return
			}
			if d.Allow {
				t.Fatalf("allowed; want denied by %s", tc.rule)
			}
			if d.Rule != tc.rule || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("denied by %s: %q; want %s mentioning %q", d.Rule, d.Reason, tc.rule, tc.reason)
			}
		})
	}
}

func sprintf(format, arg string) string { return strings.Replace(format, "%s", arg, 1) }

// A test alias is refused by allow.unpinned_agents even where allow.agents
// lists the agent with "*".
func TestDecideAgentDraftAlias(t *testing.T) {
	p := mustPolicy(t, `
  - name: a
    match: {tags: {k8s.namespace: a}}
    allow: {operations: [InvokeAgent], agents: ["*"]}
`)
	d := p.Decide(tags("k8s.namespace=a!"), agentCall(t, "POST", "/agents/AGENT00001/agentAliases/TSTALIASID/sessions/s1/text", `{}`))
	if d.Allow || d.Rule != "apps[0].allow.unpinned_agents" || !strings.Contains(d.Reason, "DRAFT") {
		t.Fatalf("got %+v; want denied by allow.unpinned_agents", d)
	}
	// An agent call whose request was not read is denied.
	d = p.Decide(tags("k8s.namespace=a!"), Call{Op: bedrock.OpInvokeAgent})
	if d.Allow || !strings.Contains(d.Reason, "not read") {
		t.Fatalf("got %+v; want denied, request not read", d)
	}
}

func TestAgentPolicyValidation(t *testing.T) {
	head := "version: 1\nlisten: {endpoint: 127.0.0.1:8480}\napps:\n  - name: a\n    match: {tags: {k8s.namespace: n}}\n"
	cases := []struct {
		name, allow string
		want        []string
	}{
		{"valid", `{operations: [InvokeAgent, Retrieve], agents: ["A1/*"], knowledge_bases: ["*"], s3_input_prefixes: ["s3://b-1/x/"], builtin_tools: [AMAZON.CodeInterpreter]}`, nil},
		{"agent without alias", `{agents: [AGENT00001]}`, []string{"AGENT00001", "ID/ALIAS_ID"}},
		{"bad glob", `{knowledge_bases: ["[a]"]}`, []string{"allow.knowledge_bases"}},
		{"bad s3", `{s3_input_prefixes: ["s3://b/../x"]}`, []string{"allow.s3_input_prefixes"}},
		{"bad tool", `{builtin_tools: ["AMAZON Code"]}`, []string{"allow.builtin_tools"}},
		{"invoke agent without agents", `{operations: [InvokeAgent]}`, []string{"InvokeAgent", "allow.agents is empty"}},
		{"retrieve without kbs", `{operations: [Retrieve]}`, []string{"allow.knowledge_bases is empty"}},
		{"unknown op", `{operations: [InvokeAgents]}`, []string{"unknown operation \"InvokeAgents\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePolicy([]byte(head + "    allow: " + tc.allow + "\n"))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A top-level deny rule on a model holds for the models an agent-runtime
// body names, as it does for a runtime call's model.
func TestDenyRulesSeeAgentModels(t *testing.T) {
	cfg, err := parsePolicy([]byte(`
version: 1
upstream: {region: us-east-1}
deny:
  - {name: no-opus, models: ["anthropic.claude-3-opus*"]}
  - {name: no-eu, regions: ["eu-*"], operations: [RetrieveAndGenerate]}
apps:
  - name: a
    match: {tags: {k8s.namespace: a}}
    allow: {models: ["*"], profile_scopes: [us, eu], operations: [RetrieveAndGenerate], knowledge_bases: ["*"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg.Policy())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KB00000001","modelArn":"%s",` +
		`"orchestrationConfiguration":{"queryTransformationConfiguration":{"type":"QUERY_DECOMPOSITION"}}}}}`
	for _, tc := range []struct{ model, rule string }{
		{"anthropic.claude-3-5-haiku-20241022-v1:0", ""},
		{"anthropic.claude-3-opus-20240229-v1:0", "deny[0]"},
		{"us.anthropic.claude-3-opus-20240229-v1:0", "deny[0]"},
		{"arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", "deny[1]"},
		{"eu.anthropic.claude-3-5-haiku-20241022-v1:0", "deny[1]"},
	} {
		d := p.Decide(tags("k8s.namespace=a!"), agentCall(t, "POST", "/retrieveAndGenerate", sprintf(body, tc.model)))
		if tc.rule == "" && !d.Allow || tc.rule != "" && (d.Allow || d.Rule != tc.rule) {
			t.Errorf("%s: allow %v rule %s (%s); want rule %q", tc.model, d.Allow, d.Rule, d.Reason, tc.rule)
		}
	}
}

// What Warden does not apply to agent-runtime calls refuses them here, in
// policy, naming what is missing; a dry-run app's refusal stays dry-run.
func TestAgentUnsupported(t *testing.T) {
	allow := Decision{Allow: true, App: "a", Rule: "apps[0]", MaxBodyBytes: 7}
	capped := &AppConfig{Name: "a", Limits: AppLimitsConfig{MaxOutputTokens: 100}}
	guarded := &AppConfig{Name: "a", BedrockGuardrail: &BedrockGuardrailConfig{}}
	for _, tc := range []struct {
		name         string
		d            Decision
		app          *AppConfig
		tokenBudgets bool
		refused      bool
		reason       string
	}{
		{"nothing unsupported", allow, &AppConfig{Name: "a"}, false, false, ""},
		{"no app selected", Decision{}, capped, true, false, ""},
		{"caps", allow, capped, false, true, "warden: app a has limits.max_prompt_chars/max_output_tokens, which Warden does not apply to agent-runtime calls yet; operation InvokeAgent is refused rather than forwarded uncapped or unmetered"},
		{"guardrail and budgets", allow, guarded, true, true, "warden: app a has bedrock_guardrail, token or cost budgets, which"},
		{"budgets only, no app config", allow, nil, true, true, "warden: app a has token or cost budgets, which"},
		{"dry-run", Decision{Allow: true, DryRun: true, App: "a"}, capped, false, true, "warden: app a has limits."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deny, refused := AgentUnsupported(tc.d, tc.app, tc.tokenBudgets, bedrock.OpInvokeAgent)
			if refused != tc.refused {
				t.Fatalf("refused = %v, want %v (%+v)", refused, tc.refused, deny)
			}
			if !refused {
				if deny != tc.d {
					t.Errorf("decision changed without a refusal: %+v, want %+v", deny, tc.d)
				}
				return
			}
			if deny.Allow || deny.Rule != "agent-runtime.unsupported" || deny.App != tc.d.App || deny.DryRun != tc.d.DryRun ||
				deny.MaxBodyBytes != tc.d.MaxBodyBytes || !strings.HasPrefix(deny.Reason, tc.reason) {
				t.Errorf("got %+v, want a denial by agent-runtime.unsupported for %q, dry-run %v, reason %q…", deny, tc.d.App, tc.d.DryRun, tc.reason)
			}
		})
	}
}
