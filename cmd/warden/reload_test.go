package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/testenv"
)

// serve reloads its policy on SIGHUP: a valid file swaps the policy (and
// names the changed keys it did not apply), an invalid one is rejected
// with file:line:column errors and the last good policy stays; /metrics
// and the audit records name the running policy.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	emu := serveEmulator(t)
	dir := t.TempDir()
	ep, admin := freeAddr(t), freeAddr(t)
	auditPath := filepath.Join(dir, "audit.jsonl")
	cfg := func(models, static string) string {
		return fmt.Sprintf(`version: 1
listen: {endpoint: %q, admin: %q}
upstream: {region: us-east-1, url: %q, insecure: true}
identity: {static: {app: svc%s}}
apps:
  - name: svc
    allow_weak_identity: true
    match: {tags: {app: svc}}
    allow: {models: [%q], operations: [Converse]}
audit:
  spool: {dir: %q}
  sinks: [{file: {path: %q}}]
`, ep, admin, emu.URL, static, models, filepath.Join(dir, "spool"), auditPath)
	}
	cfgPath := filepath.Join(dir, "warden.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg("amazon.nova-*", ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	stderr := &testenv.Buffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfgPath, "--watch-interval", "0"}, io.Discard, stderr)
	}()
	stopped := false
	defer func() {
		if stopped {
			return
		}
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	}()
	waitHTTP(t, "http://"+admin+"/readyz")

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	hashRE := regexp.MustCompile(`warden_policy_info\{hash="([0-9a-f]{12})"\} 1`)
	policyHash := func() string {
		m := hashRE.FindStringSubmatch(get("/metrics"))
		if m == nil {
			t.Fatal("no warden_policy_info on /metrics")
		}
		return m[1]
	}
	waitMetrics := func(cond func(string) bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if cond(get("/metrics")) {
				return
			}
		}
		t.Fatalf("timed out waiting for %s:\n%s", what, stderr.String())
	}
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ep), RetryMaxAttempts: 1,
		HTTPClient:  bedrocktest.BufferedClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	converse := func(model string) error {
		_, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model),
			Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
		return err
	}
	const nova, haiku = "amazon.nova-lite-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
	h0 := policyHash()
	if err := converse(nova); err != nil {
		t.Fatalf("nova under the first policy: %v", err)
	}

	// A valid file, with a change that needs a restart.
	write(cfg("anthropic.claude-3-5-haiku-*", ", env: x"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetrics(func(m string) bool { return strings.Contains(m, `warden_config_reloads_total{result="ok"} 1`) }, "a successful reload")
	h1 := policyHash()
	if h1 == h0 {
		t.Fatal("policy hash unchanged after a reload that changed apps")
	}
	var ade *types.AccessDeniedException
	if err := converse(nova); !errors.As(err, &ade) {
		t.Errorf("nova after the reload: %v, want AccessDenied", err)
	}
	if err := converse(haiku); err != nil {
		t.Errorf("haiku after the reload: %v", err)
	}
	if log := stderr.String(); !strings.Contains(log, "need a restart were not applied") || !strings.Contains(log, `"identity.static"`) {
		t.Errorf("no restart warning naming identity.static:\n%s", log)
	}

	// An invalid file: rejected with its position, the policy stays.
	write(strings.Replace(cfg("amazon.nova-*", ""), "operations: [Converse]", "operations: [Converse], colour: blue", 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetrics(func(m string) bool { return strings.Contains(m, `warden_config_reloads_total{result="error"} 1`) }, "a rejected reload")
	if h := policyHash(); h != h1 {
		t.Errorf("policy %s after a rejected reload, want %s", h, h1)
	}
	if log := stderr.String(); !regexp.MustCompile(regexp.QuoteMeta(cfgPath) + `:9:\d+: apps\[0\]\.allow\.colour: unknown key`).MatchString(log) {
		t.Errorf("rejection lacks file:line:column:\n%s", log)
	}
	if err := converse(haiku); err != nil {
		t.Errorf("haiku after a rejected reload: %v", err)
	}
	if !strings.Contains(get("/readyz"), "ready") {
		t.Error("/readyz not ready with a good policy running")
	}

	cancel()
	<-done
	stopped = true
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{h0, h1, h1, h1}
	lines := callLines(b)
	if len(lines) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(lines), len(want), b)
	}
	for i, l := range lines {
		if !strings.Contains(l, `"policy_hash":"`+want[i]+`"`) {
			t.Errorf("audit record %d lacks policy_hash %s: %s", i, want[i], l)
		}
	}
}
