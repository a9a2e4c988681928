package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// gptOSS is a model the OpenAI-compatible routes serve.
const gptOSS = "openai.gpt-oss-20b-1:0"

// compatPolicy: app "oai" (a Warden-issued bearer key for app payments) may
// use gpt-oss through the OpenAI-compatible routes on bedrock-runtime and
// bedrock-mantle, with SSNs and card numbers blocked.
const compatPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "%s", mantle_url: "%s", bedrock_url: "%s", insecure: true, signing: resign}
identity:
  sources: [keys]
  keys: {master_key_file: %s}
apps:
  - name: oai
    match: {tags: {warden.key_app: payments}}
    allow:
      models: ["openai.gpt-oss-*"]
      operations: [OpenAIChatCompletions, OpenAIResponses, MantleChatCompletions, MantleResponses, MantleMessages, AnthropicSessions]
    guards: [pii-block, card-out]
  - name: oai-b
    match: {tags: {warden.key_app: payments-b}}
    allow:
      models: ["openai.gpt-oss-*"]
      operations: ["*", OpenAIChatCompletions, OpenAIResponses, MantleChatCompletions, MantleResponses]
  - name: claude
    match: {tags: {warden.key_app: claude}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [InvokeModel, InvokeModelWithResponseStream, AnthropicSessions]
    guards: [pii-block]
  - name: claude-plain
    match: {tags: {warden.key_app: claude-plain}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: ["*"]
guards:
  pii-block: {pii: {types: [US_SOCIAL_SECURITY_NUMBER], action: block}}
  card-out: {pii: {types: [CREDIT_DEBIT_CARD_NUMBER], action: block}, applies_to: [output]}
`

// startCompatEnv runs Warden's endpoint listener (listener "") or forward
// proxy ("proxy") in front of a bedrock-runtime and a bedrock-mantle emulator.
type compatEnv struct {
	*env
	mantle *bedrocktest.Server
	cp     *bedrocktest.ControlPlane // Anthropic's Bedrock-only APIs
	key    string                    // a Warden-issued bearer key for app payments
	// Warden-issued SigV4 keys (access key id, secret) for apps claude
	// (Anthropic's Bedrock-only sessions API named in its policy) and
	// claude-plain (operations "*", which does not include them).
	claudeKey, claudePlainKey [2]string
	keyB                      string // a Warden-issued bearer key for app oai-b (payments-b)
}

func startCompatEnv(t *testing.T) *compatEnv { return startCompatEnvOn(t, "") }

func startCompatEnvOn(t *testing.T, listener string) *compatEnv {
	t.Helper()
	return startCompatEnvWith(t, listener, "")
}

// startCompatEnvWith is startCompatEnvOn with more top-level config
// (YAML appended to compatPolicy).
func startCompatEnvWith(t *testing.T, listener, extra string) *compatEnv {
	t.Helper()
	file := filepath.Join(t.TempDir(), "master.key")
	if _, err := identity.GenerateMasterKey(file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(file)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := identity.IssueKey(master, "payments", time.Now().Add(24*time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sigv4 := func(app string) [2]string {
		akid, secret, err := identity.IssueKey(master, app, time.Now().Add(24*time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return [2]string{akid, secret}
	}
	cfg := bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{wardenKey: wardenSecret}, Logf: bedrocktest.TestLogf(t),
		Reply: compatReply,
		Deltas: func(_, text string) []string {
			if len(text) > 1<<20 {
				return splitEvery(text, 32<<10)
			}
			return splitEvery(text, 2)
		}}
	runtime := bedrocktest.NewServer(cfg)
	t.Cleanup(runtime.Close)
	cfg.Service = bedrocktest.ServiceMantle
	mantle := bedrocktest.NewServer(cfg)
	t.Cleanup(mantle.Close)
	e := &env{emu: runtime, cp: newControlPlane(t), audit: newRecorder()}
	policy := fmt.Sprintf(compatPolicy, e.emu.URL, mantle.URL, e.cp.URL, file) + extra
	if listener == "proxy" {
		policy = strings.Replace(policy, "listen: {endpoint: 127.0.0.1:0}", "listen: {proxy: 127.0.0.1:0}", 1)
	}
	e.start(t, policy, listener, nil)
	return &compatEnv{env: e, mantle: mantle, cp: e.cp, key: identity.BearerKeyFor(master, id),
		claudeKey: sigv4("claude"), claudePlainKey: sigv4("claude-plain"), keyB: identity.BearerKeyFor(master, sigv4("payments-b")[0])}
}

// testCard is a card number (Luhn-valid test PAN) the emulator answers
// with when asked for one; it is never in a prompt.
const testCard = "4111 1111 1111 1111"

// longAnswer is the length of the answer to "long answer please": more
// than the 4 MiB Warden keeps of a unary answer to read its usage.
const longAnswer = 5 << 20

func compatReply(op, model, prompt string) string {
	if strings.Contains(prompt, "card please") {
		return "your card is " + testCard + ", keep it safe"
	}
	if strings.Contains(prompt, "long answer please") {
		return strings.Repeat("a long answer ", longAnswer/14+1)
	}
	return "hello from the emulator, you sent " + fmt.Sprint(len(prompt)) + " characters"
}

// splitEvery cuts s into n-byte pieces (tokens as small as a model's).
func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out, s = append(out, s[:n]), s[n:]
	}
	return append(out, s)
}

// openai is the real OpenAI Go SDK with only its base URL and a
// Warden-issued key set.
func (e *compatEnv) openai(base string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.endpoint+base), option.WithAPIKey(e.key), option.WithMaxRetries(0))
}

// The real OpenAI Go SDK through Warden, on bedrock-runtime's /openai/v1
// and bedrock-mantle's /v1 (endpoint mode, /bedrock-mantle prefix): a chat
// completion, a streamed one and a response reach the right emulator
// signed by Warden for that service; a model the app may not use is the
// SDK's typed 403; an SSN in a prompt is blocked before anything leaves.
func TestOpenAISDKThroughWarden(t *testing.T) {
	e := startCompatEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, base     string
		emu            *bedrocktest.Server
		chatOp, respOp string
	}{
		{"runtime", "/openai/v1", e.emu, "OpenAIChatCompletions", "OpenAIResponses"},
		{"mantle", "/bedrock-mantle/v1", e.mantle, "MantleChatCompletions", "MantleResponses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.openai(tc.base)
			before, recBefore := len(tc.emu.Calls()), len(e.audit.wait(t, 0))
			cc, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
			})
			if err != nil {
				t.Fatalf("chat completion: %v", err)
			}
			if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" {
				t.Fatalf("chat completion = %+v", cc)
			}

			st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
			})
			var acc openai.ChatCompletionAccumulator
			n := 0
			for st.Next() {
				acc.AddChunk(st.Current())
				n++
			}
			if err := st.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if n < 2 || acc.Choices[0].Message.Content != cc.Choices[0].Message.Content {
				t.Fatalf("streamed %d chunks: %q, want %q", n, acc.Choices[0].Message.Content, cc.Choices[0].Message.Content)
			}

			r, err := c.Responses.New(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")},
			})
			if err != nil {
				t.Fatalf("response: %v", err)
			}
			if r.OutputText() == "" {
				t.Fatalf("response: %s", r.RawJSON())
			}

			calls := tc.emu.Calls()[before:]
			if len(calls) != 3 {
				t.Fatalf("emulator saw %d calls, want 3", len(calls))
			}
			for i, want := range []string{tc.chatOp, tc.chatOp, tc.respOp} {
				cl := calls[i]
				if cl.Op != want || !cl.SignatureOK || cl.AccessKeyID != wardenKey || strings.Contains(cl.Header.Get("Authorization"), e.key) {
					t.Errorf("call %d: op %s signature ok %v key %s (%s)", i, cl.Op, cl.SignatureOK, cl.AccessKeyID, cl.AuthError)
				}
			}
			// Usage is always asked for, and nothing is stored upstream.
			if !strings.Contains(string(calls[1].Body), `"stream_options":{"include_usage":true}`) || !strings.Contains(string(calls[2].Body), `"store":false`) {
				t.Errorf("forwarded bodies: %s / %s", calls[1].Body, calls[2].Body)
			}
			for _, rec := range e.audit.wait(t, recBefore+3)[recBefore:] {
				if rec.Decision != audit.DecisionAllow || rec.App != "oai" || rec.Model != gptOSS || !rec.Usage.Known || rec.Usage.Output == 0 || rec.Usage.Input == 0 {
					t.Errorf("audit: decision %s app %s model %s op %s usage %+v", rec.Decision, rec.App, rec.Model, rec.Operation, rec.Usage)
				}
			}

			// A model the app may not use: the SDK's typed error, nothing forwarded.
			_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    "anthropic.claude-3-5-haiku-20241022-v1:0",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "allow.models") && !strings.Contains(apiErr.Message, "may not call") {
				t.Fatalf("denied model: %v", err)
			}
			if apiErr.Code != "AccessDeniedException" {
				t.Errorf("denied model: code %q", apiErr.Code)
			}

			// An SSN in the prompt: blocked, the SDK's typed error.
			_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("my ssn is 123-45-6789")},
			})
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || strings.Contains(apiErr.Message, "123-45-6789") {
				t.Fatalf("SSN prompt: %v", err)
			}
			recs := e.audit.wait(t, recBefore+5)[recBefore+3:]
			if recs[0].Decision != audit.DecisionDeny || recs[1].Decision != audit.DecisionDeny || !strings.HasPrefix(recs[1].Rule, "guard") {
				t.Errorf("audit: %s %s / %s %s", recs[0].Decision, recs[0].Rule, recs[1].Decision, recs[1].Rule)
			}
			if n := len(tc.emu.Calls()) - before; n != 3 {
				t.Fatalf("refused calls reached the upstream (%d calls)", n)
			}
		})
	}
}

// An answer with a card number, under an output guard that blocks card
// numbers: unary, the SDK's typed 403; streamed in 2-byte server-sent
// events, the stream ends with an error the SDK raises and no 4-digit
// fragment of the number ever reaches the client.
func TestOpenAISDKOutputGuard(t *testing.T) {
	e := startCompatEnv(t)
	ctx := context.Background()
	for _, base := range []string{"/openai/v1", "/bedrock-mantle/v1"} {
		t.Run(base, func(t *testing.T) {
			var wire strings.Builder
			c := openai.NewClient(option.WithBaseURL(e.endpoint+base), option.WithAPIKey(e.key), option.WithMaxRetries(0),
				option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
					resp, err := next(req)
					if err == nil {
						resp.Body = teeBody{resp.Body, &wire}
					}
					return resp, err
				}))
			params := openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("my card please")},
			}
			_, err := c.Chat.Completions.New(ctx, params)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || strings.Contains(apiErr.Message, "4111") {
				t.Fatalf("unary answer with a card: %v", err)
			}

			wire.Reset()
			st := c.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			for st.Next() {
				acc.AddChunk(st.Current())
			}
			if st.Err() == nil {
				t.Fatal("the stream with a card number ended without an error")
			}
			got := ""
			if len(acc.Choices) > 0 {
				got = acc.Choices[0].Message.Content
			}
			if !strings.HasPrefix("your card is ", got) && !strings.HasPrefix(got, "your card is") {
				t.Errorf("streamed text %q", got)
			}
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, got)
			if len(digits) >= 4 || strings.Contains(wire.String(), "4111") || strings.Contains(wire.String(), "1111") {
				t.Errorf("a fragment of the card reached the client: text %q", got)
			}
			if !strings.Contains(st.Err().Error(), "CREDIT_DEBIT_CARD_NUMBER") {
				t.Errorf("stream error %v does not name the finding type", st.Err())
			}
			// The same through a streamed response.
			wire.Reset()
			rs := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("my card please")},
			})
			var text strings.Builder
			for rs.Next() {
				if ev := rs.Current(); ev.Type == "response.output_text.delta" {
					text.WriteString(ev.Delta)
				}
			}
			if rs.Err() == nil || strings.Contains(wire.String(), "4111") || strings.Contains(wire.String(), "1111") {
				t.Errorf("streamed response: err %v, text %q", rs.Err(), text.String())
			}

			recs := e.audit.wait(t, 0)
			last := recs[len(recs)-1]
			if last.Decision != audit.DecisionDeny || !strings.HasPrefix(last.Rule, "guard") {
				t.Errorf("audit: %s %s usage %+v", last.Decision, last.Rule, last.Usage)
			}
		})
	}
}

// teeBody copies what the client reads into w.
type teeBody struct {
	io.ReadCloser
	w *strings.Builder
}

func (t teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.w.Write(p[:n])
	return n, err
}

// Forward-proxy mode: the OpenAI SDK pointed at bedrock-mantle's real host
// name, with HTTPS_PROXY at Warden and Warden's CA trusted, is intercepted
// like the runtime: its bearer key identifies the app, the call reaches the
// mantle upstream signed for bedrock-mantle, a denied model is the SDK's
// typed error. The control plane host is not intercepted (no tunnel named:
// refused).
func TestOpenAISDKForwardProxyMantle(t *testing.T) {
	e := startCompatEnvOn(t, "proxy")
	hc := &http.Client{Transport: e.proxyTransport(true)}
	c := openai.NewClient(option.WithBaseURL("https://bedrock-mantle.us-east-1.api.aws/v1"), option.WithAPIKey(e.key),
		option.WithMaxRetries(0), option.WithHTTPClient(hc))
	ctx := context.Background()
	cc, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    gptOSS,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
	})
	if err != nil {
		t.Fatalf("chat completion through the forward proxy: %v", err)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" {
		t.Fatalf("chat completion = %+v", cc)
	}
	calls := e.mantle.Calls()
	if len(calls) != 1 || calls[0].Op != "MantleChatCompletions" || !calls[0].SignatureOK || calls[0].AccessKeyID != wardenKey {
		t.Fatalf("mantle calls: %+v", calls)
	}
	rec := e.audit.wait(t, 1)[0]
	if rec.Decision != audit.DecisionAllow || rec.App != "oai" || rec.Mode != "proxy" || rec.Host != "bedrock-mantle.us-east-1.api.aws" {
		t.Errorf("audit: %s %s mode %s host %s", rec.Decision, rec.App, rec.Mode, rec.Host)
	}
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "anthropic.claude-3-5-haiku-20241022-v1:0",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Fatalf("denied model: %v", err)
	}
	// A path bedrock-mantle has but Warden does not serve: refused by name.
	_, err = c.Models.List(ctx)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "ListModels") {
		t.Fatalf("models list: %v", err)
	}
	// The control plane host is not intercepted.
	cp := openai.NewClient(option.WithBaseURL("https://bedrock.us-east-1.amazonaws.com/anthropic/v1"), option.WithAPIKey(e.key),
		option.WithMaxRetries(0), option.WithHTTPClient(hc))
	if _, err := cp.Models.List(ctx); err == nil || errors.As(err, &apiErr) {
		t.Fatalf("the control plane host through the proxy: %v", err)
	}
	if n := len(e.mantle.Calls()); n != 1 {
		t.Fatalf("refused calls reached the upstream (%d calls)", n)
	}
}

// Anthropic's APIs as its SDKs send them (x-api-key, anthropic-version):
// Messages on bedrock-mantle, unary and streamed, with the version header
// forwarded; a denied model in Anthropic's error shape; the Bedrock-only
// sessions API (named in the policy) forwarded to the bedrock host signed
// for "bedrock"; agents ("*" would not include it either) refused in
// Anthropic's shape.
func TestAnthropicRoutesThroughWarden(t *testing.T) {
	e := startCompatEnv(t)
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.endpoint+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", e.key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	msg := `{"model":"` + gptOSS + `","max_tokens":100,"messages":[{"role":"user","content":"hello"}]%s}`
	if st, body := call("POST", "/bedrock-mantle/anthropic/v1/messages", fmt.Sprintf(msg, "")); st != 200 || !strings.Contains(body, `"type":"message"`) {
		t.Fatalf("messages: %d %s", st, body)
	}
	if st, body := call("POST", "/bedrock-mantle/anthropic/v1/messages", fmt.Sprintf(msg, `,"stream":true`)); st != 200 || !strings.Contains(body, "event: message_stop") {
		t.Fatalf("streamed messages: %d %s", st, body)
	}
	calls := e.mantle.Calls()
	if len(calls) != 2 || calls[0].Op != "MantleMessages" || !calls[0].SignatureOK || calls[0].Header.Get("Anthropic-Version") != "2023-06-01" || calls[0].Header.Get("X-Api-Key") != "" {
		t.Fatalf("mantle calls: %+v", calls)
	}
	recs := e.audit.wait(t, 2)
	if !recs[1].Usage.Known || recs[1].Usage.Output == 0 {
		t.Errorf("streamed Messages usage %+v", recs[1].Usage)
	}
	st, body := call("POST", "/bedrock-mantle/anthropic/v1/messages", `{"model":"anthropic.claude-3-5-haiku-20241022-v1:0","max_tokens":10,"messages":[]}`)
	if st != 403 || !strings.Contains(body, `"type":"error"`) || !strings.Contains(body, `"permission_error"`) {
		t.Fatalf("denied model: %d %s", st, body)
	}

	if st, body := call("POST", "/v1/sessions", `{"agent":"agent_1"}`); st != 200 || !strings.Contains(body, `"type":"session"`) {
		t.Fatalf("sessions: %d %s", st, body)
	}
	var sess *bedrocktest.ControlPlaneCall
	for _, c := range e.cp.Calls() {
		if c.Op == "AnthropicSessions" {
			sess = &c
		}
	}
	if sess == nil || !sess.SignatureOK || sess.EscapedPath != "/anthropic/v1/sessions" {
		t.Fatalf("the bedrock host saw %+v", e.cp.Calls())
	}
	st, body = call("GET", "/v1/agents", "")
	if st != 403 || !strings.Contains(body, `"permission_error"`) || !strings.Contains(body, "AnthropicAgents") {
		t.Fatalf("agents: %d %s", st, body)
	}
}

// Stored responses are not readable across apps (nor by their own app):
// through the real OpenAI Go SDK, app oai's response asked with store:true
// reaches Bedrock as store:false (so there is nothing upstream to read) and
// a chat completion's store:true likewise; app oai-b asking for oai's
// response by id — GET, DELETE, its input items, or as previous_response_id
// — is refused by Warden by name on bedrock-runtime and bedrock-mantle, and
// none of those calls reaches Bedrock.
func TestOpenAIStoredResponsesNotReadableAcrossApps(t *testing.T) {
	e := startCompatEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, base string
		emu        *bedrocktest.Server
	}{
		{"runtime", "/openai/v1", e.emu},
		{"mantle", "/bedrock-mantle/v1", e.mantle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.openai(tc.base)
			b := openai.NewClient(option.WithBaseURL(e.endpoint+tc.base), option.WithAPIKey(e.keyB), option.WithMaxRetries(0))
			before := len(tc.emu.Calls())
			r, err := a.Responses.New(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("remember this")},
				Store: openai.Bool(true),
			})
			if err != nil {
				t.Fatalf("app A's response: %v", err)
			}
			if r.ID == "" || !strings.Contains(r.RawJSON(), `"store":false`) {
				t.Fatalf("app A's response: id %q (%s)", r.ID, r.RawJSON())
			}
			_, err = a.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("remember this")},
				Store:    openai.Bool(true),
			})
			if err != nil {
				t.Fatalf("app A's chat completion: %v", err)
			}
			calls := tc.emu.Calls()[before:]
			if len(calls) != 2 {
				t.Fatalf("emulator saw %d calls, want 2", len(calls))
			}
			for _, c := range calls {
				if !strings.Contains(string(c.Body), `"store":false`) || strings.Contains(string(c.Body), `"store":true`) {
					t.Errorf("%s forwarded with %s", c.Op, c.Body)
				}
			}

			var apiErr *openai.Error
			refused := func(what string, err error, names ...string) {
				t.Helper()
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
					t.Errorf("%s: %v, want a 403", what, err)
					return
				}
				for _, n := range names {
					if !strings.Contains(apiErr.Message, n) {
						t.Errorf("%s: refusal %q does not say %q", what, apiErr.Message, n)
					}
				}
			}
			for _, c := range []struct {
				who    string
				client openai.Client
			}{{"app B", b}, {"app A itself", a}} {
				_, err = c.client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
				refused(c.who+" GET /responses/{id}", err, "responses/"+r.ID)
				err = c.client.Responses.Delete(ctx, r.ID)
				refused(c.who+" DELETE /responses/{id}", err, "responses/"+r.ID)
				_, err = c.client.Responses.InputItems.List(ctx, r.ID, responses.InputItemListParams{})
				refused(c.who+" GET /responses/{id}/input_items", err, "input_items")
			}
			_, err = b.Responses.New(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("what did A say?")},
				PreviousResponseID: openai.String(r.ID),
			})
			refused("app B with previous_response_id", err, "previous_response_id")
			if n := len(tc.emu.Calls()) - before; n != 2 {
				t.Fatalf("refused calls reached the upstream (%d calls)", n)
			}
			recs := e.audit.wait(t, 0)
			last := recs[len(recs)-1]
			if last.Decision != audit.DecisionDeny || last.App != "oai-b" || last.Rule != "app.limits" {
				t.Errorf("audit of the previous_response_id refusal: %s app %q rule %s", last.Decision, last.App, last.Rule)
			}
			if tc.name == "mantle" {
				// bedrock-mantle has these routes; Warden names what it refused.
				_, err = b.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
				refused("mantle GET", err, "GetResponse")
			}
		})
	}
}

// Usage on streams that do not end normally, and on long ones, is what the
// upstream stated or says unknown — never zero as if counted — in exactly
// one record per call:
//   - a chat completions stream the output guard cuts before its usage
//     chunk: unknown (Usage.Known false, no cost);
//   - a Messages stream cut after message_start: the input count it
//     stated;
//   - an unguarded chat completions stream longer than 4 MiB (what Warden
//     keeps of a unary answer): its usage chunk, read as the events pass.
func TestCompatStreamUsageRecords(t *testing.T) {
	e := startCompatEnv(t)
	ctx := context.Background()
	// one waits for the record of the subtest's call, which must be the
	// only one: before is the count of records before the call.
	one := func(t *testing.T, before int) audit.Record {
		t.Helper()
		n := before + 1
		recs := e.audit.wait(t, n)
		time.Sleep(50 * time.Millisecond) // a second record for the call would land now
		if got := len(e.audit.wait(t, 0)); got != n {
			t.Fatalf("%d records, want %d", got, n)
		}
		return recs[n-1]
	}

	t.Run("chat cut by the guard", func(t *testing.T) {
		before := len(e.audit.wait(t, 0))
		c := e.openai("/openai/v1")
		st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("my card please")},
		})
		for st.Next() {
		}
		if st.Err() == nil {
			t.Fatal("the stream was not cut")
		}
		rec := one(t, before)
		if rec.Decision != audit.DecisionDeny || !strings.HasPrefix(rec.Rule, "guard") {
			t.Fatalf("record: %s %s", rec.Decision, rec.Rule)
		}
		if rec.Usage.Known || rec.Usage.Input != 0 || rec.Usage.Output != 0 || rec.CostKnown {
			t.Errorf("usage of a stream cut before its usage chunk: %+v cost known %v", rec.Usage, rec.CostKnown)
		}
	})

	t.Run("messages cut by the guard", func(t *testing.T) {
		before := len(e.audit.wait(t, 0))
		body := `{"model":"` + gptOSS + `","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"my card please"}]}`
		req, _ := http.NewRequest("POST", e.endpoint+"/bedrock-mantle/anthropic/v1/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", e.key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "event: error") || strings.Contains(string(b), "event: message_stop") {
			t.Fatalf("the stream was not cut: %s", b)
		}
		rec := one(t, before)
		if rec.Decision != audit.DecisionDeny || !rec.Usage.Known || rec.Usage.Input == 0 {
			t.Errorf("record: %s %s usage %+v", rec.Decision, rec.Rule, rec.Usage)
		}
	})

	t.Run("unguarded stream over 4 MiB", func(t *testing.T) {
		before := len(e.audit.wait(t, 0))
		c := openai.NewClient(option.WithBaseURL(e.endpoint+"/openai/v1"), option.WithAPIKey(e.keyB), option.WithMaxRetries(0))
		st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("long answer please")},
		})
		n := 0
		var usage openai.CompletionUsage
		for st.Next() {
			ch := st.Current()
			if len(ch.Choices) > 0 {
				n += len(ch.Choices[0].Delta.Content)
			}
			if ch.Usage.CompletionTokens > 0 {
				usage = ch.Usage
			}
		}
		if err := st.Err(); err != nil || n < longAnswer {
			t.Fatalf("stream: %v after %d bytes of text", err, n)
		}
		rec := one(t, before)
		if rec.Decision != audit.DecisionAllow || rec.App != "oai-b" || rec.BytesOut <= 4<<20 {
			t.Fatalf("record: %s app %s bytes %d", rec.Decision, rec.App, rec.BytesOut)
		}
		if !rec.Usage.Known || rec.Usage.Output != usage.CompletionTokens || rec.Usage.Input != usage.PromptTokens {
			t.Errorf("usage of a %d-byte stream: %+v, the stream said %d/%d", rec.BytesOut, rec.Usage, usage.PromptTokens, usage.CompletionTokens)
		}
	})
}

// End-user attribution (audit.end_user): the identifier the app's request
// states — chat completions' and responses' safety_identifier or user,
// Messages' metadata.user_id, as the real OpenAI Go SDK sends them — is in
// the record as its SHA-256 under "sha256", as sent under "raw", and not at
// all by default; the body reaches Bedrock unchanged either way, and a
// refused call (an SSN in the prompt) is attributed too.
func TestCompatEndUserRecorded(t *testing.T) {
	ctx := context.Background()
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(sum[:]) }
	for _, tc := range []struct {
		mode         string
		user, safety string // want in the record
	}{
		{"", "", ""},
		{"sha256", hash("end-user-7"), hash("safe-9")},
		{"raw", "end-user-7", "safe-9"},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			extra := ""
			if tc.mode != "" {
				extra = "audit: {end_user: " + tc.mode + "}\n"
			}
			e := startCompatEnvWith(t, "", extra)
			c := e.openai("/openai/v1")
			if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
				User: openai.String("end-user-7"),
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Responses.New(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")},
				User: openai.String("end-user-7"), SafetyIdentifier: openai.String("safe-9"),
			}); err != nil {
				t.Fatal(err)
			}
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("my ssn is 123-45-6789")},
				User: openai.String("end-user-7"),
			})
			if err == nil {
				t.Fatal("the SSN prompt was not refused")
			}
			body := `{"model":"` + gptOSS + `","max_tokens":10,"metadata":{"user_id":"end-user-7"},"messages":[{"role":"user","content":"hi"}]}`
			req, _ := http.NewRequest("POST", e.endpoint+"/bedrock-mantle/anthropic/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", e.key)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			recs := e.audit.wait(t, 4)
			for i, want := range []string{tc.user, tc.safety, tc.user, tc.user} {
				if recs[i].EndUser != want {
					t.Errorf("record %d (%s %s): end_user %q, want %q", i, recs[i].Operation, recs[i].Decision, recs[i].EndUser, want)
				}
			}
			calls := e.emu.Calls()
			if len(calls) != 2 || !strings.Contains(string(calls[0].Body), `"user":"end-user-7"`) || !strings.Contains(string(calls[1].Body), `"safety_identifier":"safe-9"`) {
				t.Errorf("the bodies did not reach Bedrock unchanged: %d calls", len(calls))
			}
		})
	}
}
