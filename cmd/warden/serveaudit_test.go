package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// serve with audit.capture: the app's payloads reach the capture sink in
// their own signed chain; the audit sink never sees them.
func TestServeCapture(t *testing.T) {
	emu := serveEmulator(t)
	dir := t.TempDir()
	ep, admin := freeAddr(t), freeAddr(t)
	auditPath, capturePath := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "capture.jsonl")
	cfg := fmt.Sprintf(`version: 1
listen: {endpoint: %q, admin: %q}
upstream: {region: us-east-1, url: %q, insecure: true}
identity: {static: {app: svc}}
apps:
  - name: svc
    allow_weak_identity: true
    match: {tags: {app: svc}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
audit:
  spool: {dir: %q}
  sinks: [{file: {path: %q}}]
  capture: {apps: [svc], sinks: [{file: {path: %q}}]}
`, ep, admin, emu.URL, filepath.Join(dir, "spool"), auditPath, capturePath)
	cfgPath := filepath.Join(dir, "warden.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"serve", "--config", cfgPath}, &bytes.Buffer{}, &stderr) }()
	waitHTTP(t, "http://"+admin+"/healthz")
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ep), RetryMaxAttempts: 1,
		HTTPClient: bedrocktest.BufferedClient(nil), Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	const prompt = "quarterly numbers before release"
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}}
	if _, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("amazon.nova-lite-v1:0"), Messages: msgs}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
	auditData, _ := os.ReadFile(auditPath)
	if strings.Contains(string(auditData), "quarterly") || len(callLines(auditData)) != 1 {
		t.Fatalf("audit file: %s", auditData)
	}
	captureData, _ := os.ReadFile(capturePath)
	caps := callLines(captureData)
	if len(caps) != 1 {
		t.Fatalf("capture file: %s", captureData)
	}
	var c struct {
		Kind string `json:"kind"`
		Req  []byte `json:"request_b64"`
	}
	if err := json.Unmarshal([]byte(caps[0]), &c); err != nil || c.Kind != "capture" || !strings.Contains(string(c.Req), prompt) {
		t.Fatalf("capture line %s: %v", caps[0], err)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--key", "@" + filepath.Join(dir, "spool", "capture", "signing.pub"), capturePath}, &out, &out); code != 0 {
		t.Errorf("verify of the capture chain: exit %d\n%s", code, out.String())
	}
}
