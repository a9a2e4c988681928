package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/document"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// Guards on the agent runtime, through the real bedrockagentruntime client:
// input guards read inputText, session attributes and retrieval queries;
// output guards read the agent's chunks (held back across chunks), the
// RetrieveAndGenerate answer and its stream, and retrieved passages.

const agentGuardDefs = `guards:
  ssn-block: {pii: {types: [US_SOCIAL_SECURITY_NUMBER], action: block}}
  email-mask: {pii: {types: [EMAIL], action: mask}}
  card-block: {pii: {types: [CREDIT_DEBIT_CARD_NUMBER], action: block}, applies_to: [output]}
  card-mask: {pii: {types: [CREDIT_DEBIT_CARD_NUMBER], action: mask}, applies_to: [output]}
  ssn-out: {pii: {types: [US_SOCIAL_SECURITY_NUMBER], action: block}, applies_to: [output]}
`

// agentGuardEnv is Warden with agentPolicy and the app's guards, in front
// of an emulator answering *reply cut by deltas (nil: the emulator's own
// cut) and serving passages for KB00000001.
func agentGuardEnv(t *testing.T, guards string, reply *string, deltas func(string) []string, passages []bedrocktest.Passage) (*env, *[]string) {
	t.Helper()
	var prompts []string
	cfg := bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Profiles:    map[string]string{appProfile: haiku},
		Reply: func(_, _, prompt string) string {
			prompts = append(prompts, prompt)
			if reply == nil {
				return "Hello from the agent."
			}
			return *reply
		},
		KnowledgeBases: map[string][]bedrocktest.Passage{"KB00000001": passages},
	}
	if deltas != nil {
		cfg.Deltas = func(_, text string) []string { return deltas(text) }
	}
	emu := bedrocktest.NewServer(cfg)
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	p := agentPolicy + "    guards: " + guards + "\n" + agentGuardDefs
	p = strings.ReplaceAll(p, "${UPSTREAM}", emu.URL)
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	return e, &prompts
}

func invokeAgentText(t *testing.T, c *bar.Client, in *bar.InvokeAgentInput) (string, error) {
	t.Helper()
	out, err := c.InvokeAgent(context.Background(), in)
	if err != nil {
		return "", err
	}
	st := out.GetStream()
	defer st.Close()
	var sb strings.Builder
	for ev := range st.Events() {
		if ch, ok := ev.(*bt.ResponseStreamMemberChunk); ok {
			sb.Write(ch.Value.Bytes)
		}
	}
	return sb.String(), st.Err()
}

func agentInput(text string) *bar.InvokeAgentInput {
	return &bar.InvokeAgentInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		SessionId: aws.String("sess-1"), InputText: aws.String(text)}
}

// An SSN in inputText, in a session attribute or in a retrieval query is
// refused with AccessDeniedException before anything is forwarded; an
// email is masked in what the agent receives.
func TestAgentGuardInput(t *testing.T) {
	e, prompts := agentGuardEnv(t, "[ssn-block, email-mask]", nil, nil, nil)
	c := e.agentClient()
	ctx := context.Background()
	const ssn = "123-45-6789"
	withAttr := agentInput("what is my balance")
	withAttr.SessionState = &bt.SessionState{SessionAttributes: map[string]string{"customer": "ssn " + ssn}}
	for name, call := range map[string]func() error{
		"inputText":         func() error { _, err := invokeAgentText(t, c, agentInput("my ssn is "+ssn)); return err },
		"sessionAttributes": func() error { _, err := invokeAgentText(t, c, withAttr); return err },
		"Retrieve query": func() error {
			_, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB00000001"),
				RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("records for " + ssn)}})
			return err
		},
		"RetrieveAndGenerate input": func() error {
			_, err := c.RetrieveAndGenerate(ctx, &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("is " + ssn + " mine")},
				RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
					KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB00000001"), ModelArn: aws.String(haiku)}}})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			before, n := len(e.emu.Calls()), len(e.audit.wait(t, 0))
			err := call()
			var ad *bt.AccessDeniedException
			if !errors.As(err, &ad) || !strings.Contains(ad.ErrorMessage(), "guard ssn-block") || !strings.Contains(ad.ErrorMessage(), "US_SOCIAL_SECURITY_NUMBER") ||
				strings.Contains(ad.ErrorMessage(), ssn) {
				t.Fatalf("got %v; want AccessDeniedException naming the guard and the type, not the value", err)
			}
			if r := e.audit.wait(t, n+1)[n]; r.Decision != "deny" || r.Rule != "guards.ssn-block" {
				t.Fatalf("record decision %q rule %q", r.Decision, r.Rule)
			}
			if got := len(e.emu.Calls()); got != before {
				t.Fatalf("%d calls reached the upstream", got-before)
			}
		})
	}
	t.Run("mask", func(t *testing.T) {
		if _, err := invokeAgentText(t, c, agentInput("mail jo.smith@example.com the summary")); err != nil {
			t.Fatal(err)
		}
		if got := (*prompts)[len(*prompts)-1]; got != "mail {EMAIL} the summary" {
			t.Fatalf("the agent received %q", got)
		}
	})
}

// A card number in the agent's answer, streamed in 2-byte chunks: under
// block the stream ends with an AccessDeniedException and no 4 characters
// of the number reach the app; under mask the app reads the placeholder.
// The same for RetrieveAndGenerateStream's output events.
func TestAgentGuardStreamedCard(t *testing.T) {
	const card = "4111 1111 1111 1111"
	reply := "Your card is " + card + ", keep it safe."
	two := func(s string) []string { return tokens(s, 2) }
	ragStream := func(c *bar.Client) (string, error) {
		out, err := c.RetrieveAndGenerateStream(context.Background(), &bar.RetrieveAndGenerateStreamInput{
			Input: &bt.RetrieveAndGenerateInput{Text: aws.String("my card")},
			RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
				KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB00000001"), ModelArn: aws.String(haiku)}}})
		if err != nil {
			return "", err
		}
		st := out.GetStream()
		defer st.Close()
		var sb strings.Builder
		for ev := range st.Events() {
			if o, ok := ev.(*bt.RetrieveAndGenerateStreamResponseOutputMemberOutput); ok {
				sb.WriteString(aws.ToString(o.Value.Text))
			}
		}
		return sb.String(), st.Err()
	}
	for _, op := range []string{"InvokeAgent", "RetrieveAndGenerateStream"} {
		for _, action := range []string{"block", "mask"} {
			t.Run(op+"/"+action, func(t *testing.T) {
				e, _ := agentGuardEnv(t, "[card-"+action+"]", &reply, two, nil)
				c := e.agentClient()
				var got string
				var err error
				if op == "InvokeAgent" {
					got, err = invokeAgentText(t, c, agentInput("what is my card"))
				} else {
					got, err = ragStream(c)
				}
				for i := 0; i+4 <= len(card); i++ {
					if strings.Contains(got, card[i:i+4]) {
						t.Fatalf("the app read %q, which holds %q of the card", got, card[i:i+4])
					}
				}
				r := e.audit.wait(t, 1)[0]
				if action == "block" {
					var ad *bt.AccessDeniedException
					if !errors.As(err, &ad) || !strings.Contains(ad.ErrorMessage(), "guard card-block") {
						t.Fatalf("stream error %v (%T); want AccessDeniedException naming the guard", err, err)
					}
					if r.Decision != "deny" || r.Rule != "guards.card-block" {
						t.Fatalf("record decision %q rule %q", r.Decision, r.Rule)
					}
					return
				}
				if err != nil {
					t.Fatalf("stream: %v", err)
				}
				if got != "Your card is {CREDIT_DEBIT_CARD_NUMBER}, keep it safe." {
					t.Fatalf("masked answer %q", got)
				}
				if len(findingsOf(r, "card-mask")) == 0 {
					t.Fatalf("record findings %+v", r.Findings)
				}
			})
		}
	}
}

// RetrieveAndGenerate's answer and citations, and Retrieve's passages, are
// read by the output guards: an SSN blocks the answer, an email in a
// retrieved passage is masked.
func TestAgentGuardRetrieveOutput(t *testing.T) {
	reply := "The customer's SSN is 123-45-6789."
	passages := []bedrocktest.Passage{{Text: "Contact jo.smith@example.com for access.", URI: "s3://kb-docs/contacts.md"}}
	e, _ := agentGuardEnv(t, "[ssn-block, email-mask]", &reply, nil, passages)
	c := e.agentClient()
	ctx := context.Background()
	rag := &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("who is the customer")},
		RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
			KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB00000001"), ModelArn: aws.String(haiku)}}}
	_, err := c.RetrieveAndGenerate(ctx, rag)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), "guard ssn-block") {
		t.Fatalf("RetrieveAndGenerate: %v; want AccessDeniedException from ssn-block", err)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "deny" || r.Rule != "guards.ssn-block" {
		t.Fatalf("record decision %q rule %q", r.Decision, r.Rule)
	}
	reply = "Ask the team that owns the document."
	out, err := c.RetrieveAndGenerate(ctx, rag)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Citations) == 0 || len(out.Citations[0].RetrievedReferences) == 0 ||
		aws.ToString(out.Citations[0].RetrievedReferences[0].Content.Text) != "Contact {EMAIL} for access." {
		t.Fatalf("citations %+v", out.Citations)
	}
	res, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB00000001"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("access")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RetrievalResults) != 1 || aws.ToString(res.RetrievalResults[0].Content.Text) != "Contact {EMAIL} for access." {
		t.Fatalf("Retrieve results %+v", res.RetrievalResults)
	}
}

// An inline agent's returnControl event (the function call the app must
// run, its parameters taken from the conversation) is read by the output
// guards: an SSN in it ends the stream with AccessDeniedException before
// the event reaches the app. In dry-run the same stream is forwarded and
// the record says what would have been denied.
func TestAgentGuardReturnControl(t *testing.T) {
	for _, mode := range []string{"enforce", "dry-run"} {
		t.Run(mode, func(t *testing.T) {
			var e *env
			if mode == "dry-run" {
				e = agentGuardEnvDryRun(t, "[ssn-out]")
			} else {
				e, _ = agentGuardEnv(t, "[ssn-out]", nil, nil, nil)
			}
			out, err := e.agentClient().InvokeInlineAgent(context.Background(), &bar.InvokeInlineAgentInput{SessionId: aws.String("inline-1"),
				FoundationModel: aws.String(haiku), Instruction: aws.String("look customers up with the find function and answer briefly"),
				InputText: aws.String("find the customer with SSN 123-45-6789"),
				ActionGroups: []bt.AgentActionGroup{{ActionGroupName: aws.String("lookup"),
					ActionGroupExecutor: &bt.ActionGroupExecutorMemberCustomControl{Value: bt.CustomControlMethodReturnControl},
					FunctionSchema: &bt.FunctionSchemaMemberFunctions{Value: []bt.FunctionDefinition{{Name: aws.String("find"),
						Parameters: map[string]bt.ParameterDetail{"query": {Type: bt.ParameterTypeString}}}}}}}})
			if err != nil {
				t.Fatalf("InvokeInlineAgent: %v", err)
			}
			st := out.GetStream()
			defer st.Close()
			got := 0
			for ev := range st.Events() {
				if _, ok := ev.(*bt.InlineAgentResponseStreamMemberReturnControl); ok {
					got++
				}
			}
			r := e.audit.wait(t, 1)[0]
			var ad *bt.AccessDeniedException
			if mode == "enforce" {
				if got != 0 || !errors.As(st.Err(), &ad) || r.Decision != "deny" || r.Rule != "guards.ssn-out" {
					t.Fatalf("%d returnControl events reached the app, stream error %v, record %q %q", got, st.Err(), r.Decision, r.Rule)
				}
				return
			}
			if got != 1 || st.Err() != nil || r.Decision != "dry-run-deny" || r.Rule != "guards.ssn-out" {
				t.Fatalf("dry-run: %d returnControl events, stream error %v, record %q %q", got, st.Err(), r.Decision, r.Rule)
			}
		})
	}
}

// agentGuardEnvDryRun is agentGuardEnv with the app in dry-run mode.
func agentGuardEnvDryRun(t *testing.T, guards string) *env {
	t.Helper()
	p := strings.Replace(agentPolicy, "    allow_weak_identity: true", "    mode: dry-run\n    allow_weak_identity: true", 1)
	p += "    guards: " + guards + "\n" + agentGuardDefs
	return startEnv(t, withPolicy(p))
}

// A flow's input documents are read by the input guards and its output
// documents by the output guards.
func TestAgentGuardFlow(t *testing.T) {
	reply := "Write to jo.smith@example.com."
	var prompts []string
	emu := bedrocktest.NewServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{wardenKey: wardenSecret},
		Reply: func(_, _, prompt string) string { prompts = append(prompts, prompt); return reply }})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	p := strings.Replace(agentPolicy, "operations: [Converse,", "operations: [InvokeFlow, Converse,", 1)
	p += "      flows: [\"FLOW000001/ALIAS00001\"]\n    guards: [ssn-block, email-mask]\n" + agentGuardDefs
	p = strings.ReplaceAll(strings.ReplaceAll(p, "${UPSTREAM}", emu.URL), "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	c := e.agentClient()
	flow := func(doc map[string]any) (string, error) {
		out, err := c.InvokeFlow(context.Background(), &bar.InvokeFlowInput{FlowIdentifier: aws.String("FLOW000001"), FlowAliasIdentifier: aws.String("ALIAS00001"),
			Inputs: []bt.FlowInput{{NodeName: aws.String("FlowInputNode"), NodeOutputName: aws.String("document"),
				Content: &bt.FlowInputContentMemberDocument{Value: document.NewLazyDocument(doc)}}}})
		if err != nil {
			return "", err
		}
		st := out.GetStream()
		defer st.Close()
		var sb strings.Builder
		for ev := range st.Events() {
			if o, ok := ev.(*bt.FlowResponseStreamMemberFlowOutputEvent); ok {
				if d, ok := o.Value.Content.(*bt.FlowOutputContentMemberDocument); ok {
					var s string
					if err := d.Value.UnmarshalSmithyDocument(&s); err != nil {
						return "", err
					}
					sb.WriteString(s)
				}
			}
		}
		return sb.String(), st.Err()
	}
	_, err := flow(map[string]any{"customer": map[string]any{"ssn": "123-45-6789"}})
	var ad *bt.AccessDeniedException
	if !errors.As(err, &ad) || !strings.Contains(ad.ErrorMessage(), "guard ssn-block") || len(emu.Calls()) != 0 {
		t.Fatalf("SSN in a flow input: %v, %d upstream calls; want AccessDeniedException before forwarding", err, len(emu.Calls()))
	}
	got, err := flow(map[string]any{"question": "mail ann@example.org please"})
	if err != nil {
		t.Fatal(err)
	}
	if len(prompts) != 1 || prompts[0] != "mail {EMAIL} please" {
		t.Fatalf("the flow received %q", prompts)
	}
	if got != "Write to {EMAIL}." {
		t.Fatalf("flow output %q", got)
	}
}
