package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// The server logs config.SelectorWarnings when it loads a policy and on
// every reload that changes it — a policy from a signed bundle never passes
// through `warden policy validate` on the host that runs it.
func TestServerLogsSelectorWarnings(t *testing.T) {
	const base = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true, signing: resign}
identity: {sources: [static], static: {app: chatbot}}
apps:
  - name: chatbot
    allow_weak_identity: true
    match: {tags: {app: chatbot}}
    allow: {models: ["*"], operations: [Converse]}
`
	core, logs := observer.New(zapcore.WarnLevel)
	cfg, err := config.ParseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(t.Context(), proxy.Options{Config: cfg, Audit: newRecorder(), Logger: zap.New(core),
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	if n := logs.FilterMessage("policy warning").Len(); n != 0 {
		t.Fatalf("%d selector warnings for a policy without ECS selectors", n)
	}
	// The new file selects on ecs.family under the ecs-sidecar source
	// without platform_task_definitions (the source itself needs a restart;
	// the policy is applied at once, and warned about).
	next, err := config.ParseConfig([]byte(strings.Replace(base, "identity: {sources: [static], static: {app: chatbot}}",
		"identity: {sources: [ecs-sidecar]}", 1) + `  - name: batch
    match: {tags: {ecs.cluster: prod, ecs.family: batch}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := srv.Reload(next); r.Err != nil || !r.Changed {
		t.Fatalf("reload: %+v", r)
	}
	got := logs.FilterMessage("policy warning").All()
	if len(got) != 1 {
		t.Fatalf("%d selector warnings logged, want 1: %+v", len(got), got)
	}
	w := got[0].ContextMap()["warning"].(string)
	for _, want := range []string{"apps[1] (batch)", "ecs.family", "ecs.task_role_arn", "platform_task_definitions"} {
		if !strings.Contains(w, want) {
			t.Errorf("the logged warning %q does not say %q", w, want)
		}
	}
}
