package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// agentPolicy serves both runtimes on one endpoint listener, the agent
// runtime's upstream being the same emulator.
const agentPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", agent_runtime_url: "${UPSTREAM}", insecure: true, signing: resign}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: rag, env: prod}
apps:
  - name: rag-prod
    allow_weak_identity: true
    match: {tags: {app: rag, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse, InvokeAgent, InvokeInlineAgent, Retrieve, RetrieveAndGenerate, RetrieveAndGenerateStream]
      agents: ["AGENT00001/ALIAS00001"]
      knowledge_bases: ["KB00000001"]
      s3_input_prefixes: ["s3://rag-docs/team-a/"]
`

// agentClient is the real bedrockagentruntime client pointed at Warden, as
// an app would be with AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME, signing with
// the app's key (which the emulator refuses: only Warden's re-signing gets
// a call through).
func (e *env) agentClient() *bar.Client {
	return bar.New(bar.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(nil),
	})
}

func TestAgentRuntimeEndToEnd(t *testing.T) {
	e := startEnv(t, withPolicy(agentPolicy))
	c := e.agentClient()
	ctx := context.Background()

	// Allowed: InvokeAgent, streamed back event by event.
	out, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		SessionId: aws.String("sess-1"), InputText: aws.String("why is the sky blue")})
	if err != nil {
		t.Fatalf("InvokeAgent: %v", err)
	}
	var text strings.Builder
	chunks := 0
	st := out.GetStream()
	for ev := range st.Events() {
		if ch, ok := ev.(*bt.ResponseStreamMemberChunk); ok {
			text.Write(ch.Value.Bytes)
			chunks++
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if !strings.Contains(text.String(), "You sent 19 characters to AGENT00001") || chunks < 2 {
		t.Fatalf("InvokeAgent answer %q in %d chunks", text.String(), chunks)
	}
	recs := e.audit.wait(t, 1)
	r := recs[0]
	if r.Decision != "allow" || r.Operation != "InvokeAgent" || r.Agent == nil || r.Agent.AgentID != "AGENT00001" ||
		r.Agent.AgentAliasID != "ALIAS00001" || r.Agent.SessionID != "sess-1" || r.Path.Upstream == "" {
		t.Fatalf("record %+v agent %+v", r, r.Agent)
	}
	calls := e.emu.Calls()
	if len(calls) != 1 || calls[0].Op != bedrocktest.OpInvokeAgent || !calls[0].SignatureOK || calls[0].AccessKeyID != wardenKey {
		t.Fatalf("upstream saw %+v", calls)
	}

	denied := func(name string, call func() error, rule, reason string) {
		t.Helper()
		before := len(e.emu.Calls())
		n := len(e.audit.wait(t, 0))
		err := call()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), reason) {
			t.Fatalf("%s: got %v; want AccessDeniedException mentioning %q", name, err, reason)
		}
		rec := e.audit.wait(t, n+1)[n]
		if rec.Decision != "deny" || rec.Rule != rule {
			t.Fatalf("%s: record decision %q rule %q; want deny by %s", name, rec.Decision, rec.Rule, rule)
		}
		if got := len(e.emu.Calls()); got != before {
			t.Fatalf("%s: %d calls reached the upstream", name, got-before)
		}
	}
	// Denied by the agent alias: the path names one the app does not list.
	denied("InvokeAgent other alias", func() error {
		_, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("TSTALIASID"),
			SessionId: aws.String("sess-1"), InputText: aws.String("hi")})
		return err
	}, "apps[0].allow.agents", "AGENT00001/TSTALIASID")

	rag := func(model string, src *bt.ExternalSource) *bar.RetrieveAndGenerateInput {
		in := &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("what is warden")}}
		if src != nil {
			in.RetrieveAndGenerateConfiguration = &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeExternalSources,
				ExternalSourcesConfiguration: &bt.ExternalSourcesRetrieveAndGenerateConfiguration{ModelArn: aws.String(model), Sources: []bt.ExternalSource{*src}}}
			return in
		}
		in.RetrieveAndGenerateConfiguration = &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
			KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB00000001"), ModelArn: aws.String(model)}}
		return in
	}
	// Allowed RetrieveAndGenerate over the listed knowledge base.
	n := len(e.audit.wait(t, 0))
	if _, err := c.RetrieveAndGenerate(ctx, rag("arn:aws:bedrock:us-east-1::foundation-model/"+haiku, nil)); err != nil {
		t.Fatalf("RetrieveAndGenerate: %v", err)
	}
	if r := e.audit.wait(t, n+1)[n]; r.Decision != "allow" || r.Agent == nil || len(r.Agent.KnowledgeBases) != 1 || r.Agent.KnowledgeBases[0] != "KB00000001" ||
		len(r.Agent.Models) != 1 {
		t.Fatalf("RetrieveAndGenerate record %+v agent %+v", r, r.Agent)
	}
	// Denied by the model embedded in its generation configuration.
	denied("RetrieveAndGenerate model", func() error {
		_, err := c.RetrieveAndGenerate(ctx, rag("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-opus-20240229-v1:0", nil))
		return err
	}, "apps[0].allow.models", "knowledgeBaseConfiguration.modelArn")
	// Denied by the S3 object Bedrock would read with Warden's credentials.
	denied("RetrieveAndGenerate S3", func() error {
		_, err := c.RetrieveAndGenerate(ctx, rag(haiku, &bt.ExternalSource{SourceType: bt.ExternalSourceTypeS3,
			S3Location: &bt.S3ObjectDoc{Uri: aws.String("s3://rag-docs/team-b/secret.pdf")}}))
		return err
	}, "apps[0].allow.s3_input_prefixes", "s3://rag-docs/team-b/secret.pdf")
	// Listed "*"-free: an operation the app does not name is denied.
	denied("Retrieve other KB", func() error {
		_, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB00000002"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("q")}})
		return err
	}, "apps[0].allow.knowledge_bases", "KB00000002")
	// RetrieveAndGenerateStream and InvokeInlineAgent, streamed through.
	rs, err := c.RetrieveAndGenerateStream(ctx, &bar.RetrieveAndGenerateStreamInput{Input: rag(haiku, nil).Input,
		RetrieveAndGenerateConfiguration: rag(haiku, nil).RetrieveAndGenerateConfiguration})
	if err != nil {
		t.Fatalf("RetrieveAndGenerateStream: %v", err)
	}
	var streamed strings.Builder
	for ev := range rs.GetStream().Events() {
		if o, ok := ev.(*bt.RetrieveAndGenerateStreamResponseOutputMemberOutput); ok {
			streamed.WriteString(aws.ToString(o.Value.Text))
		}
	}
	if err := rs.GetStream().Err(); err != nil || streamed.Len() == 0 {
		t.Fatalf("RetrieveAndGenerateStream: %q, %v", streamed.String(), err)
	}
	ia, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: aws.String("sess-2"), FoundationModel: aws.String(haiku),
		Instruction: aws.String("answer questions about Warden briefly and in plain words"), InputText: aws.String("hello")})
	if err != nil {
		t.Fatalf("InvokeInlineAgent: %v", err)
	}
	inline := 0
	for ev := range ia.GetStream().Events() {
		if _, ok := ev.(*bt.InlineAgentResponseStreamMemberChunk); ok {
			inline++
		}
	}
	if err := ia.GetStream().Err(); err != nil || inline == 0 {
		t.Fatalf("InvokeInlineAgent: %d chunks, %v", inline, err)
	}
	denied("InvokeInlineAgent collaborator model", func() error {
		_, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: aws.String("sess-2"), FoundationModel: aws.String(haiku),
			Instruction: aws.String("answer questions about Warden briefly and in plain words"), InputText: aws.String("hello"),
			AgentCollaboration: bt.AgentCollaborationSupervisor,
			Collaborators:      []bt.Collaborator{{FoundationModel: aws.String("meta.llama3-70b-instruct-v1:0"), Instruction: aws.String("a sub-agent that helps with questions about Warden policy"), AgentName: aws.String("helper")}}})
		return err
	}, "apps[0].allow.models", "collaborators[0].foundationModel")
	denied("InvokeFlow not listed", func() error {
		_, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: aws.String("FLOW000001"), FlowAliasIdentifier: aws.String("ALIAS00001"),
			Inputs: []bt.FlowInput{}})
		return err
	}, "apps[0].allow.operations", "InvokeFlow")
}

// upstream.agent_runtime_url accepts only agent-runtime hosts (a runtime
// host, or anything else, would receive Warden's signed agent calls).
func TestAgentRuntimeURLValidation(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"", false, true},
		{"https://bedrock-agent-runtime.us-east-1.amazonaws.com", false, true},
		{"https://vpce-0abc123-xyz.bedrock-agent-runtime.us-east-1.vpce.amazonaws.com", false, true},
		{"https://bedrock-runtime.us-east-1.amazonaws.com", false, false},
		{"https://bedrock-agent-runtime.us-east-1.amazonaws.com.evil.com", false, false},
		{"http://bedrock-agent-runtime.us-east-1.amazonaws.com", false, false},
		{"http://127.0.0.1:9999", true, true},
	} {
		policy := strings.Replace(basePolicy, "${CONTROL_PLANE}", "http://127.0.0.1:1", 1)
		policy = strings.Replace(policy, `url: "${UPSTREAM}", insecure: true`,
			`url: "https://bedrock-runtime.us-east-1.amazonaws.com", agent_runtime_url: "`+tc.url+`", insecure: `+map[bool]string{true: "true", false: "false"}[tc.insecure], 1)
		cfg, err := config.ParseConfig([]byte(policy))
		if err == nil {
			_, err = proxy.New(context.Background(), proxy.Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), Audit: newRecorder()})
		}
		if (err == nil) != tc.ok {
			t.Errorf("agent_runtime_url %q insecure %v: err %v, want ok=%v", tc.url, tc.insecure, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "agent_runtime_url") && !strings.Contains(err.Error(), "agent runtime") {
			t.Errorf("error does not name the key: %v", err)
		}
	}
}

// An app with caps, an attached guardrail or token budgets gets its
// agent-runtime calls refused, not forwarded uncapped or unmetered: Warden
// does not apply those to agent bodies and answers yet (guards it does:
// agent_guard_test.go).
func TestAgentRuntimeRefusedWhenGuarded(t *testing.T) {
	for name, extra := range map[string]string{
		"caps": `    limits: {max_prompt_chars: 10000}
`,
		"token budget": `    budgets: {tokens_per_day: 1000000}
    limits: {max_output_tokens: 1000}
`,
	} {
		t.Run(name, func(t *testing.T) { agentRefusedWith(t, extra) })
	}
}

func agentRefusedWith(t *testing.T, extra string) {
	e := startEnv(t, withPolicy(agentPolicy+extra))
	_, err := e.agentClient().InvokeAgent(context.Background(), &bar.InvokeAgentInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		SessionId: aws.String("sess-1"), InputText: aws.String("my ssn is 123-45-6789")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), "does not apply to agent-runtime calls yet") {
		t.Fatalf("got %v; want AccessDeniedException saying what does not apply yet", err)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "deny" || r.Rule != "agent-runtime.unsupported" {
		t.Fatalf("record decision %q rule %q", r.Decision, r.Rule)
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("%d calls reached the upstream", n)
	}
}
