package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// dryRunPolicy puts the caller's app in dry-run: its decisions are made and
// recorded, but a call it would deny is forwarded anyway.
const dryRunPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    mode: dry-run
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse]
`

func TestDryRunForwardsAndRecordsDenials(t *testing.T) {
	e := startEnv(t, withPolicy(dryRunPolicy))
	c := e.client(t, nil)
	const opus = "anthropic.claude-3-opus-20240229-v1:0"
	ctx := context.Background()
	// Allowed, and a model the app does not allow: both reach the emulator.
	for _, model := range []string{haiku, opus} {
		if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")}); err != nil {
			t.Fatalf("Converse %s in dry-run: %v", model, err)
		}
	}
	calls := e.emu.Calls()
	if len(calls) != 2 || calls[0].ModelID != haiku || calls[1].ModelID != opus || !calls[1].SignatureOK {
		t.Fatalf("emulator saw %+v, want both calls re-signed", calls)
	}
	recs := e.audit.wait(t, 2)
	if r := recs[0]; r.Decision != "allow" || r.App != "chatbot-prod" || r.Status != 200 {
		t.Errorf("allowed call's record: %+v", r)
	}
	r := recs[1]
	if r.Decision != "dry-run-deny" || r.App != "chatbot-prod" || r.Status != 200 || r.Rule != "apps[0].allow.models" ||
		!strings.Contains(r.Reason, opus) || !strings.Contains(r.Reason, "allow.models") {
		t.Errorf("denied call's record: decision %q app %q status %d rule %q reason %q", r.Decision, r.App, r.Status, r.Rule, r.Reason)
	}
}

// Dry-run does not reach calls Warden cannot handle, nor workloads no app selects.
func TestDryRunDoesNotForwardEverything(t *testing.T) {
	e := startEnv(t, withPolicy(strings.Replace(dryRunPolicy, "static: {app: chatbot, env: prod}", "static: {app: reporting, env: prod}", 1)))
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "no app matches") {
		t.Fatalf("unselected workload: %v", err)
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "deny" {
		t.Errorf("record: %+v", r)
	}

	e = startEnv(t, withPolicy(dryRunPolicy))
	if err := rawCall(t, e.endpoint, "POST", "/model/"+haiku+"/invoke-with-bidirectional-stream", "{}"); err == nil ||
		!strings.Contains(err.Error(), "not supported") {
		t.Fatalf("bidirectional stream in dry-run: %v", err)
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
}
