package bedrock

import "encoding/json"

// AgentTraceUsage reads the token counts one InvokeAgent or
// InvokeInlineAgent trace event reports: Bedrock puts a model invocation's
// usage in the trace's modelInvocationOutput.metadata.usage
// ({inputTokens, outputTokens}) under orchestrationTrace,
// preProcessingTrace, postProcessingTrace or routingClassifierTrace
// (aws-sdk-go-v2/service/bedrockagentruntime/types), and names the model in
// the matching modelInvocationInput.foundationModel. Traces come only when
// the caller set enableTrace. ok says the event stated a count; model is
// the foundation model a modelInvocationInput named ("" if none). A
// payload that is not such an event reports nothing.
func AgentTraceUsage(payload []byte) (u Usage, ok bool, model string) {
	type usage struct {
		InputTokens  *int64 `json:"inputTokens"`
		OutputTokens *int64 `json:"outputTokens"`
	}
	type step struct {
		ModelInvocationInput *struct {
			FoundationModel string `json:"foundationModel"`
		} `json:"modelInvocationInput"`
		ModelInvocationOutput *struct {
			Metadata *struct {
				Usage *usage `json:"usage"`
			} `json:"metadata"`
		} `json:"modelInvocationOutput"`
	}
	var ev struct {
		Trace map[string]step `json:"trace"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return Usage{}, false, ""
	}
	for _, kind := range []string{"orchestrationTrace", "preProcessingTrace", "postProcessingTrace", "routingClassifierTrace"} {
		st, found := ev.Trace[kind]
		if !found {
			continue
		}
		if in := st.ModelInvocationInput; in != nil && in.FoundationModel != "" {
			model = in.FoundationModel
		}
		if out := st.ModelInvocationOutput; out != nil && out.Metadata != nil && out.Metadata.Usage != nil {
			if n := out.Metadata.Usage.InputTokens; n != nil && *n >= 0 {
				u.Input += *n
				ok = true
			}
			if n := out.Metadata.Usage.OutputTokens; n != nil && *n >= 0 {
				u.Output += *n
				ok = true
			}
		}
	}
	return u, ok, model
}

// agentStreamUsage is StreamUsage for the agent streams: every model
// invocation reports its own counts, so they add up.
type agentStreamUsage struct {
	u      Usage
	known  bool
	models []string
}

func (a *agentStreamUsage) observe(f *Frame) {
	if f.MessageType() != MessageTypeEvent || f.EventType() != "trace" {
		return
	}
	u, ok, model := AgentTraceUsage(f.Message.Payload)
	if ok {
		a.u.Input += u.Input
		a.u.Output += u.Output
		a.known = true
	}
	if model != "" {
		for _, m := range a.models {
			if m == model {
				return
			}
		}
		a.models = append(a.models, model)
	}
}
