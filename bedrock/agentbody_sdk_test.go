package bedrock_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/document"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"

	"github.com/warden-egress/warden/bedrock"
)

func facts(f []bedrock.AgentFact) string {
	var out []string
	for _, x := range f {
		out = append(out, x.Path+"="+x.Value)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestAgentRequestFactsSDK: the facts read from bodies the real SDK
// serialises name every model, knowledge base, agent alias, S3 object,
// Lambda and built-in tool the request carries, wherever it sits.
func TestAgentRequestFactsSDK(t *testing.T) {
	ctx := context.Background()
	cap := &agentCapture{}
	var body []byte
	c := cap.client(t)
	c = bar.New(c.Options(), func(o *bar.Options) {
		o.HTTPClient = doerFunc(func(r *http.Request) (*http.Response, error) {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			return http.DefaultClient.Do(r)
		})
	})
	s := aws.String
	const (
		haiku   = "anthropic.claude-3-5-haiku-20241022-v1:0"
		sonnet  = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
		rerank  = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
		filterM = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
		lambda  = "arn:aws:lambda:us-east-1:123456789012:function:tool"
		alias   = "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT12345/ALIAS12345"
	)
	kbWithRerank := func(id string) *bt.KnowledgeBaseRetrievalConfiguration {
		return &bt.KnowledgeBaseRetrievalConfiguration{VectorSearchConfiguration: &bt.KnowledgeBaseVectorSearchConfiguration{
			RerankingConfiguration: &bt.VectorSearchRerankingConfiguration{Type: bt.VectorSearchRerankingConfigurationTypeBedrockRerankingModel,
				BedrockRerankingConfiguration: &bt.VectorSearchBedrockRerankingConfiguration{ModelConfiguration: &bt.VectorSearchBedrockRerankingModelConfiguration{ModelArn: s(rerank)}}},
			ImplicitFilterConfiguration: &bt.ImplicitFilterConfiguration{ModelArn: s(filterM), MetadataAttributes: []bt.MetadataAttributeSchema{{Key: s("year"), Type: bt.AttributeTypeNumber, Description: s("the year")}}},
		}}
	}
	tests := []struct {
		name string
		op   bedrock.Operation
		call func() error
		want map[string]string // kind -> facts()
		mem  string
	}{
		{"InvokeInlineAgent", bedrock.OpInvokeInlineAgent, func() error {
			_, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: s("s1"), FoundationModel: s(haiku), InputText: s("hi"),
				Instruction: s("You are a helpful assistant that answers briefly and politely."),
				ActionGroups: []bt.AgentActionGroup{
					{ActionGroupName: s("code"), ParentActionGroupSignature: bt.ActionGroupSignatureAmazonCodeinterpreter},
					{ActionGroupName: s("tool"), ActionGroupExecutor: &bt.ActionGroupExecutorMemberLambda{Value: lambda},
						ApiSchema: &bt.APISchemaMemberS3{Value: bt.S3Identifier{S3BucketName: s("schemas"), S3ObjectKey: s("tool.yaml")}}},
				},
				KnowledgeBases:              []bt.KnowledgeBase{{KnowledgeBaseId: s("KB00000001"), Description: s("d"), RetrievalConfiguration: kbWithRerank("KB00000001")}},
				PromptOverrideConfiguration: &bt.PromptOverrideConfiguration{OverrideLambda: s(lambda + "2"), PromptConfigurations: []bt.PromptConfiguration{{FoundationModel: s(sonnet), PromptType: bt.PromptTypeOrchestration, AdditionalModelRequestFields: document.NewLazyDocument(map[string]any{"modelArn": "not a fact"})}}},
				Collaborators: []bt.Collaborator{{FoundationModel: s("amazon.nova-pro-v1:0"), Instruction: s("You are a collaborator that looks things up for the supervisor."),
					AgentName: s("helper"), KnowledgeBases: []bt.KnowledgeBase{{KnowledgeBaseId: s("KB00000002"), Description: s("d")}},
					GuardrailConfiguration: &bt.GuardrailConfigurationWithArn{GuardrailIdentifier: s("gr1"), GuardrailVersion: s("1")}}},
				CollaboratorConfigurations: []bt.CollaboratorConfiguration{{CollaboratorName: s("helper"), CollaboratorInstruction: s("help"), AgentAliasArn: s(alias)}},
				InlineSessionState: &bt.InlineSessionState{Files: []bt.InputFile{{Name: s("f.csv"), UseCase: bt.FileUseCaseCodeInterpreter,
					Source: &bt.FileSource{SourceType: bt.FileSourceTypeS3, S3Location: &bt.S3ObjectFile{Uri: s("s3://data/f.csv")}}}}},
			})
			return err
		}, map[string]string{
			"models": "collaborators[0].foundationModel=amazon.nova-pro-v1:0 foundationModel=" + haiku +
				" knowledgeBases[0].retrievalConfiguration.vectorSearchConfiguration.implicitFilterConfiguration.modelArn=" + filterM +
				" knowledgeBases[0].retrievalConfiguration.vectorSearchConfiguration.rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn=" + rerank +
				" promptOverrideConfiguration.promptConfigurations[0].foundationModel=" + sonnet,
			"kbs":      "collaborators[0].knowledgeBases[0].knowledgeBaseId=KB00000002 knowledgeBases[0].knowledgeBaseId=KB00000001",
			"aliases":  "collaboratorConfigurations[0].agentAliasArn=" + alias,
			"s3":       "actionGroups[1].apiSchema.s3=s3://schemas/tool.yaml inlineSessionState.files[0].source.s3Location.uri=s3://data/f.csv",
			"lambdas":  "actionGroups[1].actionGroupExecutor.lambda=" + lambda + " promptOverrideConfiguration.overrideLambda=" + lambda + "2",
			"builtins": "actionGroups[0].parentActionGroupSignature=AMAZON.CodeInterpreter",
			"guards":   "collaborators[0].guardrailConfiguration.guardrailIdentifier=gr1",
		}, ""},
		{"InvokeAgent", bedrock.OpInvokeAgent, func() error {
			_, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: s("AGENT12345"), AgentAliasId: s("TSTALIASID"), SessionId: s("s1"), InputText: s("hi"), MemoryId: s("mem-1"),
				SessionState: &bt.SessionState{SessionAttributes: map[string]string{"uri": "s3://not/a/fact"},
					KnowledgeBaseConfigurations: []bt.KnowledgeBaseConfiguration{{KnowledgeBaseId: s("KB00000003"), RetrievalConfiguration: kbWithRerank("KB00000003")}},
					Files:                       []bt.InputFile{{Name: s("a.txt"), UseCase: bt.FileUseCaseChat, Source: &bt.FileSource{SourceType: bt.FileSourceTypeS3, S3Location: &bt.S3ObjectFile{Uri: s("s3://b/a.txt")}}}}}})
			return err
		}, map[string]string{
			"models": "sessionState.knowledgeBaseConfigurations[0].retrievalConfiguration.vectorSearchConfiguration.implicitFilterConfiguration.modelArn=" + filterM +
				" sessionState.knowledgeBaseConfigurations[0].retrievalConfiguration.vectorSearchConfiguration.rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn=" + rerank,
			"kbs": "sessionState.knowledgeBaseConfigurations[0].knowledgeBaseId=KB00000003",
			"s3":  "sessionState.files[0].source.s3Location.uri=s3://b/a.txt",
		}, "mem-1"},
		{"RetrieveAndGenerate KB", bedrock.OpRetrieveAndGenerate, func() error {
			_, err := c.RetrieveAndGenerate(ctx, &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: s("q")},
				RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
					KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: s("KB00000004"), ModelArn: s(haiku), RetrievalConfiguration: kbWithRerank("KB00000004"),
						GenerationConfiguration: &bt.GenerationConfiguration{GuardrailConfiguration: &bt.GuardrailConfiguration{GuardrailId: s("gr2"), GuardrailVersion: s("1")}}}}})
			return err
		}, map[string]string{
			"models": "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.modelArn=" + haiku +
				" retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.retrievalConfiguration.vectorSearchConfiguration.implicitFilterConfiguration.modelArn=" + filterM +
				" retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.retrievalConfiguration.vectorSearchConfiguration.rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn=" + rerank,
			"kbs":    "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.knowledgeBaseId=KB00000004",
			"guards": "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.generationConfiguration.guardrailConfiguration.guardrailId=gr2",
		}, ""},
		{"RetrieveAndGenerateStream external", bedrock.OpRetrieveAndGenerateStream, func() error {
			_, err := c.RetrieveAndGenerateStream(ctx, &bar.RetrieveAndGenerateStreamInput{Input: &bt.RetrieveAndGenerateInput{Text: s("q")}, SessionId: s("kb-sess"),
				RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeExternalSources,
					ExternalSourcesConfiguration: &bt.ExternalSourcesRetrieveAndGenerateConfiguration{ModelArn: s(haiku), Sources: []bt.ExternalSource{
						{SourceType: bt.ExternalSourceTypeS3, S3Location: &bt.S3ObjectDoc{Uri: s("s3://docs/x.pdf")}},
						{SourceType: bt.ExternalSourceTypeByteContent, ByteContent: &bt.ByteContentDoc{ContentType: s("text/plain"), Data: []byte("hello"), Identifier: s("inline.txt")}},
					}}}})
			return err
		}, map[string]string{
			"models": "retrieveAndGenerateConfiguration.externalSourcesConfiguration.modelArn=" + haiku,
			"s3":     "retrieveAndGenerateConfiguration.externalSourcesConfiguration.sources[0].s3Location.uri=s3://docs/x.pdf",
		}, ""},
		{"Retrieve", bedrock.OpRetrieve, func() error {
			_, err := c.Retrieve(ctx, &bar.RetrieveInput{KnowledgeBaseId: s("KB00000005"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: s("q")}, RetrievalConfiguration: kbWithRerank("KB00000005"),
				GuardrailConfiguration: &bt.GuardrailConfiguration{GuardrailId: s("gr3"), GuardrailVersion: s("1")}})
			return err
		}, map[string]string{
			"models": "retrievalConfiguration.vectorSearchConfiguration.implicitFilterConfiguration.modelArn=" + filterM +
				" retrievalConfiguration.vectorSearchConfiguration.rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn=" + rerank,
			"guards": "guardrailConfiguration.guardrailId=gr3",
		}, ""},
		{"Rerank", bedrock.OpRerank, func() error {
			_, err := c.Rerank(ctx, &bar.RerankInput{Queries: []bt.RerankQuery{{Type: bt.RerankQueryContentTypeText, TextQuery: &bt.RerankTextDocument{Text: s("q")}}},
				Sources:                []bt.RerankSource{{Type: bt.RerankSourceTypeInline, InlineDocumentSource: &bt.RerankDocument{Type: bt.RerankDocumentTypeText, TextDocument: &bt.RerankTextDocument{Text: s("d")}}}},
				RerankingConfiguration: &bt.RerankingConfiguration{Type: bt.RerankingConfigurationTypeBedrockRerankingModel, BedrockRerankingConfiguration: &bt.BedrockRerankingConfiguration{ModelConfiguration: &bt.BedrockRerankingModelConfiguration{ModelArn: s(rerank)}}}})
			return err
		}, map[string]string{"models": "rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn=" + rerank}, ""},
		{"GenerateQuery", bedrock.OpGenerateQuery, func() error {
			_, err := c.GenerateQuery(ctx, &bar.GenerateQueryInput{QueryGenerationInput: &bt.QueryGenerationInput{Text: s("q"), Type: bt.InputQueryTypeText},
				TransformationConfiguration: &bt.TransformationConfiguration{Mode: bt.QueryTransformationModeTextToSql, TextToSqlConfiguration: &bt.TextToSqlConfiguration{Type: bt.TextToSqlConfigurationTypeKnowledgeBase,
					KnowledgeBaseConfiguration: &bt.TextToSqlKnowledgeBaseConfiguration{KnowledgeBaseArn: s("arn:aws:bedrock:us-east-1:123456789012:knowledge-base/KB00000006")}}}})
			return err
		}, map[string]string{"kbs": "transformationConfiguration.textToSqlConfiguration.knowledgeBaseConfiguration.knowledgeBaseArn=KB00000006"}, ""},
		{"OptimizePrompt", bedrock.OpOptimizePrompt, func() error {
			_, err := c.OptimizePrompt(ctx, &bar.OptimizePromptInput{Input: &bt.InputPromptMemberTextPrompt{Value: bt.TextPrompt{Text: s("p")}}, TargetModelId: s(haiku)})
			return err
		}, map[string]string{"models": "targetModelId=" + haiku}, ""},
		{"InvokeFlow", bedrock.OpInvokeFlow, func() error {
			_, err := c.InvokeFlow(ctx, &bar.InvokeFlowInput{FlowIdentifier: s("FLOW123456"), FlowAliasIdentifier: s("TSTALIASID"),
				Inputs: []bt.FlowInput{{NodeName: s("in"), Content: &bt.FlowInputContentMemberDocument{Value: document.NewLazyDocument(map[string]any{"modelArn": "user data", "uri": "s3://user/data"})}}}})
			return err
		}, map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body = nil
			_ = tt.call()
			if body == nil {
				t.Fatal("no body captured")
			}
			f, err := bedrock.AgentRequestFacts(tt.op, body)
			if err != nil {
				t.Fatalf("AgentRequestFacts(%s): %v", body, err)
			}
			got := map[string]string{"models": facts(f.Models), "kbs": facts(f.KnowledgeBases), "aliases": facts(f.AgentAliases),
				"s3": facts(f.S3), "lambdas": facts(f.Lambdas), "builtins": facts(f.BuiltinTools), "guards": facts(f.Guardrails)}
			for k, g := range got {
				if g != tt.want[k] {
					t.Errorf("%s:\n got  %s\n want %s", k, g, tt.want[k])
				}
			}
			if tt.op == bedrock.OpRetrieveAndGenerateStream && f.SessionID != "kb-sess" {
				t.Errorf("sessionId %q", f.SessionID)
			}
			if f.MemoryID != tt.mem {
				t.Errorf("memoryId %q, want %q", f.MemoryID, tt.mem)
			}
		})
	}
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }
