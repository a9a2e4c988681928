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

	"github.com/warden-egress/warden/internal/testenv"
)

// agentJSDir returns the Node agent-runtime client's directory, or skips
// when Node or its modules are missing — except where WARDEN_REQUIRE_NODE
// is set (CI), where a missing client is a failure.
func agentJSDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("testdata", "agentclient"))
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "client-bedrock-agent-runtime"))
	if nodeErr != nil || modErr != nil {
		if os.Getenv("WARDEN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or the JS SDK (%v) missing; run npm ci --prefix proxy/testdata/agentclient", nodeErr, modErr)
		}
		testenv.Missing(t, "node (%v) or the JS SDK (%v) missing; scripts/test installs them", nodeErr, modErr)
	}
	return dir
}

type agentJSResult struct {
	OK      bool     `json:"ok"`
	Text    string   `json:"text"`
	Events  []string `json:"events"`
	Results int      `json:"results"`
	Name    string   `json:"name"`
	Message string   `json:"message"`
	Status  int      `json:"status"`
}

// runAgentJS runs the Node client with AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME
// pointed at Warden, as an unmodified Node app would be configured.
func runAgentJS(t *testing.T, dir, endpoint string, args ...string) agentJSResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, "client.mjs")}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME="+endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+appKey,
		"AWS_SECRET_ACCESS_KEY="+appSecret,
		"AWS_SESSION_TOKEN=",
		"HTTPS_PROXY=", "https_proxy=",
	)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node agent client: %v\n%s\n%s", err, out, stderr)
	}
	var r agentJSResult
	line := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("node agent client output %q: %v", out, err)
	}
	return r
}

// The real @aws-sdk/client-bedrock-agent-runtime through Warden: InvokeAgent
// streamed back chunk by chunk, Retrieve, and a denied agent alias reaching
// the app as a typed AccessDeniedException.
func TestJSAgentRuntime(t *testing.T) {
	dir := agentJSDir(t)
	e := startEnv(t, withPolicy(agentPolicy))
	r := runAgentJS(t, dir, e.endpoint, "invoke-agent", "AGENT00001", "ALIAS00001", "node-1", "hello from node")
	if !r.OK || !strings.Contains(r.Text, "You sent 15 characters to AGENT00001") || !contains(r.Events, "chunk") {
		t.Fatalf("invoke-agent: %+v", r)
	}
	r = runAgentJS(t, dir, e.endpoint, "retrieve", "KB00000001", "what is warden")
	if !r.OK || r.Results != 2 || !strings.Contains(r.Text, "egress proxy") {
		t.Fatalf("retrieve: %+v", r)
	}
	r = runAgentJS(t, dir, e.endpoint, "invoke-agent", "AGENT00002", "ALIAS00001", "node-1", "denied")
	if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 || !strings.Contains(r.Message, "AGENT00002/ALIAS00001") {
		t.Fatalf("denied invoke-agent: %+v", r)
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
	if recs[2].Decision != "deny" || recs[2].Rule != "apps[0].allow.agents" {
		t.Fatalf("denied call's record: decision %q rule %q", recs[2].Decision, recs[2].Rule)
	}
}
