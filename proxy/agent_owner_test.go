package proxy_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	bar "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	bt "github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// twoAgentAppsPolicy: two apps, told apart by Warden-issued keys, allowed
// the same agent, knowledge base and every session operation.
const twoAgentAppsPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", agent_runtime_url: "${UPSTREAM}", insecure: true, signing: resign}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [keys]
  keys: {master_key_file: %s}
apps:
  - name: agents-a
    match: {tags: {warden.key_app: team-a}}
    allow: &agentAllow
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [InvokeAgent, GetAgentMemory, DeleteAgentMemory, RetrieveAndGenerate, CreateSession, GetSession, UpdateSession,
        EndSession, DeleteSession, ListSessions, CreateInvocation, ListInvocations, PutInvocationStep, GetInvocationStep,
        ListInvocationSteps, TagResource, UntagResource, ListTagsForResource]
      agents: ["AGENT00001/ALIAS00001"]
      knowledge_bases: ["KB00000001"]
  - name: agents-b
    match: {tags: {warden.key_app: team-b}}
    allow: *agentAllow
`

func startTwoAgentApps(t *testing.T) (*env, *bar.Client, *bar.Client) {
	t.Helper()
	e, issue := startTwoAgentAppsKeys(t)
	client := func(app string) *bar.Client {
		id, secret := issue(app)
		return bar.New(bar.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.endpoint),
			Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), RetryMaxAttempts: 1,
			HTTPClient: bedrocktest.BufferedClient(nil)})
	}
	return e, client("team-a"), client("team-b")
}

// startTwoAgentAppsKeys starts twoAgentAppsPolicy; issue returns a key for
// a key app (team-a, team-b).
func startTwoAgentAppsKeys(t *testing.T) (*env, func(app string) (id, secret string)) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "master.key")
	if _, err := identity.GenerateMasterKey(file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(file)
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, withPolicy(fmt.Sprintf(twoAgentAppsPolicy, file)))
	return e, func(app string) (string, string) {
		id, secret, err := identity.IssueKey(master, app, time.Now().Add(time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return id, secret
	}
}

// A session, an agent session, an agent memory or a knowledge base session
// one app created is not readable by another: refused with
// AccessDeniedException (rule agent-runtime.ownership) before anything is
// forwarded; ListSessions shows each app its own.
func TestAgentSessionsPerApp(t *testing.T) {
	e, a, b := startTwoAgentApps(t)
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	denied := func(what string, err error) {
		t.Helper()
		var ad *bt.AccessDeniedException
		if !errors.As(err, &ad) || !strings.Contains(ad.ErrorMessage(), "agents-b may not call") {
			t.Fatalf("%s: got %v; want AccessDeniedException for agents-b", what, err)
		}
		recs := e.audit.wait(t, 0)
		if r := recs[len(recs)-1]; r.Decision != "deny" || r.Rule != "agent-runtime.ownership" {
			t.Fatalf("%s: record decision %q rule %q", what, r.Decision, r.Rule)
		}
	}

	// The sessions API: ids Bedrock generates.
	sa, err := a.CreateSession(ctx, &bar.CreateSessionInput{})
	must("CreateSession a", err)
	sid := sa.SessionId
	sb, err := b.CreateSession(ctx, &bar.CreateSessionInput{})
	must("CreateSession b", err)
	_, err = a.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: sid})
	must("GetSession a", err)
	inv, err := a.CreateInvocation(ctx, &bar.CreateInvocationInput{SessionIdentifier: sid})
	must("CreateInvocation a", err)
	_, err = a.PutInvocationStep(ctx, &bar.PutInvocationStepInput{SessionIdentifier: sid, InvocationIdentifier: inv.InvocationId,
		InvocationStepTime: aws.Time(time.Now()), Payload: &bt.InvocationStepPayloadMemberContentBlocks{Value: []bt.BedrockSessionContentBlock{
			&bt.BedrockSessionContentBlockMemberText{Value: "step one"}}}})
	must("PutInvocationStep a", err)
	before := len(e.emu.Calls())
	for what, call := range map[string]func() error{
		"GetSession": func() error { _, err := b.GetSession(ctx, &bar.GetSessionInput{SessionIdentifier: sid}); return err },
		"UpdateSession": func() error {
			_, err := b.UpdateSession(ctx, &bar.UpdateSessionInput{SessionIdentifier: sid})
			return err
		},
		"ListInvocations": func() error {
			_, err := b.ListInvocations(ctx, &bar.ListInvocationsInput{SessionIdentifier: sid})
			return err
		},
		"ListInvocationSteps": func() error {
			_, err := b.ListInvocationSteps(ctx, &bar.ListInvocationStepsInput{SessionIdentifier: sid})
			return err
		},
		"PutInvocationStep": func() error {
			_, err := b.PutInvocationStep(ctx, &bar.PutInvocationStepInput{SessionIdentifier: sid, InvocationIdentifier: inv.InvocationId,
				InvocationStepTime: aws.Time(time.Now()), Payload: &bt.InvocationStepPayloadMemberContentBlocks{Value: []bt.BedrockSessionContentBlock{
					&bt.BedrockSessionContentBlockMemberText{Value: "injected"}}}})
			return err
		},
		"ListTagsForResource (ARN)": func() error {
			_, err := b.ListTagsForResource(ctx, &bar.ListTagsForResourceInput{ResourceArn: sa.SessionArn})
			return err
		},
		"EndSession": func() error { _, err := b.EndSession(ctx, &bar.EndSessionInput{SessionIdentifier: sid}); return err },
		"DeleteSession": func() error {
			_, err := b.DeleteSession(ctx, &bar.DeleteSessionInput{SessionIdentifier: sid})
			return err
		},
	} {
		denied(what, call())
	}
	if got := len(e.emu.Calls()); got != before {
		t.Fatalf("%d refused calls reached the upstream", got-before)
	}
	for app, c := range map[string]struct {
		client *bar.Client
		want   string
	}{"a": {a, aws.ToString(sid)}, "b": {b, aws.ToString(sb.SessionId)}} {
		out, err := c.client.ListSessions(ctx, &bar.ListSessionsInput{})
		must("ListSessions "+app, err)
		if len(out.SessionSummaries) != 1 || aws.ToString(out.SessionSummaries[0].SessionId) != c.want {
			t.Fatalf("ListSessions %s: %d summaries, want only %s", app, len(out.SessionSummaries), c.want)
		}
	}

	// InvokeAgent: the session and memory ids the caller chooses are the
	// first app's.
	invoke := func(c *bar.Client, session, memory string) error {
		in := agentInput("hello")
		in.SessionId, in.MemoryId = aws.String(session), aws.String(memory)
		_, err := invokeAgentText(t, c, in)
		return err
	}
	must("InvokeAgent a", invoke(a, "chat-1", "mem-a"))
	denied("InvokeAgent b, a's session", invoke(b, "chat-1", "mem-b"))
	denied("InvokeAgent b, a's memory", invoke(b, "chat-2", "mem-a"))
	must("InvokeAgent b, its own", invoke(b, "chat-3", "mem-b"))
	_, err = a.GetAgentMemory(ctx, &bar.GetAgentMemoryInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		MemoryId: aws.String("mem-a"), MemoryType: bt.MemoryTypeSessionSummary})
	must("GetAgentMemory a", err)
	_, err = b.GetAgentMemory(ctx, &bar.GetAgentMemoryInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		MemoryId: aws.String("mem-a"), MemoryType: bt.MemoryTypeSessionSummary})
	denied("GetAgentMemory b", err)
	_, err = b.DeleteAgentMemory(ctx, &bar.DeleteAgentMemoryInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001"),
		MemoryId: aws.String("mem-a")})
	denied("DeleteAgentMemory b", err)
	_, err = b.DeleteAgentMemory(ctx, &bar.DeleteAgentMemoryInput{AgentId: aws.String("AGENT00001"), AgentAliasId: aws.String("ALIAS00001")})
	denied("DeleteAgentMemory b, every memory", err)

	// RetrieveAndGenerate: the session id Bedrock returns is the app's.
	rag := func(session *string) *bar.RetrieveAndGenerateInput {
		return &bar.RetrieveAndGenerateInput{Input: &bt.RetrieveAndGenerateInput{Text: aws.String("what is warden")}, SessionId: session,
			RetrieveAndGenerateConfiguration: &bt.RetrieveAndGenerateConfiguration{Type: bt.RetrieveAndGenerateTypeKnowledgeBase,
				KnowledgeBaseConfiguration: &bt.KnowledgeBaseRetrieveAndGenerateConfiguration{KnowledgeBaseId: aws.String("KB00000001"), ModelArn: aws.String(haiku)}}}
	}
	out, err := a.RetrieveAndGenerate(ctx, rag(nil))
	must("RetrieveAndGenerate a", err)
	_, err = a.RetrieveAndGenerate(ctx, rag(out.SessionId))
	must("RetrieveAndGenerate a, its session", err)
	_, err = b.RetrieveAndGenerate(ctx, rag(out.SessionId))
	denied("RetrieveAndGenerate b, a's session", err)
}
