package proxy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/proxy"
)

// appBudgetGauge reads one of the budget gauges of app.
func appBudgetGauge(t *testing.T, s *proxy.Server, app, name, kind string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "budget") == kind && label(m, "app") == app {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0 // nothing counted yet
}

// startCompatBudgetEnv is startCompatEnv with a token budget on the
// guarded app oai (payments) and the unguarded app oai-b (payments-b).
func startCompatBudgetEnv(t *testing.T) *compatEnv {
	t.Helper()
	file := filepath.Join(t.TempDir(), "master.key")
	if _, err := identity.GenerateMasterKey(file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(file)
	if err != nil {
		t.Fatal(err)
	}
	key := func(app string) string {
		akid, _, err := identity.IssueKey(master, app, time.Now().Add(24*time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return akid
	}
	cfg := bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{wardenKey: wardenSecret}, Logf: bedrocktest.TestLogf(t),
		Reply:  compatReply,
		Deltas: func(_, text string) []string { return splitEvery(text, 2) }}
	runtime := bedrocktest.NewServer(cfg)
	t.Cleanup(runtime.Close)
	cfg.Service = bedrocktest.ServiceMantle
	mantle := bedrocktest.NewServer(cfg)
	t.Cleanup(mantle.Close)
	e := &env{emu: runtime, cp: newControlPlane(t), audit: newRecorder()}
	budgets := "    limits: {max_output_tokens: 64, on_exceed: clamp}\n    budgets: {tokens_per_day: 100000}\n"
	policy := fmt.Sprintf(compatPolicy, e.emu.URL, mantle.URL, e.cp.URL, file)
	policy = strings.Replace(policy, "MantleChatCompletions, MantleResponses]\n", "MantleChatCompletions, MantleResponses, MantleMessages]\n", 1)
	for _, after := range []string{"    guards: [pii-block, card-out]\n",
		"      operations: [\"*\", OpenAIChatCompletions, OpenAIResponses, MantleChatCompletions, MantleResponses, MantleMessages]\n"} {
		if !strings.Contains(policy, after) {
			t.Fatalf("compatPolicy has no %q", after)
		}
		policy = strings.Replace(policy, after, after+budgets, 1)
	}
	e.start(t, policy, "", nil)
	return &compatEnv{env: e, mantle: mantle, cp: e.cp, key: identity.BearerKeyFor(master, key("payments")),
		keyB: identity.BearerKeyFor(master, key("payments-b"))}
}

// TestReview31CompatStreamCutCountsText: an OpenAI-compatible chat stream
// cut before its usage chunk (the client hangs up, or the upstream drops
// the connection) settles its budget with the text it relayed, as a cut
// ConverseStream does (TestBudgetStreamSettles) — not with no output at
// all, which let a client read a whole answer and hang up before the last
// chunk for free. Guarded (output guard, NextSSE) and unguarded.
func TestReview31CompatStreamCutCountsText(t *testing.T) {
	e := startCompatBudgetEnv(t)
	prompt := "hello there, count what you send me"
	for _, tc := range []struct {
		name, app, key string
	}{
		{"guarded", "oai", e.key},
		{"unguarded", "oai-b", e.keyB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day")
			recs := len(e.audit.wait(t, 0))
			e.emu.Inject(bedrocktest.Fault{Op: "OpenAIChatCompletions", ResetAfterEvents: 12})
			c := openai.NewClient(option.WithBaseURL(e.endpoint+"/openai/v1"), option.WithAPIKey(tc.key), option.WithMaxRetries(0))
			st := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
			})
			var text strings.Builder
			for st.Next() {
				for _, ch := range st.Current().Choices {
					text.WriteString(ch.Delta.Content)
				}
			}
			if st.Err() == nil {
				t.Fatal("the cut stream ended cleanly")
			}
			if text.Len() < 8 {
				t.Fatalf("only %q relayed before the cut: the test cuts too early", text.String())
			}
			rec := e.audit.wait(t, recs+1)[recs]
			e.srv.WaitBudgets()
			if rec.Usage.Known {
				t.Fatalf("the cut stream's usage is known (%+v): the test does not cut before the usage chunk", rec.Usage)
			}
			used := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day") - before
			// The prompt's estimate, and the answer's text: at least what
			// the client got (a guard may hold some back), at most the
			// reservation (max_output_tokens 64).
			checkCutSettled(t, used, budget.EstimateTokens(len(prompt)), "prompt", text.Len(), 64)
			t.Logf("%d bytes relayed, %v tokens settled", text.Len(), used)
		})
	}
}

// TestReview31MessagesStreamCutCountsText: a Messages stream states its
// usage twice — message_start (the input, and an output of 1) and, at its
// end, message_delta (the output). One cut between them (the client hangs
// up, or the upstream drops the connection) has a usage Warden knows,
// with an output of 1: it settles at least the text it relayed, not 1.
func TestReview31MessagesStreamCutCountsText(t *testing.T) {
	e := startCompatBudgetEnv(t)
	for _, tc := range []struct {
		name, app, key string
	}{
		{"guarded", "oai", e.key},
		{"unguarded", "oai-b", e.keyB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day")
			recs := len(e.audit.wait(t, 0))
			e.mantle.Inject(bedrocktest.Fault{Op: "MantleMessages", ResetAfterEvents: 14})
			body := `{"model":"` + gptOSS + `","max_tokens":60,"stream":true,"messages":[{"role":"user","content":"hello there, count what you send me"}]}`
			req, _ := http.NewRequest("POST", e.endpoint+"/bedrock-mantle/anthropic/v1/messages", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Api-Key", tc.key)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var text strings.Builder
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var ev struct {
					Delta struct{ Text string } `json:"delta"`
				}
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && json.Unmarshal([]byte(data), &ev) == nil {
					text.WriteString(ev.Delta.Text)
				}
			}
			resp.Body.Close()
			if text.Len() < 8 {
				t.Fatalf("only %q relayed before the cut: the test cuts too early", text.String())
			}
			rec := e.audit.wait(t, recs+1)[recs]
			e.srv.WaitBudgets()
			if !rec.Usage.Known || rec.Usage.Output > 1 {
				t.Fatalf("usage %+v: the test does not cut between message_start and message_delta", rec.Usage)
			}
			used := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day") - before
			checkCutSettled(t, used, rec.Usage.Input, "stated input", text.Len(), 60)
			t.Logf("%d bytes relayed, %v tokens settled", text.Len(), used)
		})
	}
}

// TestReview31InvokeStreamCutCountsText: an InvokeModelWithResponseStream
// of an Anthropic model states its usage as Messages does, in chunks
// (message_start: an output of 1; the last chunk's invocation metrics:
// the real counts). Cut in between, with the output guard off, recording
// or masking (b9e6633: a guarded stream counts off the guard's
// extraction), it settles the same: at least the text relayed.
func TestReview31InvokeStreamCutCountsText(t *testing.T) {
	for _, tc := range []struct{ name, guards string }{
		{"unguarded", ""},
		{"record", "    guards: [g]\nguards:\n  g: {pii: {types: [EMAIL], action: record}, applies_to: [output]}\n"},
		{"mask", "    guards: [g]\nguards:\n  g: {pii: {types: [EMAIL], action: mask}, injection: {action: record}, applies_to: [output]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := newEmulator(t)
			// The memory store: this is about what is settled, not where.
			var policy []string
			for _, l := range strings.SplitAfter(budgetPolicyFor("{tokens_per_day: 100000}", "", "fail_closed", 1), "\n") {
				if !strings.Contains(l, "redis") && !strings.Contains(l, "replicas:") {
					policy = append(policy, l)
				}
			}
			r := fleet(t, 1, strings.Join(policy, "")+tc.guards, emu)[0]
			emu.Inject(bedrocktest.Fault{Op: "InvokeModelWithResponseStream", ResetAfterEvents: 6})
			st, err := r.sdk(nil).InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
				ModelId: aws.String(haiku), ContentType: aws.String("application/json"), Body: []byte(anthropicBody)})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			for ev := range st.GetStream().Events() {
				if ch, ok := ev.(*types.ResponseStreamMemberChunk); ok {
					var c struct {
						Delta struct{ Text string } `json:"delta"`
					}
					if json.Unmarshal(ch.Value.Bytes, &c) == nil {
						text.WriteString(c.Delta.Text)
					}
				}
			}
			if st.GetStream().Err() == nil {
				t.Fatal("the cut stream ended cleanly")
			}
			if text.Len() < 8 {
				t.Fatalf("only %q relayed before the cut: the test cuts too early", text.String())
			}
			rec := r.audit.wait(t, 1)[0]
			r.srv.WaitBudgets()
			if !rec.Usage.Known || rec.Usage.Output > 1 {
				t.Fatalf("usage %+v: the test does not cut between message_start and the metrics", rec.Usage)
			}
			used := appBudgetGauge(t, r.srv, "chatbot-prod", "warden_budget_used", "tokens_per_day")
			checkCutSettled(t, used, rec.Usage.Input, "stated input", text.Len(), 64)
			t.Logf("%d bytes relayed, %v tokens settled", text.Len(), used)
		})
	}
}

// TestReview31CompatStreamHangupCountsText is the attack itself: the
// client reads part of a slow chat stream and hangs up before its usage
// chunk; the budget settles at least the text it read.
func TestReview31CompatStreamHangupCountsText(t *testing.T) {
	e := startCompatBudgetEnv(t)
	prompt := "hello there, count what you send me"
	for _, tc := range []struct {
		name, app, key string
	}{
		{"guarded", "oai", e.key},
		{"unguarded", "oai-b", e.keyB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day")
			recs := len(e.audit.wait(t, 0))
			e.emu.Inject(bedrocktest.Fault{Op: "OpenAIChatCompletions", EventDelay: 20 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := openai.NewClient(option.WithBaseURL(e.endpoint+"/openai/v1"), option.WithAPIKey(tc.key), option.WithMaxRetries(0))
			st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
			})
			var text strings.Builder
			for st.Next() {
				for _, ch := range st.Current().Choices {
					text.WriteString(ch.Delta.Content)
				}
				if text.Len() >= 16 {
					cancel() // hang up before the last chunks
					break
				}
			}
			_ = st.Close()
			if text.Len() < 16 {
				t.Fatalf("only %q read: %v", text.String(), st.Err())
			}
			rec := e.audit.wait(t, recs+1)[recs]
			e.srv.WaitBudgets()
			if rec.Usage.Known {
				t.Fatalf("the usage is known (%+v): the client did not hang up before the usage chunk", rec.Usage)
			}
			used := appBudgetGauge(t, e.srv, tc.app, "warden_budget_used", "tokens_per_day") - before
			checkCutSettled(t, used, budget.EstimateTokens(len(prompt)), "prompt", text.Len(), 64)
			t.Logf("%d bytes read, %v tokens settled (record: %d %s)", text.Len(), used, rec.Status, rec.ErrorType)
		})
	}
}

// checkCutSettled asserts what a budgeted stream cut (or hung up on) after
// relaying relayed bytes of text settled: its input (named inName), and for
// its output at least the estimate of the text relayed (a guard may hold
// some back) and at most the reservation.
func checkCutSettled(t *testing.T, used float64, in int64, inName string, relayed int, reserved int64) {
	t.Helper()
	out := budget.EstimateTokens(relayed)
	if used < float64(in+out) || used > float64(in+reserved) {
		t.Fatalf("a stream cut after relaying %d bytes of text settled %v tokens, want %d (%s) + from %d (text relayed) to %d (reserved)",
			relayed, used, in, inName, out, reserved)
	}
}
