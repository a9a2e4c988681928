package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

const opusModel = "anthropic.claude-3-opus-20240229-v1:0"

// globalsPolicy: the app allows every Anthropic model, a top-level deny
// rule takes Opus back, and the app's bodies are capped below the global limit.
const globalsPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
%s
deny:
  - name: no-opus
    models: ["anthropic.claude-3-opus-*"]
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.*", "us.anthropic.*"]
      operations: [Converse, InvokeModel]
      profile_scopes: [us]
    limits: {max_body_bytes: 2000}
`

func TestDenyRuleBeatsAllow(t *testing.T) {
	e := startEnv(t, withPolicy(strings.Replace(globalsPolicy, "%s", "", 1)))
	c := e.client(t, nil)
	ctx := context.Background()
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatalf("allowed model: %v", err)
	}
	for _, model := range []string{opusModel, "us." + opusModel} {
		_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")})
		var ade *types.AccessDeniedException
		if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "deny[0] (no-opus)") || !strings.Contains(ade.ErrorMessage(), model) {
			t.Fatalf("%s: want AccessDeniedException naming the deny rule, got %v", model, err)
		}
	}
	if n := len(e.emu.Calls()); n != 1 {
		t.Errorf("emulator saw %d calls, want only the allowed one", n)
	}
	recs := e.audit.wait(t, 3)
	if r := recs[1]; r.Decision != "deny" || r.Rule != "deny[0]" || r.App != "chatbot-prod" || r.Status != 403 {
		t.Errorf("deny record: %+v", r)
	}
}

func TestGlobalDryRunForwardsDenials(t *testing.T) {
	e := startEnv(t, withPolicy(strings.Replace(globalsPolicy, "%s", "mode: dry-run", 1)))
	c := e.client(t, nil)
	if _, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(opusModel), Messages: userMsg("hi")}); err != nil {
		t.Fatalf("denied model in global dry-run: %v", err)
	}
	calls := e.emu.Calls()
	if len(calls) != 1 || calls[0].ModelID != opusModel || !calls[0].SignatureOK {
		t.Fatalf("emulator saw %+v", calls)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "dry-run-deny" || r.Rule != "deny[0]" || r.Status != 200 {
		t.Errorf("record: %+v", r)
	}
	// A workload no app selects is forwarded too, and recorded.
	e = startEnv(t, withPolicy(strings.Replace(strings.Replace(globalsPolicy, "%s", "mode: dry-run", 1),
		"static: {app: chatbot, env: prod}", "static: {app: unknown, env: prod}", 1)))
	if _, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatalf("unselected workload in global dry-run: %v", err)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "dry-run-deny" || r.Rule != "default-deny" || r.App != "" {
		t.Errorf("record: %+v", r)
	}
}

func TestAppMaxBodyBytes(t *testing.T) {
	for _, mode := range []string{"", "mode: dry-run"} {
		e := startEnv(t, withPolicy(strings.Replace(globalsPolicy, "%s", mode, 1)))
		c := e.client(t, nil)
		ctx := context.Background()
		if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("short")}); err != nil {
			t.Fatalf("%q: small body: %v", mode, err)
		}
		_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(strings.Repeat("x", 3000))})
		var ve *types.ValidationException
		if !errors.As(err, &ve) || !strings.Contains(ve.ErrorMessage(), "chatbot-prod") || !strings.Contains(ve.ErrorMessage(), "2000") {
			t.Fatalf("%q: big body: want ValidationException naming the app and its limit, got %v", mode, err)
		}
		if n := len(e.emu.Calls()); n != 1 {
			t.Errorf("%q: emulator saw %d calls, want only the small one", mode, n)
		}
		if r := e.audit.wait(t, 2)[1]; r.Decision != "deny" || r.Rule != "app.limits.max_body_bytes" || r.Status != 400 || r.App != "chatbot-prod" {
			t.Errorf("%q: record: %+v", mode, r)
		}
	}
}

// Deny rules and the global mode are part of the reloadable policy: a
// reload that adds a deny rule switches decisions, and one that sets
// mode: dry-run forwards the denied call again.
func TestReloadDenyAndMode(t *testing.T) {
	e := startEnv(t, withPolicy(strings.Replace(globalsPolicy, "%s", "", 1)))
	c := e.client(t, nil)
	ctx := context.Background()
	converse := func() error {
		_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
		return err
	}
	if err := converse(); err != nil {
		t.Fatalf("before reload: %v", err)
	}
	reload := func(mode string) proxy.ReloadResult {
		t.Helper()
		p := strings.Replace(globalsPolicy, "%s", mode, 1)
		p = strings.Replace(p, `models: ["anthropic.claude-3-opus-*"]`, `models: ["anthropic.claude-3-opus-*", "anthropic.claude-3-5-haiku-*"]`, 1)
		cfg, err := config.ParseConfig([]byte(strings.ReplaceAll(p, "${UPSTREAM}", e.emu.URL)))
		if err != nil {
			t.Fatal(err)
		}
		res := e.srv.Reload(cfg)
		if res.Err != nil || !res.Changed {
			t.Fatalf("reload: %+v", res)
		}
		return res
	}
	reload("")
	var ade *types.AccessDeniedException
	if err := converse(); !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "no-opus") {
		t.Fatalf("after adding haiku to the deny rule: %v", err)
	}
	reload("mode: dry-run")
	if err := converse(); err != nil {
		t.Fatalf("after switching to global dry-run: %v", err)
	}
	recs := e.audit.wait(t, 3)
	if recs[1].Decision != "deny" || recs[2].Decision != "dry-run-deny" || recs[1].PolicyHash == recs[2].PolicyHash || recs[0].PolicyHash == recs[1].PolicyHash {
		t.Errorf("records: %+v", recs)
	}
}
