package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// serve runs from a config file, answers on the endpoint and admin
// listeners, writes audit records to the configured file (0600), and shuts
// down cleanly when its context ends.
func TestServe(t *testing.T) {
	emu := serveEmulator(t)
	dir := t.TempDir()
	ep, admin := freeAddr(t), freeAddr(t)
	auditPath := filepath.Join(dir, "audit.jsonl")
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
`, ep, admin, emu.URL, filepath.Join(dir, "spool"), auditPath)
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
		HTTPClient:  bedrocktest.BufferedClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}
	if _, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("amazon.nova-lite-v1:0"), Messages: msgs}); err != nil {
		t.Fatalf("Converse through serve: %v", err)
	}
	// The call is counted after its response is sent: poll, bounded.
	const want = `warden_requests_total{app="svc",code="200",decision="allow",operation="Converse"} 1`
	var m bytes.Buffer
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m.Reset()
		_, _ = m.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(m.String(), want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(m.String(), want) {
		t.Errorf("metrics lack the call:\n%s", grepLines(m.String(), "warden_"))
	}
	var hc bytes.Buffer
	if code := run(ctx, []string{"healthcheck", "--url", "http://" + admin + "/healthz"}, &hc, &hc); code != 0 {
		t.Errorf("healthcheck against a live server: exit %d %s", code, hc.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	if code := run(context.Background(), []string{"healthcheck", "--url", "http://" + admin + "/healthz"}, &hc, &hc); code == 0 {
		t.Error("healthcheck against a stopped server succeeded")
	}
	st, err := os.Stat(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(auditPath)
	if calls := callLines(data); len(calls) != 1 || !strings.Contains(calls[0], `"decision":"allow"`) {
		t.Errorf("audit file: %s", data)
	}
	// The trail a stopped serve leaves verifies against the spool's key.
	var vout bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--key", "@" + filepath.Join(dir, "spool", "signing.pub"), auditPath}, &vout, &vout); code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, vout.String())
	}
}

// callLines returns the call records among audit lines (not checkpoints).
func callLines(data []byte) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" && !strings.Contains(l, `"kind":"checkpoint"`) {
			out = append(out, l)
		}
	}
	return out
}

func TestPolicyValidate(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "validate", "--config", "../../deploy/examples/warden.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("example policy invalid: %s", errOut.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("version: 1\nlisten: {endpoint: 127.0.0.1:1}\napps:\n  - name: x\n    allow_weak_identity: true\n    match: {tags: {a: b}}\n    allow: {operations: [Nope]}\n"), 0o600)
	errOut.Reset()
	if code := run(context.Background(), []string{"policy", "validate", "--config", bad}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "bad.yaml:4:5: apps[0] (x)") {
		t.Fatalf("bad policy: exit %d, %s", code, errOut.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// serveEmulator starts an emulator that accepts only the key it puts in the
// environment, where `warden serve` (run in process) finds its credentials;
// no shared AWS config file can interfere.
func serveEmulator(t *testing.T) *bedrocktest.Server {
	t.Helper()
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENSERVE00001": "serve-secret"}})
	t.Cleanup(emu.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAWARDENSERVE00001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "serve-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return emu
}
