package bedrock_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	bartypes "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"

	"github.com/warden-egress/warden/bedrock"
)

const (
	sessUUID  = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	sessARN   = "arn:aws:bedrock:us-east-1:123456789012:session/" + sessUUID
	stepUUID  = "6f1d8e1a-0b2c-4d3e-9f40-5a6b7c8d9e0f"
	flowARN   = "arn:aws:bedrock:us-east-1:123456789012:flow/FLOW123456"
	flowAlias = flowARN + "/alias/ALIAS12345"
)

// agentCapture is a local server that records the request line of each
// call and refuses it, so the client returns at once.
type agentCapture struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (c *agentCapture) client(t *testing.T) *bar.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.reqs = append(c.reqs, r)
		c.mu.Unlock()
		deny := bedrock.AccessDenied("captured")
		w.Header().Set(bedrock.HeaderErrorType, deny.Type)
		w.Header().Set("Content-Type", bedrock.ContentTypeJSON)
		w.WriteHeader(deny.Status)
		w.Write(deny.Body())
	}))
	t.Cleanup(srv.Close)
	return bar.New(bar.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func (c *agentCapture) last(t *testing.T) *http.Request {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reqs) == 0 {
		t.Fatal("the SDK sent nothing")
	}
	r := c.reqs[len(c.reqs)-1]
	c.reqs = nil
	return r
}

// TestAgentRouteSDK sends every bedrock-agent-runtime operation with the
// real Go SDK and checks that ParseAgentRoute classifies exactly what the
// SDK put on the wire: operation, identifiers, query.
func TestAgentRouteSDK(t *testing.T) {
	ctx := context.Background()
	cap := &agentCapture{}
	c := cap.client(t)
	s := aws.String
	tests := []struct {
		name string
		call func() error
		want bedrock.AgentRoute
	}{
		{"InvokeAgent", func() error {
			_, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: s("AGENT12345"), AgentAliasId: s("TSTALIASID"), SessionId: s("user:42.session_a-b"), InputText: s("hi"), SourceArn: s("arn:aws:lambda:us-east-1:123456789012:function:f")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpInvokeAgent, AgentID: "AGENT12345", AgentAliasID: "TSTALIASID", SessionID: "user:42.session_a-b"}},
		{"InvokeInlineAgent", func() error {
			_, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: s("inline:1"), FoundationModel: s("anthropic.claude-3-5-haiku-20241022-v1:0"), Instruction: s("be brief, be helpful, be kind")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpInvokeInlineAgent, SessionID: "inline:1"}},
		{"Retrieve", func() error {
			_, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: s("KB12345678"), RetrievalQuery: &bartypes.KnowledgeBaseQuery{Text: s("q")}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpRetrieve, KnowledgeBaseID: "KB12345678"}},
		{"RetrieveAndGenerate", func() error {
			_, err := c.RetrieveAndGenerate(ctx, &bar.RetrieveAndGenerateInput{Input: &bartypes.RetrieveAndGenerateInput{Text: s("q")}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpRetrieveAndGenerate}},
		{"RetrieveAndGenerateStream", func() error {
			_, err := c.RetrieveAndGenerateStream(ctx, &bar.RetrieveAndGenerateStreamInput{Input: &bartypes.RetrieveAndGenerateInput{Text: s("q")}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpRetrieveAndGenerateStream}},
		{"InvokeFlow ids", func() error {
			_, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: s("FLOW123456"), FlowAliasIdentifier: s("TSTALIASID"), Inputs: []bartypes.FlowInput{{NodeName: s("in"), Content: &bartypes.FlowInputContentMemberDocument{}}}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpInvokeFlow, FlowID: "FLOW123456", FlowAliasID: "TSTALIASID"}},
		{"InvokeFlow ARNs", func() error {
			_, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: s(flowARN), FlowAliasIdentifier: s(flowAlias), Inputs: []bartypes.FlowInput{{NodeName: s("in"), Content: &bartypes.FlowInputContentMemberDocument{}}}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpInvokeFlow, FlowID: "FLOW123456", FlowAliasID: "ALIAS12345", FlowARN: flowARN, FlowAliasARN: flowAlias}},
		{"Rerank", func() error {
			_, err := c.Rerank(ctx, &bar.RerankInput{Queries: []bartypes.RerankQuery{{Type: bartypes.RerankQueryContentTypeText, TextQuery: &bartypes.RerankTextDocument{Text: s("q")}}}, Sources: []bartypes.RerankSource{{Type: bartypes.RerankSourceTypeInline, InlineDocumentSource: &bartypes.RerankDocument{Type: bartypes.RerankDocumentTypeText, TextDocument: &bartypes.RerankTextDocument{Text: s("d")}}}}, RerankingConfiguration: &bartypes.RerankingConfiguration{Type: bartypes.RerankingConfigurationTypeBedrockRerankingModel, BedrockRerankingConfiguration: &bartypes.BedrockRerankingConfiguration{ModelConfiguration: &bartypes.BedrockRerankingModelConfiguration{ModelArn: s("arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0")}}}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpRerank}},
		{"GenerateQuery", func() error {
			_, err := c.GenerateQuery(ctx, &bar.GenerateQueryInput{QueryGenerationInput: &bartypes.QueryGenerationInput{Text: s("q"), Type: bartypes.InputQueryTypeText}, TransformationConfiguration: &bartypes.TransformationConfiguration{Mode: bartypes.QueryTransformationModeTextToSql}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpGenerateQuery}},
		{"OptimizePrompt", func() error {
			_, err := c.OptimizePrompt(ctx, &bar.OptimizePromptInput{Input: &bartypes.InputPromptMemberTextPrompt{Value: bartypes.TextPrompt{Text: s("p")}}, TargetModelId: s("anthropic.claude-3-5-haiku-20241022-v1:0")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpOptimizePrompt}},
		{"CreateSession", func() error { _, err := c.CreateSession(ctx, &bar.CreateSessionInput{}); return err },
			bedrock.AgentRoute{Op: bedrock.OpCreateSession}},
		{"ListSessions", func() error {
			_, err := c.ListSessions(ctx, &bar.ListSessionsInput{MaxResults: aws.Int32(10), NextToken: s("a+b/c=")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpListSessions}},
		{"GetSession", func() error {
			_, err := c.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: s(sessUUID)})
			return err
		},
			bedrock.AgentRoute{Op: bedrock.OpGetSession, Session: sessUUID}},
		{"GetSession ARN", func() error {
			_, err := c.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: s(sessARN)})
			return err
		},
			bedrock.AgentRoute{Op: bedrock.OpGetSession, Session: sessUUID, SessionARN: sessARN}},
		{"UpdateSession", func() error {
			_, err := c.UpdateSession(ctx, &bar.UpdateSessionInput{SessionIdentifier: s(sessUUID), SessionMetadata: map[string]string{"k": "v"}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpUpdateSession, Session: sessUUID}},
		{"EndSession", func() error {
			_, err := c.EndSession(ctx, &bar.EndSessionInput{SessionIdentifier: s(sessARN)})
			return err
		},
			bedrock.AgentRoute{Op: bedrock.OpEndSession, Session: sessUUID, SessionARN: sessARN}},
		{"DeleteSession", func() error {
			_, err := c.DeleteSession(ctx, &bar.DeleteSessionInput{SessionIdentifier: s(sessUUID)})
			return err
		},
			bedrock.AgentRoute{Op: bedrock.OpDeleteSession, Session: sessUUID}},
		{"CreateInvocation", func() error {
			_, err := c.CreateInvocation(ctx, &bar.CreateInvocationInput{SessionIdentifier: s(sessUUID)})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpCreateInvocation, Session: sessUUID}},
		{"ListInvocations", func() error {
			_, err := c.ListInvocations(ctx, &bar.ListInvocationsInput{SessionIdentifier: s(sessARN), MaxResults: aws.Int32(5)})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpListInvocations, Session: sessUUID, SessionARN: sessARN}},
		{"PutInvocationStep", func() error {
			_, err := c.PutInvocationStep(ctx, &bar.PutInvocationStepInput{SessionIdentifier: s(sessUUID), InvocationIdentifier: s(stepUUID), InvocationStepTime: aws.Time(time.Unix(1, 0)), Payload: &bartypes.InvocationStepPayloadMemberContentBlocks{Value: []bartypes.BedrockSessionContentBlock{&bartypes.BedrockSessionContentBlockMemberText{Value: "x"}}}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpPutInvocationStep, Session: sessUUID}},
		{"GetInvocationStep", func() error {
			_, err := c.GetInvocationStep(ctx, &bar.GetInvocationStepInput{SessionIdentifier: s(sessUUID), InvocationIdentifier: s(stepUUID), InvocationStepId: s(stepUUID)})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpGetInvocationStep, Session: sessUUID, InvocationStepID: stepUUID}},
		{"ListInvocationSteps", func() error {
			_, err := c.ListInvocationSteps(ctx, &bar.ListInvocationStepsInput{SessionIdentifier: s(sessUUID), NextToken: s("t")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpListInvocationSteps, Session: sessUUID}},
		{"GetAgentMemory", func() error {
			_, err := c.GetAgentMemory(ctx, &bar.GetAgentMemoryInput{AgentId: s("AGENT12345"), AgentAliasId: s("ALIAS12345"), MemoryId: s("mem-1"), MemoryType: bartypes.MemoryTypeSessionSummary, MaxItems: aws.Int32(20)})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpGetAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345", MemoryID: "mem-1"}},
		{"DeleteAgentMemory", func() error {
			_, err := c.DeleteAgentMemory(ctx, &bar.DeleteAgentMemoryInput{AgentId: s("AGENT12345"), AgentAliasId: s("ALIAS12345"), MemoryId: s("mem-1"), SessionId: s("sess-1")})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpDeleteAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345", MemoryID: "mem-1", SessionID: "sess-1"}},
		{"TagResource", func() error {
			_, err := c.TagResource(ctx, &bar.TagResourceInput{ResourceArn: s(sessARN), Tags: map[string]string{"k": "v"}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpTagResource, Session: sessUUID, SessionARN: sessARN}},
		{"UntagResource", func() error {
			_, err := c.UntagResource(ctx, &bar.UntagResourceInput{ResourceArn: s(sessARN), TagKeys: []string{"a", "b"}})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpUntagResource, Session: sessUUID, SessionARN: sessARN}},
		{"ListTagsForResource", func() error {
			_, err := c.ListTagsForResource(ctx, &bar.ListTagsForResourceInput{ResourceArn: s(sessARN)})
			return err
		}, bedrock.AgentRoute{Op: bedrock.OpListTagsForResource, Session: sessUUID, SessionARN: sessARN}},
	}
	seen := map[bedrock.Operation]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ade *bartypes.AccessDeniedException
			if err := tt.call(); !errors.As(err, &ade) {
				t.Fatalf("call: %v (want the capture's AccessDeniedException)", err)
			}
			r := cap.last(t)
			got, err := bedrock.ParseAgentRoute(r.Method, r.URL.EscapedPath(), r.URL.RawQuery)
			if err != nil {
				t.Fatalf("ParseAgentRoute(%s %q ?%q): %v", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, err)
			}
			if got != tt.want {
				t.Errorf("ParseAgentRoute(%s %q ?%q) =\n %+v, want\n %+v", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, got, tt.want)
			}
			if r.Host == "" {
				t.Error("no Host")
			}
			seen[got.Op] = true
		})
	}
	for _, op := range bedrock.AgentOperations() {
		if !seen[op] {
			t.Errorf("operation %s has no SDK case", op)
		}
	}
}

// TestAgentRuntimeHostSDK: every host the SDK's endpoint rules produce for
// the agent runtime parses as one, with the right region and FIPS flag.
func TestAgentRuntimeHostSDK(t *testing.T) {
	res := bar.NewDefaultEndpointResolverV2()
	for _, region := range []string{"us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1"} {
		for _, fips := range []bool{false, true} {
			for _, dual := range []bool{false, true} {
				ep, err := res.ResolveEndpoint(context.Background(), bar.EndpointParameters{Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
				if err != nil {
					continue // the partition lacks FIPS or dual-stack
				}
				if (fips || dual) && region == "cn-north-1" {
					// The generic rules' China FIPS and dual-stack names
					// (…-fips.cn-north-1.amazonaws.com.cn, api.amazonwebservices.com.cn)
					// are accepted for neither runtime: ParseRuntimeHost's forms.
					continue
				}
				h, err := bedrock.ParseAgentRuntimeHost(ep.URI.Host)
				if err != nil || h.Region != region || h.FIPS != fips || h.Service != bedrock.ServiceAgentRuntime {
					t.Errorf("SDK endpoint %s (fips %v, dual-stack %v): %+v, %v", ep.URI.Host, fips, dual, h, err)
				}
			}
		}
	}
}
