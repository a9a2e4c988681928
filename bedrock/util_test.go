package bedrock

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

func fmtQ(s string) string { return strconv.Quote(s) }

// sdkEscape percent-encodes like the AWS SDKs do for a path label: every
// byte except A-Z a-z 0-9 - . _ ~, including ':' and '/'.
func sdkEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// modelSamples holds one identifier of every kind and partition.
var modelSamples = []string{
	"anthropic.claude-3-5-haiku-20241022-v1:0",
	"amazon.titan-text-express-v1",
	"anthropic.claude-3-sonnet-20240229-v1:0:200k",
	"us.anthropic.claude-3-5-haiku-20241022-v1:0",
	"us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
	"global.anthropic.claude-sonnet-4-5-20250929-v1:0",
	"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
	"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.titan-text-express-v1",
	"arn:aws-cn:bedrock:cn-north-1::foundation-model/amazon.titan-text-express-v1",
	"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
	"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
	"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456",
	"arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abcdef123456",
	"arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456",
	"arn:aws:bedrock:us-east-1:123456789012:imported-model/abcdef123456",
	"arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234:2",
	"arn:aws:bedrock:us-east-1:123456789012:prompt-router/abcdef123456",
	"arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1",
	"arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint",
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
