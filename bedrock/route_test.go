package bedrock

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRouteModelOps(t *testing.T) {
	ops := map[string]Operation{
		"invoke":                           OpInvokeModel,
		"invoke-with-response-stream":      OpInvokeModelWithResponseStream,
		"converse":                         OpConverse,
		"converse-stream":                  OpConverseStream,
		"count-tokens":                     OpCountTokens,
		"invoke-with-bidirectional-stream": OpInvokeModelWithBidirectionalStream,
	}
	for _, model := range modelSamples {
		want, err := ParseModelID(model)
		if err != nil {
			t.Fatalf("sample %q: %v", model, err)
		}
		for suffix, op := range ops {
			encoded := "/model/" + sdkEscape(model) + "/" + suffix
			raw := "/model/" + model + "/" + suffix
			for _, p := range []string{encoded, raw} {
				r, err := ParseRoute("POST", p, "")
				if err != nil {
					t.Errorf("ParseRoute(%q): %v", p, err)
					continue
				}
				if r != (Route{Op: op, RawModel: model, Model: want}) {
					t.Errorf("ParseRoute(%q) = %+v", p, r)
				}
			}
		}
	}
}

func TestParseRouteOthers(t *testing.T) {
	const gARN = "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123"
	const iARN = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def456"
	tests := []struct {
		method, path, query string
		want                Route
	}{
		{"POST", "/guardrail/abc123/version/1/apply", "", Route{Op: OpApplyGuardrail, GuardrailID: "abc123", GuardrailVersion: "1"}},
		{"POST", "/guardrail/abc123/version/DRAFT/apply", "", Route{Op: OpApplyGuardrail, GuardrailID: "abc123", GuardrailVersion: "DRAFT"}},
		{"POST", "/guardrail/" + sdkEscape(gARN) + "/version/12/apply", "", Route{Op: OpApplyGuardrail, GuardrailID: gARN, GuardrailVersion: "12"}},
		{"POST", "/guardrail/" + gARN + "/version/12/apply", "", Route{Op: OpApplyGuardrail, GuardrailID: gARN, GuardrailVersion: "12"}},
		{"POST", "/guardrail-checks/invoke", "", Route{Op: OpInvokeGuardrailChecks}},
		{"POST", "/async-invoke", "", Route{Op: OpStartAsyncInvoke}},
		{"GET", "/async-invoke", "", Route{Op: OpListAsyncInvokes}},
		{"GET", "/async-invoke", "statusEquals=Completed&maxResults=10&sortOrder=Descending&nextToken=abc%2Bdef%3D", Route{Op: OpListAsyncInvokes}},
		{"GET", "/async-invoke", "submitTimeAfter=2024-01-01T00%3A00%3A00Z&submitTimeBefore=2024-02-01T00%3A00%3A00Z&sortBy=SubmissionTime", Route{Op: OpListAsyncInvokes}},
		{"GET", "/async-invoke/" + sdkEscape(iARN), "", Route{Op: OpGetAsyncInvoke, InvocationARN: iARN}},
		{"GET", "/async-invoke/" + iARN, "", Route{Op: OpGetAsyncInvoke, InvocationARN: iARN}},
	}
	for _, tt := range tests {
		r, err := ParseRoute(tt.method, tt.path, tt.query)
		if err != nil {
			t.Errorf("ParseRoute(%s %q ?%q): %v", tt.method, tt.path, tt.query, err)
			continue
		}
		if r != tt.want {
			t.Errorf("ParseRoute(%s %q) = %+v, want %+v", tt.method, tt.path, r, tt.want)
		}
	}
}

func TestParseRouteRejects(t *testing.T) {
	const m = "anthropic.claude-3-5-haiku-20241022-v1:0"
	const app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	V, A := TypeValidation, TypeAccessDenied
	tests := []struct {
		name, method, path, query string
		typ                       string
	}{
		{"dotdot", "POST", "/model/../model/" + m + "/invoke", "", V},
		{"dot", "POST", "/model/./" + m + "/invoke", "", V},
		{"dotdot in model", "POST", "/model/" + m + "/../invoke", "", V},
		{"encoded dotdot", "POST", "/model/%2E%2E/invoke", "", V},
		{"encoded dotdot segment in ARN", "POST", "/model/" + sdkEscape(app+"/../x") + "/invoke", "", V},
		{"encoded slash dotdot", "POST", "/model/x%2F..%2F" + m + "/invoke", "", V},
		{"empty segment", "POST", "//model/" + m + "/invoke", "", V},
		{"empty segment mid", "POST", "/model//" + m + "/invoke", "", V},
		{"empty model", "POST", "/model//invoke", "", V},
		{"encoded empty segment", "POST", "/model/x%2F%2Fy/invoke", "", V},
		{"trailing slash", "POST", "/model/" + m + "/invoke/", "", V},
		{"double encoding", "POST", "/model/" + strings.ReplaceAll(sdkEscape(app), "%", "%25") + "/invoke", "", V},
		{"double encoding 2", "POST", "/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/invoke", "", V},
		{"NUL raw", "POST", "/model/" + m + "\x00/invoke", "", V},
		{"NUL encoded", "POST", "/model/" + m + "%00/invoke", "", V},
		{"newline encoded", "POST", "/model/" + m + "%0A/invoke", "", V},
		{"DEL encoded", "POST", "/model/" + m + "%7F/invoke", "", V},
		{"tab raw", "POST", "/model/" + m + "\t/invoke", "", V},
		{"semicolon", "POST", "/model/" + m + ";x=y/invoke", "", V},
		{"semicolon encoded", "POST", "/model/" + m + "%3Bx/invoke", "", V},
		{"backslash", "POST", "/model/" + m + "\\..\\x/invoke", "", V},
		{"backslash encoded", "POST", "/model/" + m + "%5C/invoke", "", V},
		{"question encoded", "POST", "/model/" + m + "%3F/invoke", "", V},
		{"hash encoded", "POST", "/model/" + m + "%23/invoke", "", V},
		{"space", "POST", "/model/" + m + "%20/invoke", "", V},
		{"non-ASCII encoded", "POST", "/model/" + m + "%C3%A9/invoke", "", V},
		{"non-ASCII raw", "POST", "/model/" + m + "é/invoke", "", V},
		{"invalid escape", "POST", "/model/" + m + "%zz/invoke", "", V},
		{"truncated escape", "POST", "/model/" + m + "/invoke%2", "", V},
		{"truncated escape end", "POST", "/model/" + m + "%", "", V},
		{"garbage model", "POST", "/model/not-a-model/invoke", "", V},
		{"extra segment", "POST", "/model/" + m + "/extra/invoke", "", V},
		{"extra segment after ARN", "POST", "/model/" + app + "/extra/invoke", "", V},
		{"overlong", "POST", "/model/" + strings.Repeat("a", 2050) + "/invoke", "", V},
		{"query on POST", "POST", "/model/" + m + "/invoke", "x=1", V},
		{"query on converse", "POST", "/model/" + m + "/converse", "modelId=other", V},
		{"no leading slash", "POST", "model/" + m + "/invoke", "", V},
		{"empty path", "POST", "", "", V},
		{"root", "GET", "/", "", V},
		{"bad guardrail version", "POST", "/guardrail/abc/version/01/apply", "", V},
		{"bad guardrail version 2", "POST", "/guardrail/abc/version/draft/apply", "", V},
		{"bad guardrail id", "POST", "/guardrail/ABC/version/1/apply", "", V},
		{"bad invocation ARN", "GET", "/async-invoke/abc", "", V},
		{"invocation ARN wrong kind", "GET", "/async-invoke/arn:aws:bedrock:us-east-1:123456789012:guardrail/abc", "", V},
		{"unknown list param", "GET", "/async-invoke", "foo=1", V},
		{"repeated list param", "GET", "/async-invoke", "maxResults=1&maxResults=2", V},
		{"empty list param", "GET", "/async-invoke", "maxResults=1&", V},
		{"list param semicolon", "GET", "/async-invoke", "maxResults=1;x=2", V},
		{"list param bad escape", "GET", "/async-invoke", "nextToken=%zz", V},
		{"list param NUL", "GET", "/async-invoke", "nextToken=%00", V},
		{"query on GetAsyncInvoke", "GET", "/async-invoke/arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def456", "x=1", V},

		{"wrong method converse", "GET", "/model/" + m + "/converse", "", A},
		{"wrong method invoke", "PUT", "/model/" + m + "/invoke", "", A},
		{"lowercase method", "post", "/model/" + m + "/invoke", "", A},
		{"wrong method guardrail", "GET", "/guardrail/abc/version/1/apply", "", A},
		{"wrong method checks", "GET", "/guardrail-checks/invoke", "", A},
		{"wrong method async", "DELETE", "/async-invoke", "", A},
		{"wrong method get async", "POST", "/async-invoke/arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def456", "", A},
		{"unknown op suffix", "POST", "/model/" + m + "/generate", "", A},
		{"encoded op suffix", "POST", "/model/" + m + "/%69nvoke", "", A},
		{"encoded slash before op", "POST", "/model/" + m + "%2Finvoke", "", A},
		{"model without op", "POST", "/model/" + m, "", A},
		{"openai stored response", "GET", "/openai/v1/responses/resp_1", "", A},
		{"openai models", "GET", "/openai/v1/models", "", A},
		{"control plane", "GET", "/foundation-models", "", A},
		{"guardrail shape", "POST", "/guardrail/abc/apply", "", A},
		{"guardrail shape 2", "POST", "/guardrail/abc/versions/1/apply", "", A},
		{"case of prefix", "POST", "/Model/" + m + "/invoke", "", A},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRoute(tt.method, tt.path, tt.query)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v is not *APIError", err, err)
			}
			if ae.Type != tt.typ {
				t.Errorf("type %s, want %s (%v)", ae.Type, tt.typ, err)
			}
			if ae.Status != map[string]int{V: 400, A: 403}[tt.typ] {
				t.Errorf("status %d for %s", ae.Status, ae.Type)
			}
			if r != (Route{}) {
				t.Errorf("non-zero route %+v with error", r)
			}
		})
	}
}

func TestParseRouteErrorNamesInput(t *testing.T) {
	_, err := ParseRoute("POST", "/model/evil.model%0A/invoke", "")
	if err == nil || !strings.Contains(err.Error(), `evil.model%0A`) {
		t.Fatalf("error %v does not name the path", err)
	}
	_, err = ParseRoute("POST", "/model/no-such-thing/invoke", "")
	if err == nil || !strings.Contains(err.Error(), `"no-such-thing"`) {
		t.Fatalf("error %v does not name the model", err)
	}
}

func TestAsyncInvokeModel(t *testing.T) {
	good := []struct{ body, want string }{
		{`{"modelId":"amazon.nova-reel-v1:0","modelInput":{"taskType":"TEXT_VIDEO"},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/p"}}}`, "amazon.nova-reel-v1:0"},
		{` {"clientRequestToken":"t","modelId":"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456","tags":[{"key":"k","value":"v"}]} `, "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"},
		{`{"modelInput":{"modelId":"x"},"modelId":"a.b"}`, "a.b"},
		{`{"model\u0049d":"a.b"}`, "a.b"},
	}
	for _, tt := range good {
		got, err := AsyncInvokeModel([]byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("AsyncInvokeModel(%s) = %q, %v; want %q", tt.body, got, err, tt.want)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"a.b"`, `{}`, `{"modelId":""}`, `{"modelId":1}`, `{"modelId":null}`,
		`{"modelId":["a.b"]}`, `{"modelId":"a.b","modelId":"c.d"}`, `{"ModelId":"a.b"}`,
		`{"modelId":"a.b","MODELID":"c.d"}`, `{"modelId":"a.b"}{}`, `{"modelId":"a.b"} x`,
		`{"modelId":"a.b"`, `{"modelId":"a.b",}`, "{\"modelId\":\"a.b\xff\"}", `{"modelid":"a.b"}`,
	}
	for _, body := range bad {
		got, err := AsyncInvokeModel([]byte(body))
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.Type != TypeValidation {
			t.Errorf("AsyncInvokeModel(%q) = %q, %v; want ValidationException", body, got, err)
		}
	}
}

func BenchmarkParseRoute(b *testing.B) {
	paths := []string{
		"/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse",
		"/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream",
		"/model/" + sdkEscape("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456") + "/invoke",
	}
	for _, p := range paths {
		b.Run(p[:20], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseRoute("POST", p, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
