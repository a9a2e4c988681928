package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// StartAsyncInvoke is allowed only when its output location is under one of
// the app's prefixes; the check reads the same s3Uri Bedrock will use.
func TestStartAsyncInvokeOutputPrefix(t *testing.T) {
	const policy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity: {sources: [static], static: {app: video, env: prod}}
apps:
  - name: video-prod
    allow_weak_identity: true
    match: {tags: {app: video, env: prod}}
    allow:
      models: ["amazon.nova-reel-*"]
      operations: [StartAsyncInvoke]
      async_output_prefixes: ["s3://video-out/prod/"]
`
	e := startEnv(t, withPolicy(policy))
	c := e.client(t, nil)
	start := func(uri string) error {
		_, err := c.StartAsyncInvoke(context.Background(), &bedrockruntime.StartAsyncInvokeInput{
			ModelId:    aws.String("amazon.nova-reel-v1:0"),
			ModelInput: document.NewLazyDocument(map[string]any{"taskType": "TEXT_VIDEO", "textToVideoParams": map[string]any{"text": "a cat"}}),
			OutputDataConfig: &types.AsyncInvokeOutputDataConfigMemberS3OutputDataConfig{
				Value: types.AsyncInvokeS3OutputDataConfig{S3Uri: aws.String(uri)}},
		})
		return err
	}
	if err := start("s3://video-out/prod/run1/"); err != nil {
		t.Fatalf("allowed prefix: %v", err)
	}
	for _, uri := range []string{"s3://video-out/prodx/", "s3://other/prod/", "s3://video-out/prod/../dev/"} {
		err := start(uri)
		var ade *types.AccessDeniedException
		if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "video-prod") {
			t.Errorf("%s: want AccessDeniedException naming the app, got %v", uri, err)
		}
	}
	if n := len(e.emu.Calls()); n != 1 {
		t.Errorf("emulator saw %d calls, want only the allowed one", n)
	}
}
