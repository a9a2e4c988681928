package bedrock

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAgentRequestFactsRejects(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70)
	bad := []struct{ name, body, want string }{
		{"not an object", `[]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"trailing data", `{"inputText":"x"} {}`, "data after"},
		{"truncated", `{"inputText":"x"`, ""},
		{"invalid UTF-8", "{\"inputText\":\"\xff\"}", "UTF-8"},
		{"duplicate model", `{"foundationModel":"a.b","foundationModel":"c.d"}`, "duplicate key"},
		{"duplicate nested", `{"collaborators":[{"foundationModel":"a.b","foundationModel":"c.d"}]}`, "collaborators[0].foundationModel"},
		{"duplicate any key", `{"inputText":"a","inputText":"b"}`, "duplicate key"},
		{"case variant", `{"FoundationModel":"c.d"}`, "differs from \"foundationModel\" only in case"},
		{"case variant beside", `{"foundationModel":"a.b","FOUNDATIONMODEL":"c.d"}`, "only in case"},
		{"case variant nested", `{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"ModelArn":"x"}}}`, "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.ModelArn"},
		{"escaped case variant", `{"foundation\u004dodel":"a.b","foundationmodel":"c.d"}`, "only in case"},
		{"model not a string", `{"foundationModel":{"id":"a.b"}}`, "want a string"},
		{"model array", `{"targetModelId":["a.b"]}`, "want a string"},
		{"model empty", `{"modelArn":""}`, "non-empty"},
		{"model control", `{"modelArn":"a\u0000b"}`, "control"},
		{"kb ARN malformed", `{"knowledgeBaseArn":"KB1"}`, "not a knowledge base ARN"},
		{"kb ARN wrong kind", `{"knowledgeBaseArn":"arn:aws:bedrock:us-east-1:123456789012:agent/KB1"}`, "not a knowledge base ARN"},
		{"s3 half", `{"apiSchema":{"s3":{"s3BucketName":"b"}}}`, "both s3BucketName and s3ObjectKey"},
		{"too deep", deep, "nested more than"},
	}
	for _, tt := range bad {
		f, err := AgentRequestFacts(OpInvokeInlineAgent, []byte(tt.body))
		if err == nil {
			t.Errorf("%s: accepted %+v", tt.name, f)
			continue
		}
		ae := mustAPIError(t, err, tt.name)
		if ae.Type != TypeValidation || !strings.Contains(ae.Message, tt.want) || !strings.Contains(ae.Message, "InvokeInlineAgent") {
			t.Errorf("%s: %v (want a ValidationException naming %q)", tt.name, err, tt.want)
		}
	}
	// Opaque members are data: their keys are not facts, and case variants there are fine.
	f, err := AgentRequestFacts(OpInvokeFlow, []byte(`{"inputs":[{"content":{"document":{"ModelArn":"x","modelArn":"y","uri":"s3://a/b"}}}],
		"additionalModelRequestFields":{"foundationModel":"z"}}`))
	if err != nil || len(f.Models) != 0 || len(f.S3) != 0 {
		t.Errorf("opaque members: %+v %v", f, err)
	}
	// Only the top level carries ownership.
	f, err = AgentRequestFacts(OpRetrieveAndGenerate, []byte(`{"sessionId":"s1","sessionConfiguration":{"kmsKeyArn":"k"},"x":{"memoryId":"m"}}`))
	if err != nil || f.SessionID != "s1" || f.MemoryID != "" {
		t.Errorf("ownership: %+v %v", f, err)
	}
	if f, err := AgentRequestFacts(OpGetSession, nil); err != nil || len(f.Models) != 0 {
		t.Errorf("empty body: %+v %v", f, err)
	}
}

func FuzzAgentRequestFacts(f *testing.F) {
	f.Add([]byte(`{"foundationModel":"anthropic.claude-3-5-haiku-20241022-v1:0","collaborators":[{"foundationModel":"a.b","knowledgeBases":[{"knowledgeBaseId":"KB1"}]}]}`))
	f.Add([]byte(`{"retrieveAndGenerateConfiguration":{"type":"EXTERNAL_SOURCES","externalSourcesConfiguration":{"modelArn":"m","sources":[{"s3Location":{"uri":"s3://b/k"}}]}}}`))
	f.Add([]byte(`{"actionGroups":[{"apiSchema":{"s3":{"s3BucketName":"b","s3ObjectKey":"k"}},"actionGroupExecutor":{"lambda":"arn:aws:lambda:us-east-1:123456789012:function:f"}}]}`))
	f.Add([]byte(`{"foundationModel":"a","FoundationModel":"b"}`))
	f.Add([]byte(`{"modelArn":"a","modelArn":"b"}`))
	f.Add([]byte(`{"inputs":[{"content":{"document":{"modelArn":1}}}]}`))
	f.Add([]byte(`{"model\u0041rn":"a"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		facts, err := AgentRequestFacts(OpInvokeInlineAgent, body)
		if err != nil {
			if ae := mustAPIError(t, err, "AgentRequestFacts"); ae.Type != TypeValidation || !utf8.ValidString(ae.Message) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		// Whatever encoding/json reads at the top level agrees.
		var top struct {
			FoundationModel *string `json:"foundationModel"`
			MemoryID        *string `json:"memoryId"`
		}
		if err := json.Unmarshal(body, &top); err == nil && top.FoundationModel != nil {
			found := false
			for _, m := range facts.Models {
				found = found || m.Path == "foundationModel" && m.Value == *top.FoundationModel
			}
			if !found {
				t.Fatalf("encoding/json reads foundationModel %q; facts %+v", *top.FoundationModel, facts.Models)
			}
		}
		for _, group := range [][]AgentFact{facts.Models, facts.KnowledgeBases, facts.AgentAliases, facts.S3, facts.Lambdas, facts.BuiltinTools, facts.Guardrails} {
			for _, x := range group {
				if x.Value == "" || x.Path == "" || hasControl(x.Value) {
					t.Fatalf("fact %+v", x)
				}
			}
		}
	})
}
