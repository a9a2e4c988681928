package guard

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock"
)

// fakeGuardrail is a Guardrail that answers from a table and remembers the
// calls, so the guards' use of ApplyGuardrail is tested without AWS (the
// proxy tests run the real SDK client against the emulator).
type fakeGuardrail struct {
	verdict Verdict
	err     error
	calls   []GuardrailRequest
	// deadlines are how far off each call's deadline was (0: none).
	deadlines []time.Duration
}

func (f *fakeGuardrail) ApplyGuardrail(ctx context.Context, req GuardrailRequest) (Verdict, error) {
	f.calls = append(f.calls, req)
	var d time.Duration
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	f.deadlines = append(f.deadlines, d)
	return f.verdict, f.err
}

// compileApp compiles one app "a" applying the named guards of defs.
func compileApp(t *testing.T, defs map[string]Config, names ...string) *Guards {
	t.Helper()
	set, err := Compile([]App{{Name: "a", Guards: names}}, defs)
	if err != nil {
		t.Fatal(err)
	}
	return set.For("a")
}

func converseRequest(texts ...string) []byte {
	var parts []string
	for _, t := range texts {
		parts = append(parts, fmt.Sprintf(`{"text":%s}`, bedrock.JSONString(t)))
	}
	return []byte(`{"messages":[{"role":"user","content":[` + strings.Join(parts, ",") + `]}]}`)
}

func request(t *testing.T, body []byte) Request {
	t.Helper()
	ex, err := bedrock.ExtractRequest(bedrock.OpConverse, bedrock.FamilyUnknown, body)
	return Request{Body: body, Extracted: ex, ExtractErr: err}
}

var testDefs = map[string]Config{
	"pii-block":  {PII: &PIIConfig{Types: []string{"US_SOCIAL_SECURITY_NUMBER"}}},
	"pii-mask":   {PII: &PIIConfig{Types: []string{"EMAIL"}, Action: Mask}},
	"words":      {Words: &WordsConfig{List: []string{"acme corp"}, Action: Record}, Unscannable: Allow},
	"br":         {Bedrock: &BedrockConfig{ID: "abc123", Version: "1"}},
	"br-record":  {Bedrock: &BedrockConfig{ID: "abc123", Version: "2", Action: Record, OnError: Allow}},
	"br-timeout": {Bedrock: &BedrockConfig{ID: "abc123", Version: "1", Timeout: time.Hour}},
	"in-mask":    {PII: &PIIConfig{Types: []string{"EMAIL"}, Action: Mask}, AppliesTo: []string{Input}},
	"out-mask":   {PII: &PIIConfig{Types: []string{"EMAIL"}, Action: Mask}, AppliesTo: []string{Output}},
	"out-block":  {PII: &PIIConfig{Types: []string{"EMAIL"}}, AppliesTo: []string{Output}},
	"out-br":     {Bedrock: &BedrockConfig{ID: "abc123", Version: "1"}, AppliesTo: []string{Output}},
}

func TestCheckInput(t *testing.T) {
	ssn := converseRequest("my ssn is 123-45-6789")
	intervened := Verdict{Intervened: true, Types: []string{"TOPIC:Finance"}}
	cases := []struct {
		name   string
		guards []string
		req    Request
		gr     *fakeGuardrail
		want   Outcome
		// wantBody is the masked body (want.Body is ignored); calls is
		// how many ApplyGuardrail calls are expected.
		wantBody string
		calls    int
	}{
		{name: "block", guards: []string{"pii-block"}, req: request(t, ssn), want: Outcome{
			Findings: []Finding{{Guard: "pii-block", Detector: "pii", Type: "US_SOCIAL_SECURITY_NUMBER", Count: 1, Action: Block}},
			Message:  "guard pii-block: the request holds US_SOCIAL_SECURITY_NUMBER", Rule: "guards.pii-block"}},
		{name: "dry-run records the block", guards: []string{"pii-block"}, req: func() Request { r := request(t, ssn); r.DryRun = true; return r }(), want: Outcome{
			Findings: []Finding{{Guard: "pii-block", Detector: "pii", Type: "US_SOCIAL_SECURITY_NUMBER", Count: 1, Action: Record}},
			Message:  "guard pii-block: the request holds US_SOCIAL_SECURITY_NUMBER", Rule: "guards.pii-block", DryRun: true}},
		{name: "mask", guards: []string{"pii-mask"}, req: request(t, converseRequest("mail jo@example.com, or jo@example.com")),
			want:     Outcome{Findings: []Finding{{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 2, Action: Mask}}},
			wantBody: `{"messages":[{"role":"user","content":[{"text":"mail {EMAIL}, or {EMAIL}"}]}]}`},
		// The masked text is the normalised one ("–" folds to "-") even
		// when a later guard finds nothing in it.
		{name: "mask then a guard that finds nothing", guards: []string{"pii-mask", "words"}, req: request(t, converseRequest("pages 3–5: jo@example.com")),
			want:     Outcome{Findings: []Finding{{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask}}},
			wantBody: `{"messages":[{"role":"user","content":[{"text":"pages 3-5: {EMAIL}"}]}]}`},
		{name: "a recording guard before a masking one", guards: []string{"words", "pii-mask"}, req: request(t, converseRequest("3–5 acme corp, jo@example.com")),
			want: Outcome{Findings: []Finding{
				{Guard: "words", Detector: "words", Type: "DENIED_WORDS", Count: 1, Action: Record},
				{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask},
			}},
			wantBody: `{"messages":[{"role":"user","content":[{"text":"3-5 acme corp, {EMAIL}"}]}]}`},
		{name: "mask under passthrough blocks", guards: []string{"pii-mask"},
			req: func() Request { r := request(t, converseRequest("jo@example.com")); r.Passthrough = true; return r }(), want: Outcome{
				Findings: []Finding{{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Block}},
				Message:  "guard pii-mask: the request holds EMAIL", Rule: "guards.pii-mask"}},
		{name: "record", guards: []string{"words"}, req: request(t, converseRequest("ACME Corp and acme corp")),
			want: Outcome{Findings: []Finding{{Guard: "words", Detector: "words", Type: "DENIED_WORDS", Count: 2, Action: Record}}}},
		{name: "not JSON is unscannable", guards: []string{"pii-block", "words"}, req: request(t, []byte("not json")), want: Outcome{
			Findings: []Finding{
				{Guard: "pii-block", Type: "UNSCANNABLE", Count: 1, Action: Block},
				{Guard: "words", Type: "UNSCANNABLE", Count: 1, Action: Allow},
			},
			Message: "guard pii-block: the request holds content Warden cannot scan (the body (not JSON)) and the guard blocks unscannable content",
			Rule:    "guards.pii-block"}},
		{name: "an empty body is not scanned", guards: []string{"pii-block", "br"}, req: Request{Body: []byte(" ")}, gr: &fakeGuardrail{}},
		{name: "bedrock intervenes", guards: []string{"br"}, req: request(t, converseRequest("a", "b")), gr: &fakeGuardrail{verdict: intervened}, calls: 1, want: Outcome{
			Findings: []Finding{
				{Guard: "br", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL", Count: 1, Action: Block},
				{Guard: "br", Detector: "bedrock", Type: "TOPIC:Finance", Count: 1, Action: Block},
			},
			Message: "guard br: the request holds BEDROCK_GUARDRAIL, TOPIC:Finance", Rule: "guards.br"}},
		{name: "bedrock passes", guards: []string{"br"}, req: request(t, converseRequest("a")), gr: &fakeGuardrail{}, calls: 1},
		{name: "bedrock records", guards: []string{"br-record"}, req: request(t, converseRequest("a")), gr: &fakeGuardrail{verdict: intervened}, calls: 1, want: Outcome{
			Findings: []Finding{
				{Guard: "br-record", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL", Count: 1, Action: Record},
				{Guard: "br-record", Detector: "bedrock", Type: "TOPIC:Finance", Count: 1, Action: Record},
			}}},
		{name: "bedrock timeout blocks", guards: []string{"br"}, req: request(t, converseRequest("a")), gr: &fakeGuardrail{err: context.DeadlineExceeded}, calls: 1, want: Outcome{
			Findings: []Finding{{Guard: "br", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL_ERROR", Count: 1, Action: Block}},
			Message:  "guard br: the Bedrock guardrail abc123 (version 1) could not be applied (timed out) and the guard blocks on error",
			Rule:     "guards.br"}},
		{name: "bedrock error allowed", guards: []string{"br-record"}, req: request(t, converseRequest("a")), gr: &fakeGuardrail{err: errors.New("dial tcp: refused")}, calls: 1,
			want: Outcome{Findings: []Finding{{Guard: "br-record", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL_ERROR", Count: 1, Action: Allow}}}},
		{name: "no guardrail client", guards: []string{"br"}, req: request(t, converseRequest("a")), want: Outcome{
			Findings: []Finding{{Guard: "br", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL_ERROR", Count: 1, Action: Block}},
			Message:  "guard br: the Bedrock guardrail abc123 (version 1) could not be applied (no client) and the guard blocks on error",
			Rule:     "guards.br"}},
		{name: "a blocked request spares the paid call", guards: []string{"pii-block", "br"}, req: request(t, ssn), gr: &fakeGuardrail{verdict: intervened}, want: Outcome{
			Findings: []Finding{{Guard: "pii-block", Detector: "pii", Type: "US_SOCIAL_SECURITY_NUMBER", Count: 1, Action: Block}},
			Message:  "guard pii-block: the request holds US_SOCIAL_SECURITY_NUMBER", Rule: "guards.pii-block"}},
		{name: "dry-run still makes the paid call", guards: []string{"pii-block", "br"},
			req: func() Request { r := request(t, ssn); r.DryRun = true; return r }(), gr: &fakeGuardrail{verdict: intervened}, calls: 1, want: Outcome{
				Findings: []Finding{
					{Guard: "pii-block", Detector: "pii", Type: "US_SOCIAL_SECURITY_NUMBER", Count: 1, Action: Record},
					{Guard: "br", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL", Count: 1, Action: Record},
					{Guard: "br", Detector: "bedrock", Type: "TOPIC:Finance", Count: 1, Action: Record},
				},
				Message: "guard pii-block: the request holds US_SOCIAL_SECURITY_NUMBER; guard br: the request holds BEDROCK_GUARDRAIL, TOPIC:Finance",
				Rule:    "guards.pii-block", DryRun: true}},
		{name: "output guards do not check requests", guards: []string{"out-block"}, req: request(t, converseRequest("jo@example.com"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gr Guardrail
			if tc.gr != nil {
				gr = tc.gr
			}
			got := compileApp(t, testDefs, tc.guards...).CheckInput(context.Background(), tc.req, gr)
			if string(got.Body) != tc.wantBody {
				t.Errorf("body %s, want %s", got.Body, tc.wantBody)
			}
			got.Body = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("outcome\n%+v\nwant\n%+v", got, tc.want)
			}
			if got.Blocked() != (tc.want.Message != "") {
				t.Errorf("Blocked() = %v", got.Blocked())
			}
			if tc.gr != nil && len(tc.gr.calls) != tc.calls {
				t.Errorf("%d ApplyGuardrail calls, want %d", len(tc.gr.calls), tc.calls)
			}
		})
	}
}

// The bedrock: detector sends every text of the call, as the guard names
// the guardrail, with the guard's timeout on the caller's context.
func TestCheckInputGuardrailRequest(t *testing.T) {
	for _, tc := range []struct {
		guard   string
		timeout time.Duration
	}{{"br", DefaultBedrockTimeout}, {"br-timeout", time.Hour}} {
		gr := &fakeGuardrail{}
		compileApp(t, testDefs, tc.guard).CheckInput(context.Background(), request(t, converseRequest("one", "two")), gr)
		want := []GuardrailRequest{{ID: "abc123", Version: "1", Source: types.GuardrailContentSourceInput, Texts: []string{"one", "two"}}}
		if !reflect.DeepEqual(gr.calls, want) {
			t.Errorf("%s: calls %+v, want %+v", tc.guard, gr.calls, want)
		}
		if d := gr.deadlines[0]; d <= 0 || d > tc.timeout {
			t.Errorf("%s: the call's deadline is %v away, want within %v", tc.guard, d, tc.timeout)
		}
	}
}

func converseAnswer(text string) []byte {
	return []byte(`{"output":{"message":{"role":"assistant","content":[{"text":` + string(bedrock.JSONString(text)) + `}]}},"stopReason":"end_turn"}`)
}

func TestCheckAnswer(t *testing.T) {
	answer := converseAnswer("write to jo@example.com")
	cases := []struct {
		name     string
		guards   []string
		a        Answer
		gr       *fakeGuardrail
		want     Outcome
		wantBody string
	}{
		{name: "mask", guards: []string{"out-mask"}, a: Answer{Op: bedrock.OpConverse, Body: answer},
			want:     Outcome{Findings: []Finding{{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask, Phase: PhaseOutput}}},
			wantBody: string(converseAnswer("write to {EMAIL}"))},
		{name: "mask then a guard that finds nothing", guards: []string{"out-mask", "words"}, a: Answer{Op: bedrock.OpConverse, Body: converseAnswer("pages 3–5: jo@example.com")},
			want:     Outcome{Findings: []Finding{{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask, Phase: PhaseOutput}}},
			wantBody: string(converseAnswer("pages 3-5: {EMAIL}"))},
		{name: "block", guards: []string{"out-block"}, a: Answer{Op: bedrock.OpConverse, Body: answer}, want: Outcome{
			Findings: []Finding{{Guard: "out-block", Detector: "pii", Type: "EMAIL", Count: 1, Action: Block, Phase: PhaseOutput}},
			Message:  "guard out-block: the response holds EMAIL", Rule: "guards.out-block"}},
		{name: "dry-run records and masks", guards: []string{"out-block", "out-mask"}, a: Answer{Op: bedrock.OpConverse, Body: answer, DryRun: true}, want: Outcome{
			Findings: []Finding{
				{Guard: "out-block", Detector: "pii", Type: "EMAIL", Count: 1, Action: Record, Phase: PhaseOutput},
				{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask, Phase: PhaseOutput},
			},
			Message: "guard out-block: the response holds EMAIL", Rule: "guards.out-block", DryRun: true},
			wantBody: string(converseAnswer("write to {EMAIL}"))},
		{name: "oversize", guards: []string{"out-block"}, a: Answer{Op: bedrock.OpConverse, Body: answer, Oversize: true}, want: Outcome{
			Findings: []Finding{{Guard: "out-block", Type: "UNSCANNABLE", Count: 1, Action: Block, Phase: PhaseOutput}},
			Message:  fmt.Sprintf("guard out-block: the response holds content Warden cannot scan (a response body over the %d bytes Warden scans) and the guard blocks unscannable content", MaxAnswerBytes),
			Rule:     "guards.out-block"}},
		{name: "compressed", guards: []string{"out-block"}, a: Answer{Op: bedrock.OpConverse, Body: answer, ContentEncoding: "gzip"}, want: Outcome{
			Findings: []Finding{{Guard: "out-block", Type: "UNSCANNABLE", Count: 1, Action: Block, Phase: PhaseOutput}},
			Message:  "guard out-block: the response holds content Warden cannot scan (the body (Content-Encoding gzip)) and the guard blocks unscannable content",
			Rule:     "guards.out-block"}},
		{name: "identity encoding is scanned", guards: []string{"out-mask"}, a: Answer{Op: bedrock.OpConverse, Body: answer, ContentEncoding: "identity"},
			want:     Outcome{Findings: []Finding{{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask, Phase: PhaseOutput}}},
			wantBody: string(converseAnswer("write to {EMAIL}"))},
		{name: "bedrock checks the unmasked answer", guards: []string{"out-mask", "out-br"}, a: Answer{Op: bedrock.OpConverse, Body: answer},
			gr: &fakeGuardrail{verdict: Verdict{Intervened: true}}, want: Outcome{
				Findings: []Finding{
					{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: Mask, Phase: PhaseOutput},
					{Guard: "out-br", Detector: "bedrock", Type: "BEDROCK_GUARDRAIL", Count: 1, Action: Block, Phase: PhaseOutput},
				},
				Message: "guard out-br: the response holds BEDROCK_GUARDRAIL", Rule: "guards.out-br"}},
		{name: "input guards do not check answers", guards: []string{"in-mask"}, a: Answer{Op: bedrock.OpConverse, Body: answer}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gr Guardrail
			if tc.gr != nil {
				gr = tc.gr
			}
			got := compileApp(t, testDefs, tc.guards...).CheckAnswer(context.Background(), tc.a, gr)
			if string(got.Body) != tc.wantBody {
				t.Errorf("body %s, want %s", got.Body, tc.wantBody)
			}
			got.Body = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("outcome\n%+v\nwant\n%+v", got, tc.want)
			}
			if tc.gr != nil {
				want := []GuardrailRequest{{ID: "abc123", Version: "1", Source: types.GuardrailContentSourceOutput, Texts: []string{"write to jo@example.com"}}}
				if !reflect.DeepEqual(tc.gr.calls, want) {
					t.Errorf("calls %+v, want %+v", tc.gr.calls, want)
				}
			}
		})
	}
}

func TestCompile(t *testing.T) {
	defs := map[string]Config{"g": {Injection: &InjectionConfig{}}, "out": {Injection: &InjectionConfig{}, AppliesTo: []string{Output}}}
	set, err := Compile([]App{{Name: "a", Guards: []string{"g", "out"}, DryRun: true}, {Name: "b", Guards: []string{"g"}}, {Name: "none"}}, defs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := set.For("a"), set.For("b")
	if !a.HasInput() || !a.HasOutput() || !a.DryRun() || len(a.input) != 1 || len(a.output) != 2 {
		t.Errorf("a: %+v", a)
	}
	if !b.HasInput() || !b.HasOutput() || b.DryRun() {
		t.Errorf("b: %+v", b)
	}
	if a.input[0] != b.input[0] {
		t.Errorf("guard g compiled twice")
	}
	for _, app := range []string{"none", "unknown"} {
		if g := set.For(app); g != nil || g.HasInput() || g.HasOutput() || g.DryRun() {
			t.Errorf("%s: %+v", app, g)
		}
	}
	var nilSet *Set
	if nilSet.For("a") != nil {
		t.Errorf("a nil Set has guards")
	}
	if _, err := Compile([]App{{Name: "a", Guards: []string{"nope"}}}, defs); err == nil || !strings.Contains(err.Error(), `app a: guard "nope" is not defined`) {
		t.Errorf("undefined guard: %v", err)
	}
	bad := map[string]Config{"m": {Bedrock: &BedrockConfig{ID: "x", Version: "1", Action: Mask}}}
	if _, err := Compile([]App{{Name: "a", Guards: []string{"m"}}}, bad); err == nil || !strings.Contains(err.Error(), "guard m: bedrock.action: mask is not supported") {
		t.Errorf("bedrock mask: %v", err)
	}
}
