package policy

import (
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

func TestApplyCompat(t *testing.T) {
	open := &AppConfig{Name: "a"}
	reject := &AppConfig{Name: "a", Limits: AppLimitsConfig{MaxOutputTokens: 100}}
	clamp := &AppConfig{Name: "a", Limits: AppLimitsConfig{MaxOutputTokens: 100, OnExceed: LimitClamp}}
	guarded := &AppConfig{Name: "a", BedrockGuardrail: &BedrockGuardrailConfig{ID: "gr1", Version: "1"}}
	chat, resp, msgs := bedrock.OpOpenAIChatCompletions, bedrock.OpMantleResponses, bedrock.OpMantleMessages
	cases := []struct {
		name        string
		app         *AppConfig
		op          bedrock.Operation
		passthrough bool
		body        string
		want        string // the body forwarded ("" = unchanged)
		err         string // the refusal, if any
		clamped     int
	}{
		{"chat unchanged", open, chat, false, `{"model":"m","messages":[]}`, "", "", 0},
		{"chat stream gets usage", open, chat, false, `{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, "", 0},
		{"chat stream usage false", open, chat, false, `{"stream":true,"stream_options":{"include_usage":false}}`, `{"stream":true,"stream_options":{"include_usage":true}}`, "", 0},
		{"chat stream usage kept", open, chat, false, `{"stream":true,"stream_options":{"include_usage":true}}`, "", "", 0},
		{"chat store true", open, chat, false, `{"store":true}`, `{"store":false}`, "", 0},
		{"chat store passthrough", open, chat, true, `{"store":true}`, "", "caller's signature", 0},
		{"chat key case", open, chat, false, `{"Stream":true}`, "", "spell it stream", 0},
		{"chat key repeated", open, chat, false, `{"max_tokens":1,"max_tokens":2}`, "", "repeats the key max_tokens", 0},
		{"chat stream not bool", open, chat, false, `{"stream":"yes"}`, "", "stream must be true or false", 0},
		{"not json", open, chat, false, `{"a":`, "", "single valid JSON object", 0},
		{"responses store added", open, resp, false, `{"model":"m"}`, `{"model":"m","store":false}`, "", 0},
		{"responses store empty", open, resp, false, `{}`, `{"store":false}`, "", 0},
		{"responses store true", open, resp, false, `{"store":true }`, `{"store":false }`, "", 0},
		{"responses store passthrough", open, resp, true, `{"model":"m"}`, "", "store must be false", 0},
		{"responses previous id", open, resp, false, `{"previous_response_id":"resp_1"}`, "", "previous_response_id", 0},
		{"responses background", open, resp, false, `{"background":true,"store":false}`, "", "background", 0},
		{"reject over cap", reject, chat, false, `{"max_tokens":500}`, "", "asks for 500 output tokens (max_tokens)", 0},
		{"reject completion over cap", reject, chat, false, `{"max_completion_tokens":101}`, "", "max_completion_tokens", 0},
		{"reject n", reject, chat, false, `{"max_tokens":5,"n":3}`, "", "n=3", 0},
		{"reject under cap", reject, chat, false, `{"max_tokens":100,"n":1}`, "", "", 0},
		{"reject not a number", reject, msgs, false, `{"max_tokens":"9"}`, "", "not a whole number", 0},
		{"clamp chat", clamp, chat, false, `{"max_tokens":500,"n":2}`, `{"max_tokens":100,"n":1}`, "", 2},
		{"clamp chat adds", clamp, chat, false, `{"model":"m"}`, `{"model":"m","max_completion_tokens":100}`, "", 1},
		{"clamp responses", clamp, resp, false, `{"max_output_tokens":4096,"store":false}`, `{"max_output_tokens":100,"store":false}`, "", 1},
		{"clamp responses adds", clamp, resp, false, `{"store":false}`, `{"store":false,"max_output_tokens":100}`, "", 1},
		{"clamp messages", clamp, msgs, false, `{"max_tokens":1024}`, `{"max_tokens":100}`, "", 1},
		{"clamp passthrough rejects", clamp, msgs, true, `{"max_tokens":1024}`, "", "asks for 1024", 0},
		{"guardrail app refused", guarded, chat, false, `{"model":"m"}`, "", "cannot attach", 0},
		{"guardrail app refused on responses", guarded, resp, false, `{"model":"m"}`, "", "documents no guardrail setting", 0},
		{"guardrail app refused on messages", guarded, msgs, false, `{"model":"m"}`, "", "cannot attach", 0},
		{"guardrail app refused on sessions", guarded, bedrock.OpAnthropicSessions, false, `{"agent":"a"}`, "", "cannot attach", 0},
		{"guardrail app refused on agents", guarded, bedrock.OpAnthropicAgents, false, ``, "", "cannot attach", 0},
		{"sessions without guardrail", open, bedrock.OpAnthropicSessions, false, `{"agent":"a"}`, "", "", 0},
		{"not compat", open, bedrock.OpConverse, false, `{"store":true}`, "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := CapRequest{Op: tc.op, Body: []byte(tc.body), Passthrough: tc.passthrough,
				Extract: func() (bedrock.Extracted, error) { return bedrock.ExtractRequest(tc.op, "", []byte(tc.body)) }}
			res, err := tc.app.ApplyCaps(Decision{Allow: true}, req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || res.Rule == "" {
					t.Fatalf("err %v (rule %q), want one saying %q", err, res.Rule, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.Body); got != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
			if res.Clamped != tc.clamped {
				t.Errorf("clamped %d, want %d", res.Clamped, tc.clamped)
			}
		})
	}
}

func FuzzApplyCompat(f *testing.F) {
	for _, s := range []string{`{"stream":true}`, `{"max_tokens":500,"n":2}`, `{"store":true,"max_output_tokens":1e9}`, `{}`, `{"stream_options":{"include_usage":true,"include_usage":false},"stream":true}`} {
		f.Add(s, uint8(0))
	}
	app := &AppConfig{Name: "a", Limits: AppLimitsConfig{MaxOutputTokens: 100, OnExceed: LimitClamp}}
	ops := []bedrock.Operation{bedrock.OpOpenAIChatCompletions, bedrock.OpOpenAIResponses, bedrock.OpMantleMessages}
	f.Fuzz(func(t *testing.T, body string, opi uint8) {
		op := ops[int(opi)%len(ops)]
		res, err := app.ApplyCaps(Decision{Allow: true}, CapRequest{Op: op, Body: []byte(body),
			Extract: func() (bedrock.Extracted, error) { return bedrock.ExtractRequest(op, "", []byte(body)) }})
		if err != nil || res.Body == nil {
			return
		}
		// Whatever Warden rewrote is still one JSON object, and applying
		// the caps again changes nothing.
		if _, _, err := bedrock.ScanObject(res.Body); err != nil {
			t.Fatalf("rewrote %q into invalid JSON %q: %v", body, res.Body, err)
		}
		again, err := app.ApplyCaps(Decision{Allow: true}, CapRequest{Op: op, Body: res.Body,
			Extract: func() (bedrock.Extracted, error) { return bedrock.ExtractRequest(op, "", res.Body) }})
		if err != nil || again.Body != nil {
			t.Fatalf("second pass over %q: body %q err %v", res.Body, again.Body, err)
		}
	})
}
