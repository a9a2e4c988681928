package proxy_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/testenv"
)

type jsResult struct {
	OK      bool     `json:"ok"`
	Text    string   `json:"text"`
	Events  []string `json:"events"`
	Name    string   `json:"name"`
	Message string   `json:"message"`
	Status  int      `json:"status"`
	// Attempts is the SDK's own count ($metadata.attempts).
	Attempts int `json:"attempts"`
}

// jsClientDir returns the Node client's directory, or skips when Node or
// its modules are missing — except where WARDEN_REQUIRE_NODE is set (CI),
// where a missing client is a failure.
func jsClientDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("testdata", "jsclient"))
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "client-bedrock-runtime"))
	if nodeErr != nil || modErr != nil {
		if os.Getenv("WARDEN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or the JS SDK (%v) missing; run npm ci --prefix proxy/testdata/jsclient", nodeErr, modErr)
		}
		testenv.Missing(t, "node (%v) or the JS SDK (%v) missing; scripts/test installs them", nodeErr, modErr)
	}
	return dir
}

func runJS(t *testing.T, dir, endpoint string, args ...string) jsResult {
	t.Helper()
	return runJSWith(t, dir, endpoint, appKey, appSecret, args...)
}

// The real JS SDK, with its default HTTP/2 handler (h2c with prior knowledge
// against an http:// endpoint), does Converse and ConverseStream through
// Warden, and a denied model reaches it as AccessDeniedException.
func TestJSSDKThroughEndpoint(t *testing.T) {
	dir := jsClientDir(t)
	e := startEnv(t)
	r := runJS(t, dir, e.endpoint, "converse", haiku, "hello from node")
	if !r.OK || r.Text == "" {
		t.Fatalf("converse: %+v", r)
	}
	r = runJS(t, dir, e.endpoint, "converse-stream", usHaiku, "stream from node")
	if !r.OK || r.Text == "" || !contains(r.Events, "messageStart") || !contains(r.Events, "metadata") {
		t.Fatalf("converse-stream: %+v", r)
	}
	r = runJS(t, dir, e.endpoint, "converse", "anthropic.claude-3-opus-20240229-v1:0", "denied")
	if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 || !strings.Contains(r.Message, "chatbot-prod") {
		t.Fatalf("denied converse: %+v", r)
	}
	calls := e.emu.Calls()
	if len(calls) != 2 {
		t.Fatalf("emulator saw %d calls, want 2", len(calls))
	}
	for _, c := range calls {
		if !c.SignatureOK || c.AccessKeyID != wardenKey {
			t.Errorf("%s not signed by Warden: %s", c.Op, c.AuthError)
		}
	}
	recs := e.audit.wait(t, 3)
	for _, rec := range recs {
		if rec.Protocol != "HTTP/2.0" {
			t.Errorf("the JS SDK's default handler should speak h2c; Warden saw %s", rec.Protocol)
		}
	}
	if recs[0].Decision != "allow" || recs[2].Decision != "deny" {
		t.Errorf("audit decisions: %s %s %s", recs[0].Decision, recs[1].Decision, recs[2].Decision)
	}
}

// The JS SDK signs ":authority" instead of host over HTTP/2; the emulator's
// verifier (which Warden will also use for its own keys) accepts a real
// JS SDK signature sent straight to it.
func TestJSSDKSignatureVerifiedByEmulator(t *testing.T) {
	dir := jsClientDir(t)
	emu := bedrocktest.NewServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{appKey: appSecret}})
	defer emu.Close()
	for _, op := range []string{"converse", "converse-stream"} {
		if r := runJS(t, dir, emu.URL, op, haiku, "straight to the emulator"); !r.OK {
			t.Fatalf("%s: %+v", op, r)
		}
	}
	calls := emu.Calls()
	if len(calls) != 2 {
		t.Fatalf("emulator saw %d calls", len(calls))
	}
	for _, c := range calls {
		if !c.SignatureOK || c.Proto != "HTTP/2.0" || !contains(c.SignedHeaders, ":authority") {
			t.Errorf("%s: signatureOK %v (%s) proto %s signed %v", c.Op, c.SignatureOK, c.AuthError, c.Proto, c.SignedHeaders)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// runJSWith runs the Node client with the given app credentials.
func runJSWith(t *testing.T, dir, endpoint, akid, secret string, args ...string) jsResult {
	t.Helper()
	return runJSEnv(t, dir, endpoint, akid, secret, nil, args...)
}

// runJSEnv is runJSWith with extra environment (WARDEN_JS_*).
func runJSEnv(t *testing.T, dir, endpoint, akid, secret string, extraEnv []string, args ...string) jsResult {
	t.Helper()
	env := append(os.Environ(),
		"AWS_ENDPOINT_URL_BEDROCK_RUNTIME="+endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+akid,
		"AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_SESSION_TOKEN=",
		"HTTPS_PROXY=", "https_proxy=",
	)
	return runNodeClient[jsResult](t, dir, append(env, extraEnv...), args...)
}

// runNodeClient runs dir/client.mjs with env as its whole environment and
// decodes the JSON its last line of output holds. Every Node client under
// testdata prints its result so.
func runNodeClient[T any](t *testing.T, dir string, env []string, args ...string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, "client.mjs")}, args...)...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s/client.mjs %v: %v\n%s\n%s", filepath.Base(dir), args, err, out, stderr.String())
	}
	line := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	var r T
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("node %s/client.mjs %v printed %q: %v", filepath.Base(dir), args, out, err)
	}
	return r
}
