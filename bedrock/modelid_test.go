package bedrock

import (
	"errors"
	"strings"
	"testing"
)

func TestParseModelID(t *testing.T) {
	const acct = "123456789012"
	tests := []struct {
		in        string
		kind      ModelKind
		partition string
		region    string
		account   string
		scope     string
		found     string
		canonical string
	}{
		// bare foundation models
		{in: "anthropic.claude-3-5-haiku-20241022-v1:0", kind: KindFoundationModel, found: "anthropic.claude-3-5-haiku-20241022-v1:0", canonical: "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{in: "amazon.titan-text-express-v1", kind: KindFoundationModel, found: "amazon.titan-text-express-v1", canonical: "amazon.titan-text-express-v1"},
		{in: "meta.llama3-70b-instruct-v1:0", kind: KindFoundationModel, found: "meta.llama3-70b-instruct-v1:0", canonical: "meta.llama3-70b-instruct-v1:0"},
		{in: "cohere.command-r-plus-v1:0", kind: KindFoundationModel, found: "cohere.command-r-plus-v1:0", canonical: "cohere.command-r-plus-v1:0"},
		{in: "ai21.jamba-1-5-large-v1:0", kind: KindFoundationModel, found: "ai21.jamba-1-5-large-v1:0", canonical: "ai21.jamba-1-5-large-v1:0"},
		{in: "mistral.mistral-large-2402-v1:0", kind: KindFoundationModel, found: "mistral.mistral-large-2402-v1:0", canonical: "mistral.mistral-large-2402-v1:0"},
		{in: "amazon.nova-lite-v1:0", kind: KindFoundationModel, found: "amazon.nova-lite-v1:0", canonical: "amazon.nova-lite-v1:0"},
		{in: "anthropic.claude-3-sonnet-20240229-v1:0:200k", kind: KindFoundationModel, found: "anthropic.claude-3-sonnet-20240229-v1:0:200k", canonical: "anthropic.claude-3-sonnet-20240229-v1:0:200k"},
		{in: "anthropic.claude-sonnet-4-6", kind: KindFoundationModel, found: "anthropic.claude-sonnet-4-6", canonical: "anthropic.claude-sonnet-4-6"},
		// system inference profiles, every scope
		{in: "us.anthropic.claude-3-5-haiku-20241022-v1:0", kind: KindInferenceProfile, scope: "us", found: "anthropic.claude-3-5-haiku-20241022-v1:0", canonical: "us.anthropic.claude-3-5-haiku-20241022-v1:0"},
		{in: "eu.amazon.nova-lite-v1:0", kind: KindInferenceProfile, scope: "eu", found: "amazon.nova-lite-v1:0", canonical: "eu.amazon.nova-lite-v1:0"},
		{in: "apac.amazon.nova-lite-v1:0", kind: KindInferenceProfile, scope: "apac", found: "amazon.nova-lite-v1:0", canonical: "apac.amazon.nova-lite-v1:0"},
		{in: "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", kind: KindInferenceProfile, scope: "us-gov", found: "anthropic.claude-3-5-sonnet-20240620-v1:0", canonical: "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0"},
		{in: "jp.amazon.nova-pro-v1:0", kind: KindInferenceProfile, scope: "jp", found: "amazon.nova-pro-v1:0", canonical: "jp.amazon.nova-pro-v1:0"},
		{in: "au.anthropic.claude-sonnet-4-5-20250929-v1:0", kind: KindInferenceProfile, scope: "au", found: "anthropic.claude-sonnet-4-5-20250929-v1:0", canonical: "au.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{in: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", kind: KindInferenceProfile, scope: "global", found: "anthropic.claude-sonnet-4-5-20250929-v1:0", canonical: "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{in: "ca.anthropic.claude-3-5-haiku-20241022-v1:0", kind: KindInferenceProfile, scope: "ca", found: "anthropic.claude-3-5-haiku-20241022-v1:0", canonical: "ca.anthropic.claude-3-5-haiku-20241022-v1:0"},
		// ARNs, every kind and partition
		{in: "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", kind: KindFoundationModel, partition: "aws", region: "us-east-1", found: "anthropic.claude-3-5-haiku-20241022-v1:0", canonical: "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{in: "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.titan-text-express-v1", kind: KindFoundationModel, partition: "aws-us-gov", region: "us-gov-west-1", found: "amazon.titan-text-express-v1", canonical: "amazon.titan-text-express-v1"},
		{in: "arn:aws-cn:bedrock:cn-north-1::foundation-model/amazon.titan-text-express-v1", kind: KindFoundationModel, partition: "aws-cn", region: "cn-north-1", found: "amazon.titan-text-express-v1", canonical: "amazon.titan-text-express-v1"},
		{in: "arn:aws:bedrock:eu-central-2:" + acct + ":inference-profile/eu.anthropic.claude-3-5-haiku-20241022-v1:0", kind: KindInferenceProfile, partition: "aws", region: "eu-central-2", account: acct, scope: "eu", found: "anthropic.claude-3-5-haiku-20241022-v1:0", canonical: "eu.anthropic.claude-3-5-haiku-20241022-v1:0"},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":application-inference-profile/abc123def456", kind: KindApplicationInferenceProfile, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-west-2:" + acct + ":provisioned-model/abc123def456", kind: KindProvisionedModel, partition: "aws", region: "us-west-2", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":custom-model/amazon.titan-text-express-v1:0:8k/abcdef123456", kind: KindCustomModel, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":custom-model-deployment/abcdef123456", kind: KindCustomModelDeployment, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":imported-model/abcdef123456", kind: KindImportedModel, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":prompt/PROMPT1234", kind: KindPrompt, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":prompt/PROMPT1234:3", kind: KindPrompt, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":prompt-router/abcdef123456", kind: KindPromptRouter, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:bedrock:us-east-1:" + acct + ":default-prompt-router/anthropic.claude:1", kind: KindDefaultPromptRouter, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws:sagemaker:us-east-1:" + acct + ":endpoint/my-endpoint-1", kind: KindSageMakerEndpoint, partition: "aws", region: "us-east-1", account: acct},
		{in: "arn:aws-cn:bedrock:cn-northwest-1:" + acct + ":provisioned-model/abc123def456", kind: KindProvisionedModel, partition: "aws-cn", region: "cn-northwest-1", account: acct},
		{in: "arn:aws-us-gov:bedrock:us-gov-east-1:" + acct + ":application-inference-profile/abc123def456", kind: KindApplicationInferenceProfile, partition: "aws-us-gov", region: "us-gov-east-1", account: acct},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseModelID(tt.in)
			if err != nil {
				t.Fatalf("ParseModelID: %v", err)
			}
			canonical := tt.canonical
			if canonical == "" {
				canonical = tt.in
			}
			want := ModelID{Raw: tt.in, Kind: tt.kind, Partition: tt.partition, Region: tt.region, Account: tt.account,
				Scope: tt.scope, Foundation: tt.found, Canonical: canonical, Resource: m.Resource}
			if m != want {
				t.Errorf("got  %+v\nwant %+v", m, want)
			}
			if tt.partition == "" && m.Resource != tt.in {
				t.Errorf("Resource = %q, want the bare id", m.Resource)
			}
			if m.Indirect() != (tt.found == "") {
				t.Errorf("Indirect() = %v", m.Indirect())
			}
		})
	}
}

func TestParseModelIDResource(t *testing.T) {
	m, err := ParseModelID("arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abcdef123456")
	if err != nil {
		t.Fatal(err)
	}
	if m.Resource != "amazon.titan-text-express-v1:0:8k/abcdef123456" {
		t.Errorf("Resource = %q", m.Resource)
	}
}

func TestParseModelIDRejects(t *testing.T) {
	const acct = "123456789012"
	bad := []string{
		"",
		"anthropic",                         // no provider dot
		"Anthropic.claude-v2",               // upper case
		"anthropic.claude v2",               // space
		"anthropic.claude%3Av2",             // percent left in
		"anthropic.claude\x00",              // NUL
		"anthropic.claude-v2\n",             // control
		"anthropic.claude-v2:0:1:2",         // three suffixes
		"anthropic.claude-v2:",              // empty suffix
		"xx.anthropic.claude-v2",            // unknown scope
		"sa.anthropic.claude-v2",            // unknown scope
		"us.anthropic",                      // scope without model
		"us.us.anthropic.claude-v2",         // double scope
		".claude",                           // empty provider
		"anthropic./x",                      // slash
		"abc123def456",                      // bare application profile id: not accepted bare
		strings.Repeat("a", 64) + ".claude", // label too long
		"a." + strings.Repeat("b", 2050),    // too long
		"arn:aws:bedrock:us-east-1:" + acct + ":foundation-model/anthropic.claude-v2",      // account on foundation model
		"arn:aws:bedrock:us-east-1::application-inference-profile/abc123def456",            // missing account
		"arn:aws:bedrock:us-east-1:12345:provisioned-model/abc123def456",                   // short account
		"arn:aws:bedrock:us-east-1:12345678901a:provisioned-model/abc123def456",            // non-digit account
		"arn:aws-iso:bedrock:us-iso-east-1:" + acct + ":provisioned-model/abc123def456",    // unknown partition
		"arn:aws:bedrock:cn-north-1::foundation-model/anthropic.claude-v2",                 // wrong partition for region
		"arn:aws-cn:bedrock:us-east-1::foundation-model/anthropic.claude-v2",               // wrong partition for region
		"arn:aws:bedrock:us-gov-west-1::foundation-model/anthropic.claude-v2",              // wrong partition for region
		"arn:aws:bedrock:US-EAST-1::foundation-model/anthropic.claude-v2",                  // region case
		"arn:aws:bedrock:us-east-01::foundation-model/anthropic.claude-v2",                 // region number
		"arn:aws:bedrock:useast1::foundation-model/anthropic.claude-v2",                    // region syntax
		"arn:aws:bedrock:::foundation-model/anthropic.claude-v2",                           // no region
		"arn:aws:s3:us-east-1:" + acct + ":provisioned-model/abc123def456",                 // unknown service
		"arn:aws:bedrock:us-east-1:" + acct + ":agent/abc123def456",                        // unknown kind
		"arn:aws:bedrock:us-east-1:" + acct + ":provisioned-model/abc123def45",             // short id
		"arn:aws:bedrock:us-east-1:" + acct + ":provisioned-model/ABC123DEF456",            // upper id
		"arn:aws:bedrock:us-east-1:" + acct + ":provisioned-model/abc123def456/x",          // extra segment
		"arn:aws:bedrock:us-east-1:" + acct + ":provisioned-model/",                        // empty id
		"arn:aws:bedrock:us-east-1:" + acct + ":provisioned-model",                         // no id
		"arn:aws:bedrock:us-east-1:" + acct + ":custom-model/abcdef123456",                 // custom model without base
		"arn:aws:bedrock:us-east-1:" + acct + ":custom-model/amazon.titan/../abcdef123456", // dot segment
		"arn:aws:bedrock:us-east-1:" + acct + ":custom-model/amazon.titan//abcdef123456",   // empty segment
		"arn:aws:bedrock:us-east-1:" + acct + ":inference-profile/anthropic.claude-v2",     // profile without scope
		"arn:aws:bedrock:us-east-1:" + acct + ":inference-profile/xx.anthropic.claude-v2",  // profile bad scope
		"arn:aws:bedrock:us-east-1:" + acct + ":prompt/SHORT",                              // prompt id length
		"arn:aws:bedrock:us-east-1:" + acct + ":prompt/PROMPT1234:DRAFT",                   // prompt version
		"arn:aws:bedrock:us-east-1:" + acct + ":prompt-router/a b",                         // router charset
		"arn:aws:bedrock:us-east-1:" + acct + ":default-prompt-router/.x",                  // router start
		"arn:aws:sagemaker:us-east-1:" + acct + ":endpoint/-bad",                           // endpoint name
		"arn:aws:sagemaker:us-east-1:" + acct + ":model/x",                                 // sagemaker kind
		"arn:aws:sagemaker:us-east-1::endpoint/x",                                          // sagemaker no account
		"arn:aws:bedrock:us-east-1",                                                        // short ARN
		"arn:",                                                                             // empty ARN
	}
	for _, in := range bad {
		t.Run(in, func(t *testing.T) {
			m, err := ParseModelID(in)
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Type != TypeValidation || ae.Status != 400 {
				t.Fatalf("error %v is not a ValidationException", err)
			}
			if in != "" && len(in) < 100 && !strings.Contains(ae.Message, strings.Trim(quoteQ(in), `"`)) {
				t.Errorf("message %q does not name the input", ae.Message)
			}
		})
	}
}

func quoteQ(s string) string { return strings.TrimSuffix(strings.TrimPrefix(fmtQ(s), `"`), `"`) }

// Only a prompt without a version runs something its owner can change after
// Warden resolved it.
func TestModelIDRepointable(t *testing.T) {
	const acct = "arn:aws:bedrock:us-east-1:123456789012:"
	cases := []struct {
		id   string
		want bool
	}{
		{acct + "prompt/PROMPT1234", true},
		{acct + "prompt/PROMPT1234:3", false},
		{"arn:aws-cn:bedrock:cn-north-1:123456789012:prompt/abcdefghij", true},
		{acct + "application-inference-profile/abc123def456", false},
		{acct + "prompt-router/my-router", false},
		{acct + "default-prompt-router/anthropic.claude:1", false},
		{acct + "provisioned-model/abc123def456", false},
		{"anthropic.claude-3-5-haiku-20241022-v1:0", false},
		{"us.anthropic.claude-3-5-haiku-20241022-v1:0", false},
	}
	for _, tc := range cases {
		m, err := ParseModelID(tc.id)
		if err != nil {
			t.Fatalf("ParseModelID(%q): %v", tc.id, err)
		}
		if got := m.Repointable(); got != tc.want {
			t.Errorf("%s: Repointable() = %v, want %v", tc.id, got, tc.want)
		}
	}
}
