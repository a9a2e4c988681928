package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// Forward-proxy mode intercepts the agent-runtime host: the real client,
// left at its regional endpoint with HTTPS_PROXY at Warden, is re-signed
// and sent to upstream.agent_runtime_url, and its record names the host.
//
// Under passthrough the app's own signature (which covers the Host) must
// reach the upstream intact: the emulator then accepts only the app's key.
func TestForwardProxyAgentRuntime(t *testing.T) {
	for _, signing := range []string{"resign", "passthrough"} {
		t.Run(signing, func(t *testing.T) { forwardProxyAgentRuntime(t, signing) })
	}
}

func forwardProxyAgentRuntime(t *testing.T, signing string) {
	key, secret := wardenKey, wardenSecret
	if signing == "passthrough" {
		key, secret = appKey, appSecret
	}
	emu := bedrocktest.NewServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{key: secret}})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${CONTROL_PLANE}", e.cp.URL, "${SIGNING}", signing).Replace(`
version: 1
listen: {proxy: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", agent_runtime_url: "${UPSTREAM}", insecure: true, signing: ${SIGNING}}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: rag, env: prod}
apps:
  - name: rag-prod
    allow_weak_identity: true
    match: {tags: {app: rag, env: prod}}
    allow:
      operations: [Retrieve]
      knowledge_bases: ["KB00000001"]
`)
	e.start(t, policy, "proxy", nil)
	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			tr := e.proxyTransport(h2)
			t.Cleanup(tr.CloseIdleConnections)
			c := bar.New(bar.Options{
				Region:           "us-east-1",
				Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
				RetryMaxAttempts: 1,
				HTTPClient:       bedrocktest.BufferedClient(&http.Client{Transport: tr}),
			})
			n := len(e.audit.wait(t, 0))
			out, err := c.Retrieve(testCtx(t), &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB00000001"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("warden")}})
			if err != nil {
				t.Fatalf("Retrieve: %v", err)
			}
			if len(out.RetrievalResults) == 0 {
				t.Fatal("no retrieval results")
			}
			r := e.audit.wait(t, n+1)[n]
			if r.Decision != "allow" || r.Mode != "proxy" || r.Host != "bedrock-agent-runtime.us-east-1.amazonaws.com" || r.Agent == nil || r.Agent.KnowledgeBases[0] != "KB00000001" {
				t.Fatalf("record %+v agent %+v", r, r.Agent)
			}
			if _, err := c.Retrieve(testCtx(t), &bar.RetrieveInput{KnowledgeBaseId: aws.String("KB00000002"), RetrievalQuery: &bt.KnowledgeBaseQuery{Text: aws.String("q")}}); err == nil ||
				!strings.Contains(err.Error(), "allow.knowledge_bases") {
				t.Fatalf("Retrieve of an unlisted KB: %v", err)
			}
		})
	}
	for _, c := range e.emu.Calls() {
		if c.Op != bedrocktest.OpRetrieve || !c.SignatureOK || c.AccessKeyID != key || c.IDs["knowledgeBaseId"] != "KB00000001" {
			t.Errorf("upstream saw %s %v signed by %s (ok %v)", c.Op, c.IDs, c.AccessKeyID, c.SignatureOK)
		}
	}
}
