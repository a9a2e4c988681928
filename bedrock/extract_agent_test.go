package bedrock

import (
	"encoding/base64"
	"maps"
	"slices"
	"testing"
)

// The agent runtime's request bodies, answers and stream events as the
// guards read them: what is text (by path), what is passed over (the
// identifiers policy checked) and what is unscannable.
func TestExtractAgent(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name  string
		kind  string // request, response, or an event type
		op    Operation
		body  string
		texts map[string]string // path -> text; every text span
		unsc  []string
	}{
		{"InvokeAgent input", "request", OpInvokeAgent,
			`{"inputText":"my ssn is 123-45-6789","memoryId":"mem-1","enableTrace":true,
			  "sessionState":{"sessionAttributes":{"type":"a@b.example"},"promptSessionAttributes":{"k":"v"},
			    "knowledgeBaseConfigurations":[{"knowledgeBaseId":"KB00000001","retrievalConfiguration":{"vectorSearchConfiguration":{"numberOfResults":3,"overrideSearchType":"HYBRID"}}}],
			    "files":[{"name":"notes.txt","useCase":"CHAT","source":{"sourceType":"BYTE_CONTENT","byteContent":{"mediaType":"text/plain","data":"aGk="}}},
			             {"name":"s3.csv","useCase":"CHAT","source":{"sourceType":"S3","s3Location":{"uri":"s3://b/k"}}}]}}`,
			map[string]string{"inputText": "my ssn is 123-45-6789", "sessionState.sessionAttributes.type": "a@b.example",
				"sessionState.promptSessionAttributes.k": "v", "sessionState.files[0].name": "notes.txt", "sessionState.files[1].name": "s3.csv"},
			[]string{"sessionState.files[0].source.byteContent", "sessionState.files[1].source.s3Location"}},
		{"Retrieve query", "request", OpRetrieve,
			`{"retrievalQuery":{"text":"card 4111 1111 1111 1111"},"retrievalConfiguration":{"vectorSearchConfiguration":{"filter":{"equals":{"key":"owner","value":"jo"}}}}}`,
			map[string]string{"retrievalQuery.text": "card 4111 1111 1111 1111",
				"retrievalConfiguration.vectorSearchConfiguration.filter.equals.key": "owner", "retrievalConfiguration.vectorSearchConfiguration.filter.equals.value": "jo"}, nil},
		{"RetrieveAndGenerate models are not text", "request", OpRetrieveAndGenerate,
			`{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KB00000001","modelArn":"arn:aws:bedrock:us-east-1::foundation-model/m",
			  "generationConfiguration":{"promptTemplate":{"textPromptTemplate":"answer $search_results$"},"guardrailConfiguration":{"guardrailId":"g1","guardrailVersion":"1"}}}},"sessionId":"s"}`,
			map[string]string{"input.text": "q",
				"retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.generationConfiguration.promptTemplate.textPromptTemplate":       "answer $search_results$",
				"retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.generationConfiguration.guardrailConfiguration.guardrailVersion": "1"}, nil},
		{"InvokeFlow document: every string", "request", OpInvokeFlow,
			`{"inputs":[{"nodeName":"FlowInputNode","nodeOutputName":"document","content":{"document":{"modelId":"x","type":"123-45-6789","n":[1,"two"]}}}]}`,
			map[string]string{"inputs[0].nodeName": "FlowInputNode", "inputs[0].nodeOutputName": "document",
				"inputs[0].content.document.modelId": "x", "inputs[0].content.document.type": "123-45-6789", "inputs[0].content.document.n[1]": "two"}, nil},
		{"PutInvocationStep payload", "request", OpPutInvocationStep,
			`{"invocationIdentifier":"i","invocationStepTime":"2024-01-01T00:00:00Z","payload":{"contentBlocks":[{"text":"hello"},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]}}`,
			map[string]string{"invocationIdentifier": "i", "invocationStepTime": "2024-01-01T00:00:00Z", "payload.contentBlocks[0].text": "hello"},
			[]string{"payload.contentBlocks[1].image"}},
		{"chunk", "chunk", OpInvokeAgent,
			`{"bytes":"` + b64("the card is 4111") + `","attribution":{"citations":[{"generatedResponsePart":{"textResponsePart":{"text":"t","span":{"start":0,"end":1}}},
			  "retrievedReferences":[{"content":{"type":"TEXT","text":"passage"},"location":{"type":"S3","s3Location":{"uri":"s3://kb/doc.md"}},"metadata":{"x":"y"}}]}]}}`,
			map[string]string{"bytes": "the card is 4111", "attribution.citations[0].generatedResponsePart.textResponsePart.text": "t",
				"attribution.citations[0].retrievedReferences[0].content.text":            "passage",
				"attribution.citations[0].retrievedReferences[0].location.s3Location.uri": "s3://kb/doc.md",
				"attribution.citations[0].retrievedReferences[0].metadata.x":              "y"}, nil},
		{"chunk not UTF-8", "chunk", OpInvokeInlineAgent, `{"bytes":"/w=="}`, map[string]string{}, []string{"bytes"}},
		{"files: text and binary", "files", OpInvokeAgent,
			`{"files":[{"name":"r.csv","type":"text/csv","bytes":"` + b64("n,ssn\n1,123-45-6789") + `"},{"name":"p.png","type":"image/png","bytes":"iVBORw=="}]}`,
			map[string]string{"files[0].name": "r.csv", "files[0].bytes": "n,ssn\n1,123-45-6789", "files[1].name": "p.png"}, []string{"files[1].bytes"}},
		{"returnControl", "returnControl", OpInvokeAgent,
			`{"invocationId":"inv","invocationInputs":[{"functionInvocationInput":{"actionGroup":"g","function":"f","parameters":[{"name":"q","type":"string","value":"jo@example.com"}]}}]}`,
			map[string]string{"invocationInputs[0].functionInvocationInput.actionGroup": "g", "invocationInputs[0].functionInvocationInput.function": "f",
				"invocationInputs[0].functionInvocationInput.parameters[0].name": "q", "invocationInputs[0].functionInvocationInput.parameters[0].value": "jo@example.com"}, nil},
		{"unknown event", "newEvent", OpInvokeAgent, `{"text":"anything"}`, map[string]string{}, []string{`newEvent event (a type Warden does not know for InvokeAgent)`}},
		{"RetrieveAndGenerateStream output", "output", OpRetrieveAndGenerateStream, `{"text":"part"}`, map[string]string{"text": "part"}, nil},
		{"flow output", "flowOutputEvent", OpInvokeFlow, `{"nodeName":"Out","nodeType":"FlowOutputNode","content":{"document":{"type":"x"}}}`,
			map[string]string{"nodeName": "Out", "content.document.type": "x"}, nil},
		{"RetrieveAndGenerate answer", "response", OpRetrieveAndGenerate,
			`{"output":{"text":"answer"},"citations":[{"generatedResponsePart":{"textResponsePart":{"text":"answer","span":{"start":0,"end":6}}},"retrievedReferences":[]}],"sessionId":"s-1"}`,
			map[string]string{"output.text": "answer", "citations[0].generatedResponsePart.textResponsePart.text": "answer"}, nil},
		{"GetInvocationStep answer", "response", OpGetInvocationStep,
			`{"invocationStep":{"sessionId":"s","invocationId":"i","invocationStepId":"x","payload":{"contentBlocks":[{"text":"t"},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]}}}`,
			map[string]string{"invocationStep.payload.contentBlocks[0].text": "t"}, []string{"invocationStep.payload.contentBlocks[1].image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ex Extracted
			var err error
			switch tc.kind {
			case "request":
				ex, err = ExtractRequest(tc.op, FamilyUnknown, []byte(tc.body))
			case "response":
				ex, err = ExtractResponse(tc.op, FamilyUnknown, []byte(tc.body))
			default:
				ex, err = ExtractStreamEvent(tc.op, FamilyUnknown, tc.kind, []byte(tc.body))
			}
			if err != nil {
				t.Fatal(err)
			}
			checkExtracted(t, []byte(tc.body), ex)
			if got := spanMap(ex); !maps.Equal(got, tc.texts) {
				t.Errorf("texts\n got %q\nwant %q", got, tc.texts)
			}
			if !slices.Equal(ex.Unscannable, tc.unsc) {
				t.Errorf("unscannable %q, want %q", ex.Unscannable, tc.unsc)
			}
		})
	}
	if _, err := ExtractStreamEvent(OpInvokeAgent, FamilyUnknown, "newEvent", []byte(`{"a":`)); err == nil {
		t.Error("an unknown event's invalid JSON was accepted")
	}
	if _, err := ExtractResponse(OpInvokeAgent, FamilyUnknown, []byte(`{}`)); err == nil {
		t.Error("an agent event stream was extracted as a unary answer")
	}
}
