package proxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/internal/testenv"
)

// compatJSResult is what testdata/compatclient/client.mjs prints.
type compatJSResult struct {
	OK      bool   `json:"ok"`
	Text    string `json:"text"`
	Wire    string `json:"wire"`
	Name    string `json:"name"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// compatClientDir returns the directory of the OpenAI Node SDK and
// Anthropic's Bedrock SDK client, or skips when Node or its modules are
// missing — except where WARDEN_REQUIRE_NODE is set (CI), where a missing
// client is a failure.
func compatClientDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("testdata", "compatclient"))
	_, nodeErr := exec.LookPath("node")
	_, oaiErr := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json"))
	_, anErr := os.Stat(filepath.Join(dir, "node_modules", "@anthropic-ai", "bedrock-sdk", "package.json"))
	if nodeErr != nil || oaiErr != nil || anErr != nil {
		if os.Getenv("WARDEN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or the SDKs (%v, %v) missing; run npm ci --prefix proxy/testdata/compatclient", nodeErr, oaiErr, anErr)
		}
		testenv.Missing(t, "node (%v) or the SDKs (%v, %v) missing; scripts/test installs them", nodeErr, oaiErr, anErr)
	}
	return dir
}

// runCompatJS runs one call of client.mjs with env (the SDKs' own
// variables) and nothing else of the caller's AWS or OpenAI configuration.
func runCompatJS(t *testing.T, dir string, env []string, args ...string) compatJSResult {
	t.Helper()
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "OPENAI_") || strings.HasPrefix(k, "ANTHROPIC_") || strings.EqualFold(k, "https_proxy") {
			continue
		}
		base = append(base, kv)
	}
	return runNodeClient[compatJSResult](t, dir, append(base, env...), args...)
}

// asciiDigits keeps the ASCII digits of s, in order.
func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// The OpenAI Node SDK from npm, configured only by OPENAI_BASE_URL (Warden's
// endpoint, runtime /openai/v1 and mantle /bedrock-mantle/v1) and
// OPENAI_API_KEY (a Warden-issued bearer key): a chat completion, a
// streamed one and a response succeed, signed upstream by Warden; a denied
// model is the SDK's PermissionDeniedError (403); an SSN in a prompt is
// blocked the same way before anything leaves; a card number the model
// streams in 2-byte server-sent events ends the stream with the SDK's
// APIError and no 4-digit fragment of it ever reaches the client's bytes.
func TestOpenAINodeSDKThroughWarden(t *testing.T) {
	dir := compatClientDir(t)
	e := startCompatEnv(t)
	for _, tc := range []struct{ name, base string }{
		{"runtime", "/openai/v1"},
		{"mantle", "/bedrock-mantle/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"OPENAI_BASE_URL=" + e.endpoint + tc.base, "OPENAI_API_KEY=" + e.key}
			run := func(args ...string) compatJSResult { t.Helper(); return runCompatJS(t, dir, env, args...) }
			recBefore := len(e.audit.wait(t, 0))

			chat := run("chat", gptOSS, "hello there")
			if !chat.OK || !strings.HasPrefix(chat.Text, "hello from the emulator") {
				t.Fatalf("chat: %+v", chat)
			}
			st := run("chat-stream", gptOSS, "hello there")
			if !st.OK || st.Text != chat.Text || strings.Count(st.Wire, "data:") < 3 {
				t.Fatalf("chat-stream: %+v (want text %q)", st, chat.Text)
			}
			resp := run("response", gptOSS, "hello there")
			if !resp.OK || resp.Text == "" {
				t.Fatalf("response: %+v", resp)
			}
			for _, rec := range e.audit.wait(t, recBefore+3)[recBefore:] {
				if rec.Decision != audit.DecisionAllow || rec.App != "oai" || !rec.Usage.Known || rec.Usage.Output == 0 {
					t.Errorf("audit: %s app %s op %s usage %+v", rec.Decision, rec.App, rec.Operation, rec.Usage)
				}
			}

			denied := run("chat", "anthropic.claude-3-5-haiku-20241022-v1:0", "hello")
			if denied.OK || denied.Name != "PermissionDeniedError" || denied.Status != 403 {
				t.Fatalf("denied model: %+v", denied)
			}
			ssn := run("chat", gptOSS, "my ssn is 123-45-6789")
			if ssn.OK || ssn.Name != "PermissionDeniedError" || ssn.Status != 403 || strings.Contains(ssn.Wire, "123-45-6789") {
				t.Fatalf("SSN prompt: %+v", ssn)
			}
			if !strings.Contains(ssn.Message, "US_SOCIAL_SECURITY_NUMBER") {
				t.Errorf("SSN refusal does not name the finding type: %s", ssn.Message)
			}

			for _, op := range []string{"chat-stream", "response-stream"} {
				card := run(op, gptOSS, "my card please")
				if card.OK || card.Name != "APIError" {
					t.Fatalf("%s with a card number: %+v", op, card)
				}
				if !strings.Contains(card.Message, "CREDIT_DEBIT_CARD_NUMBER") {
					t.Errorf("%s: the SDK's error %q does not name the finding type", op, card.Message)
				}
				if d := asciiDigits(card.Text); len(d) >= 4 {
					t.Errorf("%s: the app assembled %q", op, card.Text)
				}
				for _, frag := range []string{"4111", "1111"} {
					if strings.Contains(card.Wire, frag) {
						t.Errorf("%s: a 4-digit fragment of the card reached the client", op)
					}
				}
			}
			recs := e.audit.wait(t, recBefore+7)[recBefore+3:]
			for i, rec := range recs {
				if rec.Decision != audit.DecisionDeny {
					t.Errorf("refused call %d: %s %s", i, rec.Decision, rec.Rule)
				}
			}
		})
	}
}

// Anthropic's Bedrock SDK from npm, configured only by
// ANTHROPIC_BEDROCK_BASE_URL (Warden's endpoint) and AWS credentials that
// are Warden-issued SigV4 keys: messages.create and a stream succeed (the
// SDK speaks InvokeModel); a denied model and a prompt with an SSN are the
// SDK's PermissionDeniedError; its Bedrock-only sessions API is classified
// (AnthropicSessions): forwarded for the app whose policy names it, refused
// by name for an app with operations "*"; its agents API, named by no
// policy, is refused by name.
func TestAnthropicBedrockNodeSDKThroughWarden(t *testing.T) {
	dir := compatClientDir(t)
	e := startCompatEnv(t)
	envFor := func(k [2]string) []string {
		return []string{"ANTHROPIC_BEDROCK_BASE_URL=" + e.endpoint, "AWS_REGION=us-east-1",
			"AWS_ACCESS_KEY_ID=" + k[0], "AWS_SECRET_ACCESS_KEY=" + k[1]}
	}
	claude, plain := envFor(e.claudeKey), envFor(e.claudePlainKey)
	run := func(env []string, args ...string) compatJSResult {
		t.Helper()
		return runCompatJS(t, dir, env, args...)
	}

	msg := run(claude, "messages", haiku, "hello there")
	if !msg.OK || msg.Text == "" {
		t.Fatalf("messages.create: %+v", msg)
	}
	st := run(claude, "messages-stream", haiku, "hello there")
	if !st.OK || st.Text == "" {
		t.Fatalf("stream: %+v", st)
	}
	calls := e.emu.Calls()
	if len(calls) != 2 || calls[0].Op != "InvokeModel" || calls[1].Op != "InvokeModelWithResponseStream" {
		t.Fatalf("the runtime saw %+v", calls)
	}
	for _, c := range calls {
		if !c.SignatureOK || c.AccessKeyID != wardenKey {
			t.Errorf("%s not signed by Warden: %s", c.Op, c.AuthError)
		}
	}
	recs := e.audit.wait(t, 2)
	for _, rec := range recs {
		if rec.Decision != audit.DecisionAllow || rec.App != "claude" || !rec.Usage.Known {
			t.Errorf("audit: %s app %s op %s usage %+v", rec.Decision, rec.App, rec.Operation, rec.Usage)
		}
	}

	denied := run(claude, "messages", "anthropic.claude-3-opus-20240229-v1:0", "hello")
	if denied.OK || denied.Name != "PermissionDeniedError" || denied.Status != 403 {
		t.Fatalf("denied model: %+v", denied)
	}
	ssn := run(claude, "messages", haiku, "my ssn is 123-45-6789")
	if ssn.OK || ssn.Name != "PermissionDeniedError" || ssn.Status != 403 || !strings.Contains(ssn.Message, "US_SOCIAL_SECURITY_NUMBER") {
		t.Fatalf("SSN prompt: %+v", ssn)
	}
	if n := len(e.emu.Calls()); n != 2 {
		t.Fatalf("refused calls reached the upstream (%d calls)", n)
	}

	// Bedrock-only: sessions is AnthropicSessions, named in claude's policy.
	sess := run(claude, "sessions-create", "agent_1", "")
	if !sess.OK {
		t.Fatalf("sessions.create for an app whose policy names AnthropicSessions: %+v", sess)
	}
	var fwd int
	for _, c := range e.cp.Calls() {
		if c.Op == "AnthropicSessions" {
			fwd++
			if !c.SignatureOK || !strings.HasPrefix(c.EscapedPath, "/anthropic/v1/sessions") {
				t.Errorf("the bedrock host saw %+v", c)
			}
		}
	}
	if fwd != 1 {
		t.Fatalf("the bedrock host saw %d sessions calls, want 1", fwd)
	}
	refused := run(plain, "sessions-create", "agent_1", "")
	if refused.OK || refused.Name != "PermissionDeniedError" || refused.Status != 403 || !strings.Contains(refused.Message, "AnthropicSessions") {
		t.Fatalf("sessions.create for an app with operations [*]: %+v", refused)
	}
	agents := run(claude, "agents-list", "-", "-")
	if agents.OK || agents.Name != "PermissionDeniedError" || !strings.Contains(agents.Message, "AnthropicAgents") {
		t.Fatalf("agents.list: %+v", agents)
	}
	for _, c := range e.cp.Calls() {
		if c.Op == "AnthropicSessions" {
			fwd--
		}
	}
	if fwd != 0 {
		t.Fatal("a refused Bedrock-only call reached the bedrock host")
	}
	all := e.audit.wait(t, 7)
	for _, rec := range all[2:] {
		if rec.Operation == "AnthropicSessions" && rec.App == "claude" {
			if rec.Decision != audit.DecisionAllow {
				t.Errorf("allowed session: %s %s", rec.Decision, rec.Rule)
			}
			continue
		}
		if rec.Decision != audit.DecisionDeny {
			t.Errorf("app %s op %s: %s, want deny", rec.App, rec.Operation, rec.Decision)
		}
	}
}
