package proxy_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// The usage an agent stream's traces report (modelInvocationOutput.
// metadata.usage under each trace kind) is summed into the call's record,
// with the real bedrockagentruntime client, on the plain relay and the
// guarded one; without traces the record says usage unknown, not zero.
// The traces name one priced foundation model, so the cost is known.
func TestAgentUsageRecorded(t *testing.T) {
	const prices = "audit: {prices: {\"anthropic.claude-3-5-haiku-*\": {input_per_mtok: 1, output_per_mtok: 5}}}\n"
	wantCost := (float64(bedrocktest.AgentTraceInputTokens)*1 + float64(bedrocktest.AgentTraceOutputTokens)*5) / 1e6
	for _, tc := range []struct {
		name    string
		guarded bool
		inline  bool
		trace   bool
	}{
		{"InvokeAgent traces", false, false, true},
		{"InvokeAgent no traces", false, false, false},
		{"InvokeAgent guarded traces", true, false, true},
		{"InvokeAgent guarded no traces", true, false, false},
		{"InvokeInlineAgent traces", false, true, true},
		{"InvokeInlineAgent guarded traces", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			if tc.guarded {
				e, _ = agentGuardEnv(t, "[ssn-block, card-block]\n"+prices, nil, nil, nil)
			} else {
				e = startEnv(t, withPolicy(agentPolicy+prices))
			}
			c := e.agentClient()
			ctx := context.Background()
			traces := 0
			if tc.inline {
				out, err := c.InvokeInlineAgent(ctx, &bar.InvokeInlineAgentInput{SessionId: aws.String("sess-u"), FoundationModel: aws.String(haiku),
					Instruction: aws.String("answer questions about Warden briefly and in plain words"), InputText: aws.String("hello"),
					EnableTrace: aws.Bool(tc.trace)})
				if err != nil {
					t.Fatalf("InvokeInlineAgent: %v", err)
				}
				for ev := range out.GetStream().Events() {
					if _, ok := ev.(*bt.InlineAgentResponseStreamMemberTrace); ok {
						traces++
					}
				}
				if err := out.GetStream().Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
			} else {
				out, err := c.InvokeAgent(ctx, &bar.InvokeAgentInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
					SessionId: aws.String("sess-u"), InputText: aws.String("why is the sky blue"), EnableTrace: aws.Bool(tc.trace)})
				if err != nil {
					t.Fatalf("InvokeAgent: %v", err)
				}
				for ev := range out.GetStream().Events() {
					if tr, ok := ev.(*bt.ResponseStreamMemberTrace); ok {
						traces++
						// The SDK reads the usage Warden relayed.
						if o, ok := tr.Value.Trace.(*bt.TraceMemberOrchestrationTrace); ok {
							if mo, ok := o.Value.(*bt.OrchestrationTraceMemberModelInvocationOutput); ok && (mo.Value.Metadata == nil || mo.Value.Metadata.Usage == nil) {
								t.Errorf("orchestration modelInvocationOutput without usage")
							}
						}
					}
				}
				if err := out.GetStream().Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
			}
			if (traces > 0) != tc.trace {
				t.Fatalf("%d trace events with enableTrace %v", traces, tc.trace)
			}
			r := e.audit.wait(t, 1)[0]
			if r.Decision != "allow" || r.Agent == nil {
				t.Fatalf("record %+v", r)
			}
			if !tc.trace {
				if r.Usage.Known || r.Usage.Input != 0 || r.Usage.Output != 0 || r.CostKnown {
					t.Fatalf("no traces: usage %+v cost %v/%v; want unknown", r.Usage, r.CostUSD, r.CostKnown)
				}
				return
			}
			if !r.Usage.Known || r.Usage.Input != bedrocktest.AgentTraceInputTokens || r.Usage.Output != bedrocktest.AgentTraceOutputTokens {
				t.Fatalf("usage %+v; want the traces' sum %d in, %d out", r.Usage, bedrocktest.AgentTraceInputTokens, bedrocktest.AgentTraceOutputTokens)
			}
			if !r.CostKnown || math.Abs(r.CostUSD-wantCost) > 1e-12 {
				t.Fatalf("cost %v known %v; want %v", r.CostUSD, r.CostKnown, wantCost)
			}
			if !strings.Contains(strings.Join(r.Agent.Models, ","), haiku) {
				t.Fatalf("record models %v do not name the traces' model %s", r.Agent.Models, haiku)
			}
		})
	}
}
