package bedrock

import "testing"

func TestAgentTraceUsage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    Usage
		ok      bool
		model   string
	}{
		{"orchestration output", `{"agentId":"A","trace":{"orchestrationTrace":{"modelInvocationOutput":{"traceId":"t","metadata":{"usage":{"inputTokens":110,"outputTokens":20}}}}}}`, Usage{Input: 110, Output: 20}, true, ""},
		{"pre-processing output", `{"trace":{"preProcessingTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":40,"outputTokens":5}}}}}}`, Usage{Input: 40, Output: 5}, true, ""},
		{"post-processing input only", `{"trace":{"postProcessingTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":7}}}}}}`, Usage{Input: 7}, true, ""},
		{"routing classifier", `{"trace":{"routingClassifierTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":3,"outputTokens":1}}}}}}`, Usage{Input: 3, Output: 1}, true, ""},
		{"model input names the model", `{"trace":{"orchestrationTrace":{"modelInvocationInput":{"foundationModel":"anthropic.claude-3-5-haiku-20241022-v1:0","text":"x"}}}}`, Usage{}, false, "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{"rationale", `{"trace":{"orchestrationTrace":{"rationale":{"text":"r"}}}}`, Usage{}, false, ""},
		{"output without metadata", `{"trace":{"orchestrationTrace":{"modelInvocationOutput":{"rawResponse":{"content":"c"}}}}}`, Usage{}, false, ""},
		{"guardrail trace", `{"trace":{"guardrailTrace":{"action":"NONE"}}}`, Usage{}, false, ""},
		{"negative counts ignored", `{"trace":{"orchestrationTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":-1,"outputTokens":-2}}}}}}`, Usage{}, false, ""},
		{"not JSON", `{"trace":`, Usage{}, false, ""},
		{"trace not an object", `{"trace":"x"}`, Usage{}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, model := AgentTraceUsage([]byte(tc.payload))
			if u != tc.want || ok != tc.ok || model != tc.model {
				t.Fatalf("AgentTraceUsage(%s) = %+v, %v, %q; want %+v, %v, %q", tc.payload, u, ok, model, tc.want, tc.ok, tc.model)
			}
		})
	}
}

// The stream sums every model invocation's counts (they are not
// cumulative, unlike a model's own stream counts).
func TestAgentStreamUsageSums(t *testing.T) {
	su := StreamUsage{Op: OpInvokeAgent}
	if _, ok := su.Usage(); ok {
		t.Fatal("usage known before any trace")
	}
	for _, p := range []string{
		`{"trace":{"orchestrationTrace":{"modelInvocationInput":{"foundationModel":"m1"}}}}`,
		`{"trace":{"preProcessingTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":40,"outputTokens":5}}}}}}`,
		`{"trace":{"orchestrationTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":110,"outputTokens":20}}}}}}`,
		`{"trace":{"orchestrationTrace":{"modelInvocationInput":{"foundationModel":"m1"}}}}`,
	} {
		su.Observe(readFrame(t, EncodeEvent("trace", []byte(p))))
	}
	su.Observe(chunkFrame(t, []byte(`{"inputTokens":999}`)))
	if u, ok := su.Usage(); !ok || u != (Usage{Input: 150, Output: 25}) {
		t.Fatalf("usage %+v %v; want 150 in, 25 out", u, ok)
	}
	if m := su.Models(); len(m) != 1 || m[0] != "m1" {
		t.Fatalf("models %v", m)
	}
}

func FuzzAgentTraceUsage(f *testing.F) {
	f.Add([]byte(`{"trace":{"orchestrationTrace":{"modelInvocationOutput":{"metadata":{"usage":{"inputTokens":110,"outputTokens":20}}}}}}`))
	f.Add([]byte(`{"trace":{"orchestrationTrace":{"modelInvocationInput":{"foundationModel":"m"}}}}`))
	f.Add([]byte(`{"trace":null}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		u, ok, _ := AgentTraceUsage(payload)
		if !ok && u != (Usage{}) {
			t.Fatalf("counts %+v without ok", u)
		}
		if u.Input < 0 || u.Output < 0 {
			t.Fatalf("negative counts %+v", u)
		}
	})
}
