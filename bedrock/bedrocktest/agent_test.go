package bedrocktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/document"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"
)

const (
	haiku       = "anthropic.claude-3-5-haiku-20241022-v1:0"
	haikuARN    = "arn:aws:bedrock:us-east-1::foundation-model/" + haiku
	instruction = "You are a helpful assistant that answers briefly and politely."
)

func newAgentServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Credentials = map[string]string{testAKID: testSecret}
	cfg.Logf = TestLogf(t)
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

func agentClient(s *Server, akid, secret string) *bar.Client {
	return bar.New(bar.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       BufferedClient(nil),
	})
}

// agentStream collects an InvokeAgent stream: the text of its chunks and
// its other events.
type agentStream struct {
	text      string
	chunks    int
	traces    []*bt.ResponseStreamMemberTrace
	control   *bt.ResponseStreamMemberReturnControl
	files     *bt.ResponseStreamMemberFiles
	citations []bt.Citation
}

func readAgent(t *testing.T, out *bar.InvokeAgentOutput) agentStream {
	t.Helper()
	st := out.GetStream()
	defer st.Close()
	var a agentStream
	for ev := range st.Events() {
		switch v := ev.(type) {
		case *bt.ResponseStreamMemberChunk:
			a.text += string(v.Value.Bytes)
			a.chunks++
			if v.Value.Attribution != nil {
				a.citations = append(a.citations, v.Value.Attribution.Citations...)
			}
		case *bt.ResponseStreamMemberTrace:
			a.traces = append(a.traces, v)
		case *bt.ResponseStreamMemberReturnControl:
			a.control = v
		case *bt.ResponseStreamMemberFiles:
			a.files = v
		default:
			t.Fatalf("unexpected event %T", ev)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return a
}

func TestAgentInvokeAgent(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{
		Agents: map[string]Agent{
			"AGENT12345": {KnowledgeBaseID: "KB12345678", Files: true},
			"RC12345678": {ReturnControl: true, Aliases: []string{"ALIAS12345"}},
		},
		KnowledgeBases: map[string][]Passage{"KB12345678": {{Text: "The sky is blue.", URI: "s3://docs/sky.txt"}}},
		Reply:          func(op, model, prompt string) string { return op + " " + model + " says: " + prompt },
	})
	c := agentClient(s, testAKID, testSecret)

	out, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT12345"), AgentAliasId: aws.String("TSTALIASID"),
		SessionId: aws.String("sess-1"), InputText: aws.String("why is the sky blue"), EnableTrace: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.SessionId) != "sess-1" || aws.ToString(out.ContentType) != "application/json" {
		t.Errorf("headers: session %q content type %q", aws.ToString(out.SessionId), aws.ToString(out.ContentType))
	}
	a := readAgent(t, out)
	if a.text != "InvokeAgent AGENT12345 says: why is the sky blue" || a.chunks < 2 {
		t.Errorf("text %q in %d chunks", a.text, a.chunks)
	}
	if len(a.traces) != 4 || aws.ToString(a.traces[0].Value.AgentId) != "AGENT12345" {
		t.Errorf("traces %+v", a.traces)
	} else if o, ok := a.traces[0].Value.Trace.(*bt.TraceMemberOrchestrationTrace); !ok {
		t.Errorf("trace %T", a.traces[0].Value.Trace)
	} else if mi, ok := o.Value.(*bt.OrchestrationTraceMemberModelInvocationInput); !ok || aws.ToString(mi.Value.Text) != "why is the sky blue" || aws.ToString(mi.Value.FoundationModel) != defaultAgentModel {
		t.Errorf("orchestration trace %#v", o.Value)
	}
	// The model invocations' usage, as the SDK reads it, sums to the
	// advertised totals.
	var in, outTok int32
	for _, tr := range a.traces {
		var mo *bt.Metadata
		switch v := tr.Value.Trace.(type) {
		case *bt.TraceMemberOrchestrationTrace:
			if o, ok := v.Value.(*bt.OrchestrationTraceMemberModelInvocationOutput); ok {
				mo = o.Value.Metadata
			}
		case *bt.TraceMemberPreProcessingTrace:
			if o, ok := v.Value.(*bt.PreProcessingTraceMemberModelInvocationOutput); ok {
				mo = o.Value.Metadata
			}
		}
		if mo != nil && mo.Usage != nil {
			in += aws.ToInt32(mo.Usage.InputTokens)
			outTok += aws.ToInt32(mo.Usage.OutputTokens)
		}
	}
	if in != AgentTraceInputTokens || outTok != AgentTraceOutputTokens {
		t.Errorf("traces' usage %d in, %d out; want %d, %d", in, outTok, AgentTraceInputTokens, AgentTraceOutputTokens)
	}
	if len(a.citations) != 1 || len(a.citations[0].RetrievedReferences) != 1 ||
		aws.ToString(a.citations[0].RetrievedReferences[0].Content.Text) != "The sky is blue." {
		t.Errorf("citations %+v", a.citations)
	} else if loc := a.citations[0].RetrievedReferences[0].Location; loc == nil || aws.ToString(loc.S3Location.Uri) != "s3://docs/sky.txt" {
		t.Errorf("location %+v", loc)
	}
	if a.files == nil || len(a.files.Value.Files) != 1 || string(a.files.Value.Files[0].Bytes) != "n,square\n2,4\n" {
		t.Errorf("files %+v", a.files)
	}
	c0 := lastCall(t, s)
	if c0.Op != OpInvokeAgent || !c0.SignatureOK || c0.IDs["agentId"] != "AGENT12345" || c0.IDs["agentAliasId"] != "TSTALIASID" || c0.IDs["sessionId"] != "sess-1" {
		t.Errorf("call %+v", c0)
	}

	// Return of control: a function call first, the answer once results come back.
	out, err = c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("RC12345678"), AgentAliasId: aws.String("ALIAS12345"),
		SessionId: aws.String("sess-2"), InputText: aws.String("look it up")})
	if err != nil {
		t.Fatal(err)
	}
	a = readAgent(t, out)
	if a.control == nil || a.text != "" || len(a.control.Value.InvocationInputs) != 1 {
		t.Fatalf("return control: %+v, text %q", a.control, a.text)
	}
	fi, ok := a.control.Value.InvocationInputs[0].(*bt.InvocationInputMemberMemberFunctionInvocationInput)
	if !ok || aws.ToString(fi.Value.Function) != "find" || aws.ToString(fi.Value.Parameters[0].Value) != "look it up" {
		t.Errorf("invocation input %#v", a.control.Value.InvocationInputs[0])
	}
	out, err = c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("RC12345678"), AgentAliasId: aws.String("ALIAS12345"),
		SessionId: aws.String("sess-2"), SessionState: &bt.SessionState{InvocationId: a.control.Value.InvocationId,
			ReturnControlInvocationResults: []bt.InvocationResultMember{&bt.InvocationResultMemberMemberFunctionResult{Value: bt.FunctionResult{
				ActionGroup: aws.String("lookup"), Function: aws.String("find"),
				ResponseBody: map[string]bt.ContentBody{"TEXT": {Body: aws.String("42")}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a = readAgent(t, out); a.control != nil || !strings.HasPrefix(a.text, "InvokeAgent RC12345678 says") {
		t.Errorf("after results: control %+v, text %q", a.control, a.text)
	}

	// Unknown agents and aliases.
	var nf *bt.ResourceNotFoundException
	for _, in := range []*bar.InvokeAgentInput{
		{AgentId: aws.String("NOSUCH1234"), AgentAliasId: aws.String("TSTALIASID"), SessionId: aws.String("s1"), InputText: aws.String("x")},
		{AgentId: aws.String("RC12345678"), AgentAliasId: aws.String("OTHER12345"), SessionId: aws.String("s1"), InputText: aws.String("x")},
	} {
		if _, err := c.InvokeAgent(ctx, in); !errors.As(err, &nf) {
			t.Errorf("%s/%s: %v, want ResourceNotFoundException", *in.AgentId, *in.AgentAliasId, err)
		}
	}
	// A bad signature is refused before anything else.
	if _, err := agentClient(s, testAKID, "wrong").InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT12345"),
		AgentAliasId: aws.String("TSTALIASID"), SessionId: aws.String("s1"), InputText: aws.String("x")}); err == nil {
		t.Error("a bad signature was accepted")
	}
	if c := lastCall(t, s); c.SignatureOK || c.AuthError == "" {
		t.Errorf("bad signature recorded as %+v", c)
	}
}

func TestAgentInvokeAgentFaults(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{})
	c := agentClient(s, testAKID, testSecret)
	s.Inject(Fault{Op: OpInvokeAgent, MidStreamException: "throttlingException", Message: "slow down"})
	out, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("A"), AgentAliasId: aws.String("B"), SessionId: aws.String("s1"), InputText: aws.String("hello there")})
	if err != nil {
		t.Fatal(err)
	}
	st := out.GetStream()
	n := 0
	for range st.Events() {
		n++
	}
	st.Close()
	var te *bt.ThrottlingException
	if n != 1 || !errors.As(st.Err(), &te) || te.ErrorMessage() != "slow down" {
		t.Errorf("%d events, err %T %v", n, st.Err(), st.Err())
	}
	s.Inject(Fault{Op: OpRetrieve, Status: 429})
	if _, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB1"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("q")}}); !errors.As(err, &te) {
		t.Errorf("Retrieve: %v, want ThrottlingException", err)
	}
}

func TestAgentInvokeInlineAgent(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{})
	c := agentClient(s, testAKID, testSecret)
	out, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{
		SessionId: aws.String("inline-1"), FoundationModel: aws.String(haiku), Instruction: aws.String(instruction),
		InputText: aws.String("compute squares"),
		ActionGroups: []bt.AgentActionGroup{
			{ActionGroupName: aws.String("code"), ParentActionGroupSignature: bt.ActionGroupSignatureAmazonCodeinterpreter},
		},
		KnowledgeBases: []bt.KnowledgeBase{{KnowledgeBaseId: aws.String("KB1"), Description: aws.String("docs")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := out.GetStream()
	var text string
	var files, cites int
	for ev := range st.Events() {
		switch v := ev.(type) {
		case *bt.InlineAgentResponseStreamMemberChunk:
			text += string(v.Value.Bytes)
			if v.Value.Attribution != nil {
				cites += len(v.Value.Attribution.Citations)
			}
		case *bt.InlineAgentResponseStreamMemberFiles:
			files += len(v.Value.Files)
		}
	}
	st.Close()
	if st.Err() != nil || !strings.Contains(text, "15 characters to "+haiku) || files != 1 || cites != 1 {
		t.Errorf("text %q, files %d, citations %d, err %v", text, files, cites, st.Err())
	}
	if c := lastCall(t, s); c.ModelID != haiku || c.IDs["sessionId"] != "inline-1" {
		t.Errorf("call model %q ids %v", c.ModelID, c.IDs)
	}

	// A RETURN_CONTROL action group answers with a function call.
	out, err = c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{
		SessionId: aws.String("inline-2"), FoundationModel: aws.String(haiku), Instruction: aws.String(instruction),
		InputText: aws.String("what is the weather"),
		ActionGroups: []bt.AgentActionGroup{{ActionGroupName: aws.String("weather"),
			ActionGroupExecutor: &bt.ActionGroupExecutorMemberCustomControl{Value: bt.CustomControlMethodReturnControl}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st = out.GetStream()
	var rc bool
	for ev := range st.Events() {
		_, ok := ev.(*bt.InlineAgentResponseStreamMemberReturnControl)
		rc = rc || ok
	}
	st.Close()
	if !rc || st.Err() != nil {
		t.Errorf("no returnControl (%v)", st.Err())
	}

	// Validation as AWS does it.
	var ve *bt.ValidationException
	if _, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: aws.String("i3"), FoundationModel: aws.String(haiku),
		Instruction: aws.String("too short"), InputText: aws.String("x")}); !errors.As(err, &ve) {
		t.Errorf("short instruction: %v", err)
	}
}

func TestAgentKnowledgeBases(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{KnowledgeBases: map[string][]Passage{"KB12345678": nil}})
	c := agentClient(s, testAKID, testSecret)

	r, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB12345678"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("what is warden")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.RetrievalResults) != len(DefaultPassages) || aws.ToString(r.RetrievalResults[0].Content.Text) != DefaultPassages[0].Text || aws.ToFloat64(r.RetrievalResults[0].Score) <= 0 {
		t.Errorf("retrieve %+v", r.RetrievalResults)
	}
	var nf *bt.ResourceNotFoundException
	if _, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: aws.String("NOSUCHKB"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("q")}}); !errors.As(err, &nf) {
		t.Errorf("unknown KB: %v", err)
	}

	kbConf := &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
		KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB12345678"), ModelArn: aws.String(haikuARN)}}
	g, err := c.RetrieveAndGenerate(ctx, &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("what is warden")}, RetrieveAndGenerateConfiguration: kbConf})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(g.Output.Text), "14 characters") || len(g.Citations) != 1 || len(g.Citations[0].RetrievedReferences) != 2 || aws.ToString(g.SessionId) == "" {
		t.Errorf("RetrieveAndGenerate %+v", g)
	}
	if c := lastCall(t, s); c.ModelID != haikuARN {
		t.Errorf("model %q", c.ModelID)
	}

	ext := &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeExternalSources,
		ExternalSourcesConfiguration: &bt.ExternalSourcesRetrieveAndGenerateConfiguration{ModelArn: aws.String(haikuARN),
			Sources: []bt.ExternalSource{{SourceType: bt.ExternalSourceTypeS3, S3Location: &bt.S3ObjectDoc{Uri: aws.String("s3://bucket/doc.pdf")}}}}}
	gs, err := c.RetrieveAndGenerateStream(ctx, &bar.RetrieveAndGenerateStreamInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("summarise")}, RetrieveAndGenerateConfiguration: ext, SessionId: aws.String("kb-session")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(gs.SessionId) != "kb-session" {
		t.Errorf("session header %q", aws.ToString(gs.SessionId))
	}
	st := gs.GetStream()
	var text, uri string
	for ev := range st.Events() {
		switch v := ev.(type) {
		case *bt.RetrieveAndGenerateStreamResponseOutputMemberOutput:
			text += aws.ToString(v.Value.Text)
		case *bt.RetrieveAndGenerateStreamResponseOutputMemberCitation:
			uri = aws.ToString(v.Value.RetrievedReferences[0].Location.S3Location.Uri)
		}
	}
	st.Close()
	if st.Err() != nil || !strings.Contains(text, "9 characters") || uri != "s3://bucket/doc.pdf" {
		t.Errorf("stream text %q uri %q err %v", text, uri, st.Err())
	}
}

func TestAgentFlowsAndOthers(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{Flows: map[string][]string{"FLOW123456": {"ALIAS12345"}}})
	c := agentClient(s, testAKID, testSecret)
	out, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: aws.String("arn:aws:bedrock:us-east-1:123456789012:flow/FLOW123456"),
		FlowAliasIdentifier: aws.String("ALIAS12345"), EnableTrace: aws.Bool(true),
		Inputs: []bt.FlowInput{{NodeName: aws.String("FlowInputNode"), NodeOutputName: aws.String("document"),
			Content: &bt.FlowInputContentMemberDocument{Value: document.NewLazyDocument("hello flow")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ExecutionId) == "" {
		t.Error("no execution id")
	}
	st := out.GetStream()
	var got string
	var done, traced bool
	for ev := range st.Events() {
		switch v := ev.(type) {
		case *bt.FlowResponseStreamMemberFlowOutputEvent:
			d := v.Value.Content.(*bt.FlowOutputContentMemberDocument)
			if err := d.Value.UnmarshalSmithyDocument(&got); err != nil {
				t.Fatal(err)
			}
		case *bt.FlowResponseStreamMemberFlowCompletionEvent:
			done = v.Value.CompletionReason == bt.FlowCompletionReasonSuccess
		case *bt.FlowResponseStreamMemberFlowTraceEvent:
			traced = true
		}
	}
	st.Close()
	if st.Err() != nil || !strings.Contains(got, "10 characters to FLOW123456") || !done || !traced {
		t.Errorf("flow output %q done %v traced %v err %v", got, done, traced, st.Err())
	}
	var nf *bt.ResourceNotFoundException
	if _, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: aws.String("FLOW123456"), FlowAliasIdentifier: aws.String("OTHER12345"),
		Inputs: []bt.FlowInput{{NodeName: aws.String("in"), Content: &bt.FlowInputContentMemberDocument{Value: document.NewLazyDocument("x")}}}}); !errors.As(err, &nf) {
		t.Errorf("unknown alias: %v", err)
	}

	rr, err := c.Rerank(ctx, &bar.RerankInput{
		Queries: []bt.RerankQuery{{Type: bt.RerankQueryContentTypeText, TextQuery: &bt.RerankTextDocument{Text: aws.String("q")}}},
		Sources: []bt.RerankSource{
			{Type: bt.RerankSourceTypeInline, InlineDocumentSource: &bt.RerankDocument{Type: bt.RerankDocumentTypeText, TextDocument: &bt.RerankTextDocument{Text: aws.String("short")}}},
			{Type: bt.RerankSourceTypeInline, InlineDocumentSource: &bt.RerankDocument{Type: bt.RerankDocumentTypeText, TextDocument: &bt.RerankTextDocument{Text: aws.String("a longer one")}}},
		},
		RerankingConfiguration: &bt.RerankingConfiguration{Type: bt.RerankingConfigurationTypeBedrockRerankingModel,
			BedrockRerankingConfiguration: &bt.BedrockRerankingConfiguration{ModelConfiguration: &bt.BedrockRerankingModelConfiguration{ModelArn: aws.String("arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0")}}},
	})
	if err != nil || len(rr.Results) != 2 || aws.ToInt32(rr.Results[0].Index) != 1 {
		t.Errorf("rerank %+v %v", rr, err)
	}
	if c := lastCall(t, s); c.ModelID != "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0" {
		t.Errorf("rerank model %q", c.ModelID)
	}

	gq, err := c.GenerateQuery(ctx, &bar.GenerateQueryInput{QueryGenerationInput: &bt.QueryGenerationInput{Text: aws.String("count rows"), Type: bt.InputQueryTypeText},
		TransformationConfiguration: &bt.TransformationConfiguration{Mode: bt.QueryTransformationModeTextToSql}})
	if err != nil || len(gq.Queries) != 1 || !strings.HasPrefix(aws.ToString(gq.Queries[0].Sql), "SELECT") {
		t.Errorf("generate query %+v %v", gq, err)
	}

	op, err := c.OptimizePrompt(ctx, &bar.OptimizePromptInput{Input: &bt.InputPromptMemberTextPrompt{Value: bt.TextPrompt{Text: aws.String("make it better")}}, TargetModelId: aws.String(haiku)})
	if err != nil {
		t.Fatal(err)
	}
	ost := op.GetStream()
	var optimized string
	for ev := range ost.Events() {
		if v, ok := ev.(*bt.OptimizedPromptStreamMemberOptimizedPromptEvent); ok {
			optimized = aws.ToString(v.Value.OptimizedPrompt.(*bt.OptimizedPromptMemberTextPrompt).Value.Text)
		}
	}
	ost.Close()
	if ost.Err() != nil || !strings.Contains(optimized, haiku) {
		t.Errorf("optimized %q err %v", optimized, ost.Err())
	}
}

func TestAgentSessionsAndMemory(t *testing.T) {
	ctx := context.Background()
	s := newAgentServer(t, Config{})
	c := agentClient(s, testAKID, testSecret)

	cs, err := c.CreateSession(ctx, &bar.CreateSessionInput{SessionMetadata: map[string]string{"app": "a"}, Tags: map[string]string{"team": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	id, arn := aws.ToString(cs.SessionId), aws.ToString(cs.SessionArn)
	if cs.SessionStatus != bt.SessionStatusActive || !strings.HasSuffix(arn, ":session/"+id) || cs.CreatedAt == nil {
		t.Fatalf("CreateSession %+v", cs)
	}
	if g, err := c.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: &arn}); err != nil || g.SessionMetadata["app"] != "a" {
		t.Errorf("GetSession by ARN: %+v %v", g, err)
	}
	if _, err := c.UpdateSession(ctx, &bar.UpdateSessionInput{SessionIdentifier: &id, SessionMetadata: map[string]string{"app": "b"}}); err != nil {
		t.Error(err)
	}
	inv, err := c.CreateInvocation(ctx, &bar.CreateInvocationInput{SessionIdentifier: &id})
	if err != nil {
		t.Fatal(err)
	}
	step, err := c.PutInvocationStep(ctx, &bar.PutInvocationStepInput{SessionIdentifier: &id, InvocationIdentifier: inv.InvocationId,
		InvocationStepTime: aws.Time(time.Now()), Payload: &bt.InvocationStepPayloadMemberContentBlocks{Value: []bt.BedrockSessionContentBlock{&bt.BedrockSessionContentBlockMemberText{Value: "step text"}}}})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := c.GetInvocationStep(ctx, &bar.GetInvocationStepInput{SessionIdentifier: &id, InvocationIdentifier: inv.InvocationId, InvocationStepId: step.InvocationStepId})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := gs.InvocationStep.Payload.(*bt.InvocationStepPayloadMemberContentBlocks); !ok || p.Value[0].(*bt.BedrockSessionContentBlockMemberText).Value != "step text" {
		t.Errorf("step payload %#v", gs.InvocationStep.Payload)
	}
	if l, err := c.ListInvocationSteps(ctx, &bar.ListInvocationStepsInput{SessionIdentifier: &id}); err != nil || len(l.InvocationStepSummaries) != 1 {
		t.Errorf("ListInvocationSteps %+v %v", l, err)
	}
	if l, err := c.ListInvocations(ctx, &bar.ListInvocationsInput{SessionIdentifier: &id}); err != nil || len(l.InvocationSummaries) != 1 {
		t.Errorf("ListInvocations %+v %v", l, err)
	}
	if _, err := c.TagResource(ctx, &bar.TagResourceInput{ResourceArn: &arn, Tags: map[string]string{"k": "v"}}); err != nil {
		t.Error(err)
	}
	if _, err := c.UntagResource(ctx, &bar.UntagResourceInput{ResourceArn: &arn, TagKeys: []string{"team"}}); err != nil {
		t.Error(err)
	}
	if tg, err := c.ListTagsForResource(ctx, &bar.ListTagsForResourceInput{ResourceArn: &arn}); err != nil || len(tg.Tags) != 1 || tg.Tags["k"] != "v" {
		t.Errorf("tags %+v %v", tg, err)
	}
	if l, err := c.ListSessions(ctx, &bar.ListSessionsInput{}); err != nil || len(l.SessionSummaries) != 1 {
		t.Errorf("ListSessions %+v %v", l, err)
	}
	if e, err := c.EndSession(ctx, &bar.EndSessionInput{SessionIdentifier: &id}); err != nil || e.SessionStatus != bt.SessionStatusEnded {
		t.Errorf("EndSession %+v %v", e, err)
	}
	if _, err := c.DeleteSession(ctx, &bar.DeleteSessionInput{SessionIdentifier: &id}); err != nil {
		t.Error(err)
	}
	var nf *bt.ResourceNotFoundException
	if _, err := c.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: &id}); !errors.As(err, &nf) {
		t.Errorf("deleted session: %v", err)
	}

	// Agent memory: a session ended with a memoryId leaves a summary.
	for _, end := range []bool{false, true} {
		out, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT12345"), AgentAliasId: aws.String("ALIAS12345"),
			SessionId: aws.String("s-mem"), MemoryId: aws.String("mem-1"), InputText: aws.String("remember me"), EndSession: aws.Bool(end)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.MemoryId) != "mem-1" {
			t.Errorf("memory id header %q", aws.ToString(out.MemoryId))
		}
		readAgent(t, out)
	}
	m, err := c.GetAgentMemory(ctx, &bar.GetAgentMemoryInput{AgentId: aws.String("AGENT12345"), AgentAliasId: aws.String("ALIAS12345"), MemoryId: aws.String("mem-1"), MemoryType: bt.MemoryTypeSessionSummary})
	if err != nil || len(m.MemoryContents) != 1 {
		t.Fatalf("GetAgentMemory %+v %v", m, err)
	}
	if ss, ok := m.MemoryContents[0].(*bt.MemoryMemberSessionSummary); !ok || aws.ToString(ss.Value.SessionId) != "s-mem" || aws.ToString(ss.Value.MemoryId) != "mem-1" {
		t.Errorf("memory %#v", m.MemoryContents[0])
	}
	if _, err := c.DeleteAgentMemory(ctx, &bar.DeleteAgentMemoryInput{AgentId: aws.String("AGENT12345"), AgentAliasId: aws.String("ALIAS12345"), MemoryId: aws.String("mem-1")}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.GetAgentMemory(ctx, &bar.GetAgentMemoryInput{AgentId: aws.String("AGENT12345"), AgentAliasId: aws.String("ALIAS12345"), MemoryId: aws.String("mem-1"), MemoryType: bt.MemoryTypeSessionSummary}); err != nil || len(m.MemoryContents) != 0 {
		t.Errorf("after delete %+v %v", m, err)
	}
	for _, c := range s.Calls() {
		if !c.SignatureOK {
			t.Errorf("%s: signature not verified: %s", c.Op, c.AuthError)
		}
	}
}
