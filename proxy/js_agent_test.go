package proxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	Session string   `json:"sessionId"`
}

// runAgentJS runs the Node client with AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME
// pointed at Warden, as an unmodified Node app would be configured.
func runAgentJS(t *testing.T, dir, endpoint string, args ...string) agentJSResult {
	t.Helper()
	return runAgentJSAs(t, dir, endpoint, appKey, appSecret, args...)
}

// runAgentJSAs is runAgentJS signing with the given key: with Warden-issued
// keys, the key says which app calls.
func runAgentJSAs(t *testing.T, dir, endpoint, key, secret string, args ...string) agentJSResult {
	t.Helper()
	return runNodeClient[agentJSResult](t, dir, append(os.Environ(),
		"AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME="+endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+key,
		"AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_SESSION_TOKEN=",
		"HTTPS_PROXY=", "https_proxy=",
	), args...)
}

// The real @aws-sdk/client-bedrock-agent-runtime through Warden:
// InvokeAgent streamed back chunk by chunk, InvokeInlineAgent,
// RetrieveAndGenerate plain and streamed, Retrieve; denied by agent alias,
// by the model a RetrieveAndGenerate embeds, by an S3 source outside the
// app's prefixes, and by an SSN in inputText — each reaching the app as a
// typed AccessDeniedException, with nothing forwarded.
func TestJSAgentRuntime(t *testing.T) {
	dir := agentJSDir(t)
	e := startEnv(t, withPolicy(agentPolicy+"    guards: [ssn-block]\n"+agentGuardDefs))
	const fm = "arn:aws:bedrock:us-east-1::foundation-model/"
	allowed := []struct {
		args  []string
		check func(agentJSResult) bool
	}{
		{[]string{"invoke-agent", "AGENT00001", "ALIAS00001", "node-1", "hello from node"}, func(r agentJSResult) bool {
			return strings.Contains(r.Text, "You sent 15 characters to AGENT00001") && contains(r.Events, "chunk")
		}},
		{[]string{"retrieve", "KB00000001", "what is warden"}, func(r agentJSResult) bool {
			return r.Results == 2 && strings.Contains(r.Text, "egress proxy")
		}},
		{[]string{"invoke-inline-agent", "node-2", haiku, "hello inline"}, func(r agentJSResult) bool {
			return r.Text != "" && contains(r.Events, "chunk") && r.Session == "node-2"
		}},
		{[]string{"rag", "KB00000001", fm + haiku, "what is warden"}, func(r agentJSResult) bool {
			return r.Text != "" && r.Session != ""
		}},
		{[]string{"rag-stream", "KB00000001", fm + haiku, "what is warden"}, func(r agentJSResult) bool {
			return r.Text != "" && contains(r.Events, "output")
		}},
	}
	for _, tc := range allowed {
		if r := runAgentJS(t, dir, e.endpoint, tc.args...); !r.OK || !tc.check(r) {
			t.Fatalf("%v: %+v", tc.args, r)
		}
	}
	const ssn = "123-45-6789"
	denied := []struct {
		args          []string
		rule, message string
	}{
		{[]string{"invoke-agent", "AGENT00002", "ALIAS00001", "node-1", "denied"}, "apps[0].allow.agents", "AGENT00002/ALIAS00001"},
		{[]string{"retrieve", "KB00000002", "what is warden"}, "apps[0].allow.knowledge_bases", "KB00000002"},
		{[]string{"rag", "KB00000001", fm + "anthropic.claude-3-opus-20240229-v1:0", "what is warden"}, "apps[0].allow.models", "knowledgeBaseConfiguration.modelArn"},
		{[]string{"rag-s3", "s3://rag-docs/team-b/secret.pdf", fm + haiku, "what is warden"}, "apps[0].allow.s3_input_prefixes", "s3://rag-docs/team-b/secret.pdf"},
		{[]string{"invoke-agent", "AGENT00001", "ALIAS00001", "node-1", "my ssn is " + ssn}, "guards.ssn-block", "US_SOCIAL_SECURITY_NUMBER"},
	}
	for _, tc := range denied {
		n := len(e.audit.wait(t, 0))
		r := runAgentJS(t, dir, e.endpoint, tc.args...)
		if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 || !strings.Contains(r.Message, tc.message) || strings.Contains(r.Message, ssn) {
			t.Fatalf("%v: %+v; want AccessDeniedException mentioning %q", tc.args, r, tc.message)
		}
		if rec := e.audit.wait(t, n+1)[n]; rec.Decision != "deny" || rec.Rule != tc.rule {
			t.Fatalf("%v: record decision %q rule %q; want deny by %s", tc.args, rec.Decision, rec.Rule, tc.rule)
		}
	}
	calls := e.emu.Calls()
	if len(calls) != len(allowed) {
		t.Fatalf("emulator saw %d calls, want %d (the denied ones never forwarded)", len(calls), len(allowed))
	}
	for _, c := range calls {
		if !c.SignatureOK || c.AccessKeyID != wardenKey {
			t.Errorf("%s not signed by Warden: %s", c.Op, c.AuthError)
		}
	}
}

// Another app's session is unreadable from Node too: two apps told apart
// by Warden-issued keys; the one that created a session reads it, the
// other gets a typed AccessDeniedException.
func TestJSAgentSessionsPerApp(t *testing.T) {
	dir := agentJSDir(t)
	e, issue := startTwoAgentAppsKeys(t)
	aKey, aSecret := issue("team-a")
	bKey, bSecret := issue("team-b")
	r := runAgentJSAs(t, dir, e.endpoint, aKey, aSecret, "create-session")
	if !r.OK || r.Session == "" {
		t.Fatalf("create-session: %+v", r)
	}
	sid := r.Session
	if r := runAgentJSAs(t, dir, e.endpoint, aKey, aSecret, "get-session", sid); !r.OK || r.Session != sid {
		t.Fatalf("owner's get-session: %+v", r)
	}
	n := len(e.audit.wait(t, 0))
	r = runAgentJSAs(t, dir, e.endpoint, bKey, bSecret, "get-session", sid)
	if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 {
		t.Fatalf("other app's get-session: %+v", r)
	}
	if rec := e.audit.wait(t, n+1)[n]; rec.Decision != "deny" || rec.Rule != "agent-runtime.ownership" || rec.App != "agents-b" {
		t.Fatalf("record decision %q rule %q app %q", rec.Decision, rec.Rule, rec.App)
	}
	if got := len(e.emu.Calls()); got != 2 {
		t.Fatalf("emulator saw %d calls, want 2", got)
	}
}
