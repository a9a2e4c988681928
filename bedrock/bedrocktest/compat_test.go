package bedrocktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

const gptOSS = "openai.gpt-oss-20b-1:0"

func newCompatServer(t *testing.T, service string, deltas func(op, text string) []string) *Server {
	t.Helper()
	s := NewServer(Config{
		Service:     service,
		Credentials: map[string]string{testAKID: testSecret},
		Deltas:      deltas,
		Logf:        TestLogf(t),
	})
	t.Cleanup(s.Close)
	return s
}

// sigv4Middleware replaces the OpenAI SDK's bearer key with a SigV4
// signature for service, as a proxy in front of Bedrock does.
func sigv4Middleware(service, akid, secret string) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			var err error
			if body, err = io.ReadAll(req.Body); err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		req.Header.Del("Authorization")
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(req.Context(), creds, req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
			return nil, err
		}
		return next(req)
	}
}

func openAIClient(s *Server, base, service string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(s.URL+base),
		option.WithAPIKey("unused"),
		option.WithMaxRetries(0),
		option.WithMiddleware(sigv4Middleware(service, testAKID, testSecret)),
	)
}

// The real OpenAI Go SDK parses the emulator's chat completions and
// responses, unary and streamed, on bedrock-runtime and bedrock-mantle,
// signed for each service's name.
func TestCompatOpenAISDK(t *testing.T) {
	for _, tc := range []struct {
		service, base, signAs string
		chatOp, respOp        string
	}{
		{ServiceRuntime, "/openai/v1", "bedrock", OpOpenAIChatCompletions, OpOpenAIResponses},
		{ServiceMantle, "/v1", "bedrock-mantle", OpMantleChatCompletions, OpMantleResponses},
		{ServiceMantle, "/openai/v1", "bedrock-mantle", OpMantleChatCompletions, OpMantleResponses},
	} {
		t.Run(tc.service+tc.base, func(t *testing.T) {
			s := newCompatServer(t, tc.service, func(op, text string) []string { return chunk(text, 2) })
			c := openAIClient(s, tc.base, tc.signAs)
			ctx := context.Background()

			cc, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    gptOSS,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
			})
			if err != nil {
				t.Fatalf("chat completion: %v", err)
			}
			want := s.reply(tc.chatOp, gptOSS, "hello there\n")
			if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != want || cc.Usage.PromptTokens != int64(tokens("hello there\n")) {
				t.Fatalf("chat completion = %+v", cc)
			}
			if call := lastCall(t, s); call.Op != tc.chatOp || call.ModelID != gptOSS || !call.SignatureOK {
				t.Fatalf("call %+v", call)
			}

			st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:         gptOSS,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
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
			if acc.Choices[0].Message.Content != want || acc.Usage.CompletionTokens != int64(tokens(want)) || n < len(want)/2 {
				t.Fatalf("streamed %d chunks: %q, usage %+v", n, acc.Choices[0].Message.Content, acc.Usage)
			}

			r, err := c.Responses.New(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")},
				Store: openai.Bool(false),
			})
			if err != nil {
				t.Fatalf("response: %v", err)
			}
			if r.OutputText() != s.reply(tc.respOp, gptOSS, "hello there\n") || r.Usage.OutputTokens == 0 || !strings.Contains(r.RawJSON(), `"store":false`) {
				t.Fatalf("response = %q, usage %+v: %s", r.OutputText(), r.Usage, r.RawJSON())
			}

			rs := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{
				Model: gptOSS, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")},
			})
			var text strings.Builder
			var completed bool
			for rs.Next() {
				ev := rs.Current()
				switch ev.Type {
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				case "response.completed":
					completed = ev.Response.Usage.TotalTokens > 0
				}
			}
			if err := rs.Err(); err != nil || text.String() != s.reply(tc.respOp, gptOSS, "hello there\n") || !completed {
				t.Fatalf("streamed response %q completed %v: %v", text.String(), completed, err)
			}
		})
	}
}

func chunk(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// A mid-stream fault is the API's own error event, which the SDK raises.
func TestCompatStreamFault(t *testing.T) {
	s := newCompatServer(t, ServiceMantle, nil)
	s.Inject(Fault{Op: OpMantleChatCompletions, MidStreamException: "modelStreamErrorException", Message: "the model broke"})
	c := openAIClient(s, "/v1", "bedrock-mantle")
	st := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: gptOSS, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	for st.Next() {
	}
	if err := st.Err(); err == nil || !strings.Contains(err.Error(), "the model broke") {
		t.Fatalf("stream error %v", err)
	}
}

// Errors come back in the OpenAI shape the SDK types (*openai.Error with
// the status); a signature for the wrong service is refused.
func TestCompatErrors(t *testing.T) {
	s := newCompatServer(t, ServiceMantle, nil)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "Not A Model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	mantle, runtimeSigned := openAIClient(s, "/v1", "bedrock-mantle"), openAIClient(s, "/v1", "bedrock")
	_, err := mantle.Chat.Completions.New(ctx, params)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 400 || !strings.Contains(oe.Message, "model identifier is invalid") {
		t.Fatalf("invalid model: %v", err)
	}
	params.Model = gptOSS
	s.Inject(Fault{Op: OpMantleChatCompletions, Status: 429})
	if _, err := mantle.Chat.Completions.New(ctx, params); !errors.As(err, &oe) || oe.StatusCode != 429 || oe.Type != "rate_limit_exceeded" {
		t.Fatalf("throttled: %v", err)
	}
	if _, err := runtimeSigned.Chat.Completions.New(ctx, params); !errors.As(err, &oe) || oe.StatusCode != 403 {
		t.Fatalf("signed for bedrock on bedrock-mantle: %v", err)
	}
	bearer := openai.NewClient(option.WithBaseURL(s.URL+"/v1"), option.WithAPIKey("ABSKnotakey"), option.WithMaxRetries(0))
	// The emulator knows no Bedrock API keys: a bearer token is refused.
	if _, err := bearer.Chat.Completions.New(ctx, params); !errors.As(err, &oe) || oe.StatusCode != 400 {
		t.Fatalf("bearer key: %v", err)
	}
	// Routes of the other service are unknown here.
	other := openAIClient(newCompatServer(t, ServiceRuntime, nil), "/v1", "bedrock")
	if _, err := other.Chat.Completions.New(ctx, params); !errors.As(err, &oe) || oe.StatusCode != 404 {
		t.Fatalf("mantle path on the runtime: %v", err)
	}
}

// Anthropic's Messages API on bedrock-mantle: the anthropic-version header,
// Anthropic's body, its event names, and its error shape.
func TestCompatMessages(t *testing.T) {
	s := newCompatServer(t, ServiceMantle, nil)
	body := `{"model":"anthropic.claude-haiku-4-5","max_tokens":64,"system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`
	do := func(body string, version bool) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", s.URL+"/anthropic/v1/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if version {
			req.Header.Set("Anthropic-Version", "2023-06-01")
		}
		signFor(t, req, []byte(body), "bedrock-mantle")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := do(body, true)
	var m struct {
		Type    string `json:"type"`
		Content []struct{ Type, Text string }
		Usage   struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		}
	}
	if err := json.Unmarshal(b, &m); resp.StatusCode != 200 || err != nil || m.Type != "message" || len(m.Content) != 1 || m.Usage.InputTokens != tokens("be brief\nhi\n") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, b = do(strings.Replace(body, `"max_tokens":64,`, `"stream":true,"max_tokens":64,`, 1), true)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
		!bytes.HasPrefix(b, []byte("event: message_start\ndata: {")) || !bytes.Contains(b, []byte("event: content_block_delta\ndata: {")) ||
		!bytes.HasSuffix(b, []byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")) {
		t.Fatalf("stream %d:\n%s", resp.StatusCode, b)
	}
	resp, b = do(body, false)
	var e struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(b, &e); resp.StatusCode != 400 || err != nil || e.Type != "error" || e.Error.Type != "invalid_request_error" {
		t.Fatalf("no anthropic-version: %d %s", resp.StatusCode, b)
	}
}

func signFor(t *testing.T, req *http.Request, body []byte, service string) {
	t.Helper()
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
}

// Anthropic's Bedrock-only APIs on the control plane's host.
func TestControlPlaneAnthropicBedrockOnly(t *testing.T) {
	cp := NewControlPlane(ControlPlaneConfig{Credentials: map[string]string{testAKID: testSecret}})
	t.Cleanup(cp.Close)
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/anthropic/v1/agents", `"type":"agent"`},
		{"GET", "/anthropic/v1/sessions", `"has_more":false`},
		{"GET", "/anthropic/v1/sessions/sesn_1/events/stream", `session.status_idle`},
		{"DELETE", "/anthropic/v1/memory_stores/ms_1", `"memory_store_deleted"`},
	} {
		body := []byte(`{}`)
		if tc.method == "GET" || tc.method == "DELETE" {
			body = nil
		}
		req, _ := http.NewRequest(tc.method, cp.URL+tc.path, bytes.NewReader(body))
		signFor(t, req, body, "bedrock")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, b)
		}
	}
	calls := cp.Calls()
	if len(calls) != 4 || calls[0].Op != OpAnthropicAgents || !calls[3].SignatureOK {
		t.Fatalf("calls %+v", calls)
	}
}
