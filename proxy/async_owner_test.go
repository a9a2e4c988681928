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

	"github.com/warden-egress/warden/authz/identity"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// twoAppsPolicy selects two apps by Warden-issued keys; both may run async
// jobs, under different prefixes.
const twoAppsPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [keys]
  keys: {master_key_file: %s}
apps:
  - name: video-a
    match: {tags: {warden.key_app: team-a}}
    allow:
      models: ["amazon.nova-reel-*"]
      operations: [StartAsyncInvoke, GetAsyncInvoke, ListAsyncInvokes]
      async_output_prefixes: ["s3://video-out/a/"]
  - name: video-b
    match: {tags: {warden.key_app: team-b}}
    allow:
      models: ["amazon.nova-reel-*"]
      operations: [StartAsyncInvoke, GetAsyncInvoke, ListAsyncInvokes]
      async_output_prefixes: ["s3://video-out/b/"]
`

// startTwoKeyApps runs Warden with twoAppsPolicy (plus extra YAML appended)
// and returns SDK clients for team-a and team-b.
func startTwoKeyApps(t *testing.T, policy string) (*keysEnv, *bedrockruntime.Client, *bedrockruntime.Client) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "master.key")
	if _, err := identity.GenerateMasterKey(file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(file)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour)
	aID, aSecret, err := identity.IssueKey(master, "team-a", exp, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bID, bSecret, err := identity.IssueKey(master, "team-b", exp, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &keysEnv{master: master}
	k.env = startEnv(t, withPolicy(fmt.Sprintf(policy, file)))
	return k, k.sdk(aID, aSecret, nil), k.sdk(bID, bSecret, nil)
}

func startJob(t *testing.T, c *bedrockruntime.Client, uri string) string {
	t.Helper()
	out, err := c.StartAsyncInvoke(context.Background(), &bedrockruntime.StartAsyncInvokeInput{
		ModelId:    aws.String("amazon.nova-reel-v1:0"),
		ModelInput: document.NewLazyDocument(map[string]any{"taskType": "TEXT_VIDEO", "textToVideoParams": map[string]any{"text": "a cat"}}),
		OutputDataConfig: &types.AsyncInvokeOutputDataConfigMemberS3OutputDataConfig{
			Value: types.AsyncInvokeS3OutputDataConfig{S3Uri: aws.String(uri)}},
	})
	if err != nil {
		t.Fatalf("StartAsyncInvoke: %v", err)
	}
	return aws.ToString(out.InvocationArn)
}

func listJobs(t *testing.T, c *bedrockruntime.Client, max int32) []string {
	t.Helper()
	var arns []string
	p := bedrockruntime.NewListAsyncInvokesPaginator(c, &bedrockruntime.ListAsyncInvokesInput{MaxResults: aws.Int32(max)})
	for pages := 0; p.HasMorePages(); pages++ {
		if pages > 20 {
			t.Fatal("too many pages")
		}
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListAsyncInvokes: %v", err)
		}
		for _, s := range out.AsyncInvokeSummaries {
			arns = append(arns, aws.ToString(s.InvocationArn))
		}
	}
	return arns
}

// Get/ListAsyncInvokes return only the calling app's jobs.
func TestAsyncInvokesPerApp(t *testing.T) {
	e, a, b := startTwoKeyApps(t, twoAppsPolicy)
	ctx := context.Background()
	a1 := startJob(t, a, "s3://video-out/a/1/")
	b1 := startJob(t, b, "s3://video-out/b/1/")
	a2 := startJob(t, a, "s3://video-out/a/2/")

	if out, err := a.GetAsyncInvoke(ctx, &bedrockruntime.GetAsyncInvokeInput{InvocationArn: aws.String(a1)}); err != nil ||
		aws.ToString(out.InvocationArn) != a1 {
		t.Fatalf("own job: %v", err)
	}
	_, err := a.GetAsyncInvoke(ctx, &bedrockruntime.GetAsyncInvokeInput{InvocationArn: aws.String(b1)})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "video-a") || !strings.Contains(ade.ErrorMessage(), b1) {
		t.Fatalf("other app's job: want AccessDeniedException, got %v", err)
	}
	// An ARN nobody started through Warden is denied too.
	_, err = b.GetAsyncInvoke(ctx, &bedrockruntime.GetAsyncInvokeInput{InvocationArn: aws.String("arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefabcdef")})
	if !errors.As(err, &ade) {
		t.Fatalf("unknown job: want AccessDeniedException, got %v", err)
	}

	// Pages of one summary: the other app's job comes back as an empty page
	// whose nextToken is kept, so the paginator still reaches every own job.
	if got := listJobs(t, a, 1); len(got) != 2 || !contains(got, a1) || !contains(got, a2) {
		t.Errorf("app a lists %v, want [%s %s]", got, a1, a2)
	}
	if got := listJobs(t, b, 100); len(got) != 1 || got[0] != b1 {
		t.Errorf("app b lists %v, want [%s]", got, b1)
	}

	// The denied Get never reached Bedrock; its audit record says why.
	for _, call := range e.emu.Calls() {
		if call.Op == "GetAsyncInvoke" && strings.Contains(call.EscapedPath, b1[strings.LastIndexByte(b1, '/')+1:]) {
			t.Errorf("GetAsyncInvoke of b's job was forwarded for %+v", call)
		}
	}
	found := false
	for _, r := range e.audit.wait(t, 10) {
		if r.Operation == "GetAsyncInvoke" && r.App == "video-a" && r.Decision == "deny" {
			found = r.Rule == "async-ownership" && r.Status == 403
		}
	}
	if !found {
		t.Error("no async-ownership denial in the audit records")
	}
}
