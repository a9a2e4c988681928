package proxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// jsProxyResult is client.mjs's JSON line, with the fields proxy-mode tests
// look at beyond jsResult's.
type jsProxyResult struct {
	OK         bool     `json:"ok"`
	Op         string   `json:"op"`
	Text       string   `json:"text"`
	Events     []string `json:"events"`
	StopReason string   `json:"stopReason"`
	Usage      *struct {
		InputTokens  int `json:"inputTokens"`
		OutputTokens int `json:"outputTokens"`
		TotalTokens  int `json:"totalTokens"`
	} `json:"usage"`
	Name    string `json:"name"`
	Message string `json:"message"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
}

// jsProxyEnv is the environment of a Node app in forward-proxy mode:
// HTTPS_PROXY (which client.mjs hands to NodeHttpHandler + HttpsProxyAgent,
// since the SDK ignores it), Warden's CA through NODE_EXTRA_CA_CERTS
// (caFile "" leaves it out), no endpoint override (the SDK targets the real
// bedrock-runtime.us-east-1.amazonaws.com, which only Warden sees, in the
// CONNECT line). Everything from the test's own environment that could
// point the SDK or Node elsewhere (AWS_*, proxies, CA and Node options) is
// dropped, and the shared AWS config files are pointed at nothing.
func jsProxyEnv(t *testing.T, proxyURL, caFile, akid, secret string) []string {
	t.Helper()
	var envv []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasPrefix(uk, "AWS_"),
			uk == "HTTPS_PROXY", uk == "HTTP_PROXY", uk == "ALL_PROXY", uk == "NO_PROXY",
			uk == "NODE_EXTRA_CA_CERTS", uk == "NODE_OPTIONS", uk == "NODE_TLS_REJECT_UNAUTHORIZED",
			strings.HasPrefix(uk, "WARDEN_JS_"):
			continue
		}
		envv = append(envv, kv)
	}
	none := filepath.Join(t.TempDir(), "absent")
	envv = append(envv,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+akid,
		"AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_CONFIG_FILE="+none,
		"AWS_SHARED_CREDENTIALS_FILE="+none,
		"AWS_EC2_METADATA_DISABLED=true",
		"HTTPS_PROXY="+proxyURL,
		"WARDEN_JS_TIMEOUT_MS=20000",
	)
	if caFile != "" {
		envv = append(envv, "NODE_EXTRA_CA_CERTS="+caFile)
	}
	return envv
}

// runJSProxy runs client.mjs once with envv (runJSWith cannot take extra
// environment, and sets an endpoint override proxy mode must not have).
func runJSProxy(t *testing.T, dir string, envv []string, args ...string) jsProxyResult {
	t.Helper()
	return runNodeClient[jsProxyResult](t, dir, envv, args...)
}

// emulatorReply is the bedrocktest emulator's default completion for a
// single-message Converse prompt, and its token counts (4 bytes a token).
func emulatorReply(model, prompt string) (text string, in, out int) {
	text = fmt.Sprintf("Hello from the bedrocktest emulator. You sent %d characters to %s; this reply is deterministic.", len(prompt), model)
	return text, (len(prompt) + 3) / 4, (len(text) + 3) / 4
}

// The real JS SDK in forward-proxy mode, configured as the design says a
// Node app must be (NodeHttpHandler with https-proxy-agent, Warden's CA via
// NODE_EXTRA_CA_CERTS, the real regional host name), does Converse and
// ConverseStream through Warden's MITM, gets AccessDeniedException for a
// model outside the allowlist, and every call is in Warden's audit, in
// re-signing and in passthrough mode. Without Warden's CA the SDK refuses
// the intercepted connection and nothing reaches Bedrock.
func TestJSSDKThroughForwardProxy(t *testing.T) {
	dir := jsClientDir(t)
	for _, signing := range []string{"resign", "passthrough"} {
		t.Run(signing, func(t *testing.T) {
			e := startProxyEnv(t, signing)
			caFile := filepath.Join(t.TempDir(), "warden-ca.pem")
			if err := os.WriteFile(caFile, e.srv.CA().CertPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			envv := jsProxyEnv(t, e.endpoint, caFile, appKey, appSecret)

			// Converse: the emulator's text and usage, untouched.
			prompt := "hello from node through the proxy"
			r := runJSProxy(t, dir, envv, "converse", haiku, prompt)
			text, in, out := emulatorReply(haiku, prompt)
			if !r.OK || r.Text != text || r.StopReason != "end_turn" || r.Usage == nil ||
				r.Usage.InputTokens != in || r.Usage.OutputTokens != out || r.Usage.TotalTokens != in+out {
				t.Fatalf("converse: %+v (usage %+v); want text %q, usage %d/%d", r, r.Usage, text, in, out)
			}
			e.audit.wait(t, 1)

			// ConverseStream: every event, in order, ending with the metadata.
			prompt = "stream from node through the proxy"
			r = runJSProxy(t, dir, envv, "converse-stream", haiku, prompt)
			text, in, out = emulatorReply(haiku, prompt)
			if !r.OK || r.Text != text || r.StopReason != "end_turn" || r.Usage == nil ||
				r.Usage.InputTokens != in || r.Usage.OutputTokens != out {
				t.Fatalf("converse-stream: %+v (usage %+v); want text %q, usage %d/%d", r, r.Usage, text, in, out)
			}
			if err := checkConverseStreamEvents(r.Events); err != nil {
				t.Fatalf("converse-stream events %v: %v", r.Events, err)
			}
			e.audit.wait(t, 2)

			// A model outside chatbot-prod's allowlist: denied by Warden, typed by the SDK.
			r = runJSProxy(t, dir, envv, "converse", "anthropic.claude-3-opus-20240229-v1:0", "denied")
			if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 || !strings.Contains(r.Message, "chatbot-prod") {
				t.Fatalf("denied converse: %+v", r)
			}
			e.audit.wait(t, 3)

			// Without Warden's CA the SDK must refuse the MITM certificate.
			r = runJSProxy(t, dir, jsProxyEnv(t, e.endpoint, "", appKey, appSecret), "converse", haiku, "no CA")
			if r.OK || r.Status != 0 || !strings.Contains(strings.ToLower(r.Message+" "+r.Code), "cert") {
				t.Errorf("converse without Warden's CA: %+v, want a certificate error", r)
			}
			t.Logf("without Warden's CA: %s: %s (%s)", r.Name, r.Message, r.Code)

			calls := e.emu.Calls()
			if len(calls) != 2 {
				t.Fatalf("emulator saw %d calls, want 2 (Converse, ConverseStream)", len(calls))
			}
			wantKey := wardenKey
			if signing == "passthrough" {
				wantKey = appKey
			}
			for i, c := range calls {
				if want := []string{"Converse", "ConverseStream"}[i]; c.Op != want || c.ModelID != haiku {
					t.Errorf("emulator call %d: %s %s, want %s %s", i, c.Op, c.ModelID, want, haiku)
				}
				if !c.SignatureOK || c.AccessKeyID != wantKey {
					t.Errorf("emulator call %d (%s): signed by %q, signature ok %v (%s); want %q", i, c.Op, c.AccessKeyID, c.SignatureOK, c.AuthError, wantKey)
				}
			}

			// Audit: the three calls, in order, with their decisions; the
			// no-CA attempt never got past TLS, so it has no record.
			time.Sleep(200 * time.Millisecond)
			recs := e.audit.wait(t, 3)
			if len(recs) != 3 {
				t.Fatalf("%d audit records, want 3: %+v", len(recs), recs)
			}
			want := []struct {
				op, model, decision, errType string
				status                       int
			}{
				{"Converse", haiku, "allow", "", 200},
				{"ConverseStream", haiku, "allow", "", 200},
				{"Converse", "anthropic.claude-3-opus-20240229-v1:0", "deny", "AccessDeniedException", 403},
			}
			for i, rec := range recs {
				w := want[i]
				if rec.Operation != w.op || rec.Model != w.model || rec.Decision != w.decision ||
					rec.Status != w.status || rec.ErrorType != w.errType || rec.App != "chatbot-prod" {
					t.Errorf("audit record %d: op %s model %s decision %s status %d error %q app %q; want %+v",
						i, rec.Operation, rec.Model, rec.Decision, rec.Status, rec.ErrorType, rec.App, w)
				}
				// NodeHttpHandler speaks HTTP/1.1 inside the CONNECT tunnel.
				if rec.Protocol != "HTTP/1.1" {
					t.Errorf("audit record %d: protocol %s, want HTTP/1.1", i, rec.Protocol)
				}
				if signing == "passthrough" && rec.Tags["aws.access_key_id"] != appKey {
					t.Errorf("audit record %d: passthrough tags %v, want aws.access_key_id=%s", i, rec.Tags, appKey)
				}
			}
		})
	}
}

// checkConverseStreamEvents checks the event order of a one-block
// ConverseStream: messageStart, one or more contentBlockDelta,
// contentBlockStop, messageStop, and metadata last.
func checkConverseStreamEvents(ev []string) error {
	if len(ev) < 5 || ev[0] != "messageStart" || ev[1] != "contentBlockDelta" {
		return fmt.Errorf("does not start with messageStart, contentBlockDelta")
	}
	i := 1
	for i < len(ev) && ev[i] == "contentBlockDelta" {
		i++
	}
	if !slices.Equal(ev[i:], []string{"contentBlockStop", "messageStop", "metadata"}) {
		return fmt.Errorf("after the deltas: %v, want contentBlockStop, messageStop, metadata", ev[i:])
	}
	return nil
}
