package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-egress/warden/authz/policy"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
)

// appEnv runs basePolicy with extra keys (indented four spaces) in its app.
func appEnv(t *testing.T, keys string) *env {
	t.Helper()
	return startEnv(t, withPolicy(basePolicy+keys))
}

func wantValidation(t *testing.T, err error, parts ...string) {
	t.Helper()
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want ValidationException", err)
	}
	for _, p := range parts {
		if !strings.Contains(ve.ErrorMessage(), p) {
			t.Errorf("message %q does not mention %q", ve.ErrorMessage(), p)
		}
	}
}

func TestCapsMaxOutputTokensReject(t *testing.T) {
	e := appEnv(t, "    limits: {max_output_tokens: 100}\n")
	c := e.client(t, nil)
	ctx := context.Background()
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(101)}})
	wantValidation(t, err, "asks for 101 output tokens (inferenceConfig.maxTokens)", "app chatbot-prod allows at most 100", "limits.max_output_tokens")
	_, err = c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(strings.Replace(anthropicBody, `"max_tokens":64`, `"max_tokens":4096`, 1))})
	wantValidation(t, err, "asks for 4096 output tokens (max_tokens)")
	// Through additionalModelRequestFields, which Bedrock hands the model.
	_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		InferenceConfig:              &types.InferenceConfiguration{MaxTokens: aws.Int32(10)},
		AdditionalModelRequestFields: mustDoc(t, `{"max_tokens": 5000}`)})
	wantValidation(t, err, "5000 output tokens (additionalModelRequestFields.max_tokens)")
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
	recs := e.audit.wait(t, 3)
	if r := recs[0]; r.Decision != "deny" || r.Status != 400 || r.Rule != "app.limits.max_output_tokens" {
		t.Errorf("record: decision %q status %d rule %q", r.Decision, r.Status, r.Rule)
	}
	// At or under the cap, and with no value at all: forwarded unchanged.
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(100)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatal(err)
	}
	if calls := e.emu.Calls(); len(calls) != 2 || strings.Contains(string(calls[1].Body), "maxTokens") {
		t.Fatalf("emulator saw %+v", calls)
	}
}

func mustDoc(t *testing.T, j string) document.Interface {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(j), &v); err != nil {
		t.Fatal(err)
	}
	return document.NewLazyDocument(v)
}

func TestCapsMaxOutputTokensClamp(t *testing.T) {
	e := appEnv(t, "    limits: {max_output_tokens: 100, on_exceed: clamp}\n")
	c := e.client(t, nil)
	ctx := context.Background()
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(5000), Temperature: aws.Float32(0.5)}}); err != nil {
		t.Fatalf("Converse above the cap: %v", err)
	}
	body := strings.Replace(anthropicBody, `"max_tokens":64`, `"max_tokens" : 4096.5`, 1)
	if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(body)}); err != nil {
		t.Fatalf("InvokeModel above the cap: %v", err)
	}
	// No value: Converse gets the cap; with an inferenceConfig and without one.
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		InferenceConfig: &types.InferenceConfiguration{Temperature: aws.Float32(0.5)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		AdditionalModelRequestFields: mustDoc(t, `{"top_k": 5, "max_tokens": 900}`)}); err != nil {
		t.Fatal(err)
	}
	calls := e.emu.Calls()
	if len(calls) != 4 {
		t.Fatalf("emulator saw %d calls", len(calls))
	}
	for i, call := range calls {
		if !call.SignatureOK || call.Status != 200 {
			t.Errorf("call %d: signature ok %v (%s), status %d", i, call.SignatureOK, call.AuthError, call.Status)
		}
	}
	var cv struct {
		InferenceConfig struct {
			MaxTokens   *int     `json:"maxTokens"`
			Temperature *float64 `json:"temperature"`
		} `json:"inferenceConfig"`
		Additional map[string]any `json:"additionalModelRequestFields"`
	}
	for _, i := range []int{0, 2, 3} {
		cv.InferenceConfig.MaxTokens = nil
		if err := json.Unmarshal(calls[i].Body, &cv); err != nil || cv.InferenceConfig.MaxTokens == nil || *cv.InferenceConfig.MaxTokens != 100 {
			t.Errorf("call %d body upstream %s, want inferenceConfig.maxTokens 100 (%v)", i, calls[i].Body, err)
		}
	}
	if cv.Additional["max_tokens"] != float64(100) || cv.Additional["top_k"] != float64(5) {
		t.Errorf("additionalModelRequestFields upstream: %v", cv.Additional)
	}
	if want := strings.Replace(body, "4096.5", "100", 1); string(calls[1].Body) != want {
		t.Errorf("InvokeModel body upstream %s, want %s", calls[1].Body, want)
	}
	recs := e.audit.wait(t, 4)
	for i, r := range recs {
		want := audit.Finding{Guard: "limits", Detector: "max_output_tokens", Type: "MAX_TOKENS", Count: 1, Action: policy.LimitClamp}
		if i == 3 { // additionalModelRequestFields clamped, inferenceConfig.maxTokens added
			want.Count = 2
		}
		if r.Decision != "allow" || len(r.Findings) != 1 || r.Findings[0] != want {
			t.Errorf("record %d: decision %q findings %+v", i, r.Decision, r.Findings)
		}
	}
}

// A body setting the value twice cannot be clamped (a reader could take
// the copy left alone): rejected.
func TestCapsClampRefusesDuplicates(t *testing.T) {
	e := appEnv(t, "    limits: {max_output_tokens: 100, on_exceed: clamp}\n")
	body := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"max_tokens":500}`
	_, err := e.client(t, nil).InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku),
		ContentType: aws.String("application/json"), Body: []byte(body)})
	wantValidation(t, err, "sets max_tokens 2 times")
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
}

func TestCapsMaxPromptChars(t *testing.T) {
	e := appEnv(t, "    limits: {max_prompt_chars: 20}\n")
	c := e.client(t, nil)
	ctx := context.Background()
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("0123456789"),
		System: []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "ünïcødé 123"}}})
	wantValidation(t, err, "holds 21 characters of text", "app chatbot-prod allows at most 20", "limits.max_prompt_chars")
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
	if r := e.audit.wait(t, 1)[0]; r.Rule != "app.limits.max_prompt_chars" || r.Status != 400 {
		t.Errorf("record: rule %q status %d", r.Rule, r.Status)
	}
	// Exactly at the cap (code points, not bytes).
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("012345678"),
		System: []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "ünïcødé 123"}}}); err != nil {
		t.Fatal(err)
	}
	// Native bodies too.
	_, err = c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(strings.Replace(anthropicBody, `"content":"hi"`, `"content":"`+strings.Repeat("x", 21)+`"`, 1))})
	wantValidation(t, err, "holds 21 characters")
}

const guardrailApp = "    bedrock_guardrail: {id: gr123abc, version: \"2\", trace: enabled}\n"

func TestBedrockGuardrailAttached(t *testing.T) {
	e := appEnv(t, guardrailApp)
	c := e.client(t, nil)
	ctx := context.Background()
	if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(anthropicBody)}); err != nil {
		t.Fatal(err)
	}
	st, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku),
		ContentType: aws.String("application/json"), Body: []byte(anthropicBody),
		GuardrailIdentifier: aws.String("gr123abc"), GuardrailVersion: aws.String("2"), Trace: types.TraceDisabled})
	if err != nil {
		t.Fatal(err)
	}
	for range st.GetStream().Events() {
	}
	if err := st.GetStream().Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatal(err)
	}
	// The caller's own config naming the same guardrail: its streamProcessingMode is kept.
	cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		GuardrailConfig: &types.GuardrailStreamConfiguration{GuardrailIdentifier: aws.String("gr123abc"), GuardrailVersion: aws.String("2"),
			StreamProcessingMode: types.GuardrailStreamProcessingModeAsync}})
	if err != nil {
		t.Fatal(err)
	}
	for range cs.GetStream().Events() {
	}
	if err := cs.GetStream().Err(); err != nil {
		t.Fatal(err)
	}
	calls := e.emu.Calls()
	if len(calls) != 4 {
		t.Fatalf("emulator saw %d calls", len(calls))
	}
	for i, call := range calls {
		if !call.SignatureOK || call.Status != 200 {
			t.Errorf("call %d: signature ok %v (%s), status %d", i, call.SignatureOK, call.AuthError, call.Status)
		}
	}
	for i, call := range calls[:2] {
		h := call.Header
		if h.Get("X-Amzn-Bedrock-GuardrailIdentifier") != "gr123abc" || h.Get("X-Amzn-Bedrock-GuardrailVersion") != "2" || h.Get("X-Amzn-Bedrock-Trace") != "ENABLED" {
			t.Errorf("call %d (%s) headers upstream: %v", i, call.Op, h)
		}
	}
	var cv struct {
		GuardrailConfig map[string]string `json:"guardrailConfig"`
	}
	if err := json.Unmarshal(calls[2].Body, &cv); err != nil || len(cv.GuardrailConfig) != 3 || cv.GuardrailConfig["guardrailIdentifier"] != "gr123abc" ||
		cv.GuardrailConfig["guardrailVersion"] != "2" || cv.GuardrailConfig["trace"] != "enabled" {
		t.Errorf("Converse body upstream: %s (%v)", calls[2].Body, err)
	}
	// Added after the caller's members, byte for byte as Warden writes it.
	if !strings.Contains(string(calls[2].Body), `}],"guardrailConfig":{"guardrailIdentifier":"gr123abc","guardrailVersion":"2","trace":"enabled"},`) {
		t.Errorf("Converse body upstream: %s", calls[2].Body)
	}
	cv.GuardrailConfig = nil
	if err := json.Unmarshal(calls[3].Body, &cv); err != nil || cv.GuardrailConfig["streamProcessingMode"] != "async" || cv.GuardrailConfig["trace"] != "enabled" ||
		cv.GuardrailConfig["guardrailIdentifier"] != "gr123abc" {
		t.Errorf("ConverseStream body upstream: %s (%v)", calls[3].Body, err)
	}
}

func TestBedrockGuardrailOverrideDenied(t *testing.T) {
	e := appEnv(t, guardrailApp)
	c := e.client(t, nil)
	ctx := context.Background()
	var ade *types.AccessDeniedException
	_, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(anthropicBody), GuardrailIdentifier: aws.String("lenient"), GuardrailVersion: aws.String("2")})
	if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "app chatbot-prod must use guardrail gr123abc:2") {
		t.Fatalf("InvokeModel naming another guardrail: %v", err)
	}
	_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi"),
		GuardrailConfig: &types.GuardrailConfiguration{GuardrailIdentifier: aws.String("gr123abc"), GuardrailVersion: aws.String("DRAFT")}})
	if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "must use guardrail gr123abc:2 (the call names gr123abc:DRAFT)") {
		t.Fatalf("Converse naming another version: %v", err)
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
	if r := e.audit.wait(t, 2)[1]; r.Decision != "deny" || r.Status != 403 || r.Rule != "app.bedrock_guardrail" {
		t.Errorf("record: decision %q status %d rule %q", r.Decision, r.Status, r.Rule)
	}
}

// A dry-run app records the override and forwards the call as sent.
func TestBedrockGuardrailDryRun(t *testing.T) {
	e := appEnv(t, guardrailApp+"    mode: dry-run\n")
	if _, err := e.client(t, nil).InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku),
		ContentType: aws.String("application/json"), Body: []byte(anthropicBody), GuardrailIdentifier: aws.String("lenient"), GuardrailVersion: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	calls := e.emu.Calls()
	if len(calls) != 1 || calls[0].Header.Get("X-Amzn-Bedrock-GuardrailIdentifier") != "lenient" {
		t.Fatalf("emulator saw %+v", calls)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "dry-run-deny" || r.Rule != "app.bedrock_guardrail" || !strings.Contains(r.Reason, "must use guardrail gr123abc:2") {
		t.Errorf("record: decision %q rule %q reason %q", r.Decision, r.Rule, r.Reason)
	}
}

// Rewriting settings need Warden's signature: passthrough refuses them.
func TestRewritingAppSettingsRefusedUnderPassthrough(t *testing.T) {
	for _, keys := range []string{"    limits: {max_output_tokens: 10, on_exceed: clamp}\n", guardrailApp} {
		p := strings.Replace(basePolicy, "signing: resign", "signing: passthrough", 1) + keys
		_, err := config.ParseConfig([]byte(p))
		if err == nil || !strings.Contains(err.Error(), "passthrough cannot") {
			t.Errorf("%s under passthrough: %v", strings.TrimSpace(keys), err)
		}
	}
}

// rawConverse posts body to Warden's Converse route as is (Warden does not
// check the caller's signature in endpoint mode) and returns the status
// and the error message.
func rawConverse(t *testing.T, e *env, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(e.endpoint+"/model/"+haiku+"/converse", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&msg)
	return resp.StatusCode, msg.Message
}

// The splices keep the caller's bytes and refuse bodies a lenient reader
// could see differently.
func TestCapsAndGuardrailRawBodies(t *testing.T) {
	e := appEnv(t, guardrailApp+"    limits: {max_output_tokens: 100, on_exceed: clamp}\n")
	msgs := `"messages": [ {"role":"user","content":[{"text":"hi"}]} ]`
	ok := []struct{ in, want string }{
		// inferenceConfig without maxTokens gets it after its last member.
		{`{ ` + msgs + `, "inferenceConfig": { "temperature": 0.5 } }`,
			`{ ` + msgs + `, "inferenceConfig": { "temperature": 0.5,"maxTokens":100 },"guardrailConfig":{"guardrailIdentifier":"gr123abc","guardrailVersion":"2","trace":"enabled"} }`},
		// An empty one, and the caller's guardrailConfig (same guardrail) replaced in place.
		{`{"inferenceConfig":{},"guardrailConfig":{"guardrailIdentifier":"gr123abc","trace":"disabled"},` + msgs + `}`,
			`{"inferenceConfig":{"maxTokens":100},"guardrailConfig":{"guardrailIdentifier":"gr123abc","guardrailVersion":"2","trace":"enabled"},` + msgs + `}`},
		// A null guardrailConfig counts as none.
		{`{"guardrailConfig":null,"inferenceConfig":{"maxTokens":1e3},` + msgs + `}`,
			`{"guardrailConfig":{"guardrailIdentifier":"gr123abc","guardrailVersion":"2","trace":"enabled"},"inferenceConfig":{"maxTokens":100},` + msgs + `}`},
	}
	for i, tc := range ok {
		if st, msg := rawConverse(t, e, tc.in); st != 200 {
			t.Fatalf("case %d: status %d %s", i, st, msg)
		}
		calls := e.emu.Calls()
		got := string(calls[len(calls)-1].Body)
		if !calls[len(calls)-1].SignatureOK || !strings.HasPrefix(got, strings.TrimRight(tc.want, " }")) {
			t.Errorf("case %d upstream:\n%s\nwant (before Warden's requestMetadata):\n%s", i, got, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{`{"GuardrailConfig":{"guardrailIdentifier":"x"},` + msgs + `}`, `spell it guardrailConfig`},
		{`{"guardrailConfig":{"guardrailIdentifier":"gr123abc","GuardrailIdentifier":"x"},` + msgs + `}`, `guardrailConfig.GuardrailIdentifier is not a guardrailConfig field`},
		{`{"guardrailConfig":{"guardrailIdentifier":"gr123abc","guardrailIdentifier":"x"},` + msgs + `}`, `guardrailConfig repeats guardrailIdentifier`},
		{`{"guardrailConfig":{"guardrailVersion":2},` + msgs + `}`, `guardrailConfig.guardrailVersion must be a string`},
		{`{"guardrailConfig":"gr123abc",` + msgs + `}`, `guardrailConfig must be an object`},
		{`{"inferenceConfig":{"maxTokens":"lots"},` + msgs + `}`, `inferenceConfig.maxTokens is not a number`},
		{`{"additionalModelRequestFields":{"max_tokens":null},` + msgs + `}`, `additionalModelRequestFields.max_tokens is not a number`},
		{`{"inferenceConfig":{"temperature":1},"InferenceConfig":{"maxTokens":5000},` + msgs + `}`, `repeats the top-level key inferenceConfig`},
	}
	for _, tc := range bad {
		st, msg := rawConverse(t, e, tc.in)
		if st != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: status %d %q, want 400 mentioning %q", tc.in, st, msg, tc.want)
		}
	}
	if st, msg := rawConverse(t, e, `{"guardrailConfig":{"guardrailIdentifier":"other","guardrailVersion":"2"},`+msgs+`}`); st != 403 ||
		msg != "warden: app chatbot-prod must use guardrail gr123abc:2 (the call names other:2)" {
		t.Errorf("override: %d %q", st, msg)
	}
	if n := len(e.emu.Calls()); n != len(ok) {
		t.Errorf("emulator saw %d calls, want %d", n, len(ok))
	}
}
