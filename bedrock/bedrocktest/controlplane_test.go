package bedrocktest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagent"
	atypes "github.com/aws/aws-sdk-go-v2/service/bedrockagent/types"
	"github.com/aws/smithy-go"
)

const (
	cpAcct       = "123456789012"
	cpProfile    = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	cpSysProfile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
	cpHaikuARN   = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
	cpHaikuARN2  = "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
	cpProv       = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/prov12345678"
	cpCustom     = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/cust12345678"
	cpTitanARN   = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1:0:8k"
	cpDeploy     = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/depl12345678"
	cpImported   = "arn:aws:bedrock:us-east-1:123456789012:imported-model/impt12345678"
	cpRouter     = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
	cpPrompt     = "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234"
	cpEUProfile  = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/eu1234567890"
	cpForbidden  = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/forbidden1234"
)

func newControlPlane(t *testing.T) *ControlPlane {
	t.Helper()
	cp := NewControlPlane(ControlPlaneConfig{
		Credentials: map[string]string{testAKID: testSecret},
		InferenceProfiles: map[string]InferenceProfile{
			cpProfile:    {Name: "chatbot", Models: []string{cpHaikuARN}},
			cpSysProfile: {Models: []string{cpHaikuARN, cpHaikuARN2}},
			cpEUProfile:  {Models: []string{"arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0"}},
		},
		ProvisionedModels:      map[string]ProvisionedModel{cpProv: {ModelArn: cpCustom, FoundationModelArn: cpTitanARN}},
		CustomModels:           map[string]CustomModel{cpCustom: {Name: "my-titan", BaseModelArn: cpTitanARN}},
		CustomModelDeployments: map[string]CustomModelDeployment{cpDeploy: {ModelArn: cpCustom}},
		ImportedModels:         map[string]ImportedModel{cpImported: {Name: "my-llama"}},
		PromptRouters: map[string]PromptRouter{cpRouter: {
			Models:   []string{cpSysProfile, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"},
			Fallback: cpSysProfile,
		}},
		Prompts: map[string]Prompt{
			cpPrompt:        {Name: "summarise", Variants: []PromptVariant{{Name: "v1", ModelID: "anthropic.claude-3-5-haiku-20241022-v1:0"}}},
			cpPrompt + ":2": {Name: "summarise", Variants: []PromptVariant{{ModelID: cpProfile}, {AgentID: "AGENT12345"}}},
		},
		Forbidden: []string{cpForbidden},
		Logf:      TestLogf(t),
	})
	t.Cleanup(cp.Close)
	return cp
}

func cpClients(cp *ControlPlane, region, akid, secret string) (*bedrock.Client, *bedrockagent.Client) {
	creds := credentials.NewStaticCredentialsProvider(akid, secret, "")
	b := bedrock.New(bedrock.Options{Region: region, BaseEndpoint: aws.String(cp.URL), Credentials: creds, RetryMaxAttempts: 1})
	a := bedrockagent.New(bedrockagent.Options{Region: region, BaseEndpoint: aws.String(cp.URL), Credentials: creds, RetryMaxAttempts: 1})
	return b, a
}

func TestControlPlaneSDKShapes(t *testing.T) {
	cp := newControlPlane(t)
	b, a := cpClients(cp, "us-east-1", testAKID, testSecret)
	ctx := context.Background()

	ip, err := b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpProfile)})
	if err != nil {
		t.Fatal(err)
	}
	if ip.Type != btypes.InferenceProfileTypeApplication || ip.Status != btypes.InferenceProfileStatusActive ||
		len(ip.Models) != 1 || aws.ToString(ip.Models[0].ModelArn) != cpHaikuARN ||
		aws.ToString(ip.InferenceProfileId) != "abc123def456" || aws.ToString(ip.InferenceProfileName) != "chatbot" || ip.CreatedAt == nil {
		t.Errorf("GetInferenceProfile: %+v", ip)
	}
	// By short id, as AWS accepts too.
	ip, err = b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String("us.anthropic.claude-3-5-haiku-20241022-v1:0")})
	if err != nil {
		t.Fatal(err)
	}
	if ip.Type != btypes.InferenceProfileTypeSystemDefined || len(ip.Models) != 2 {
		t.Errorf("system profile: %+v", ip)
	}

	pm, err := b.GetProvisionedModelThroughput(ctx, &bedrock.GetProvisionedModelThroughputInput{ProvisionedModelId: aws.String(cpProv)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(pm.ModelArn) != cpCustom || aws.ToString(pm.FoundationModelArn) != cpTitanARN || pm.Status != btypes.ProvisionedModelStatusInService ||
		aws.ToInt32(pm.ModelUnits) != 1 || pm.CommitmentExpirationTime == nil {
		t.Errorf("GetProvisionedModelThroughput: %+v", pm)
	}

	cm, err := b.GetCustomModel(ctx, &bedrock.GetCustomModelInput{ModelIdentifier: aws.String(cpCustom)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cm.BaseModelArn) != cpTitanARN || cm.ModelStatus != btypes.ModelStatusActive || aws.ToString(cm.ModelName) != "my-titan" ||
		cm.TrainingDataConfig == nil || cm.CustomizationType != btypes.CustomizationTypeFineTuning {
		t.Errorf("GetCustomModel: %+v", cm)
	}
	if _, err := b.GetCustomModel(ctx, &bedrock.GetCustomModelInput{ModelIdentifier: aws.String("my-titan")}); err != nil {
		t.Errorf("GetCustomModel by name: %v", err)
	}

	dep, err := b.GetCustomModelDeployment(ctx, &bedrock.GetCustomModelDeploymentInput{CustomModelDeploymentIdentifier: aws.String(cpDeploy)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(dep.ModelArn) != cpCustom || dep.Status != btypes.CustomModelDeploymentStatusActive {
		t.Errorf("GetCustomModelDeployment: %+v", dep)
	}

	im, err := b.GetImportedModel(ctx, &bedrock.GetImportedModelInput{ModelIdentifier: aws.String(cpImported)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(im.ModelArn) != cpImported || aws.ToString(im.ModelArchitecture) != "llama3" || im.ModelDataSource == nil {
		t.Errorf("GetImportedModel: %+v", im)
	}

	pr, err := b.GetPromptRouter(ctx, &bedrock.GetPromptRouterInput{PromptRouterArn: aws.String(cpRouter)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Models) != 2 || pr.FallbackModel == nil || aws.ToString(pr.FallbackModel.ModelArn) != cpSysProfile ||
		pr.Type != btypes.PromptRouterTypeDefault || pr.Status != btypes.PromptRouterStatusAvailable || pr.RoutingCriteria == nil {
		t.Errorf("GetPromptRouter: %+v", pr)
	}

	p, err := a.GetPrompt(ctx, &bedrockagent.GetPromptInput{PromptIdentifier: aws.String(cpPrompt)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(p.Version) != "DRAFT" || len(p.Variants) != 1 || aws.ToString(p.Variants[0].ModelId) != "anthropic.claude-3-5-haiku-20241022-v1:0" ||
		aws.ToString(p.DefaultVariant) != "v1" || aws.ToString(p.Id) != "PROMPT1234" {
		t.Errorf("GetPrompt DRAFT: %+v", p)
	}
	if _, ok := p.Variants[0].TemplateConfiguration.(*atypes.PromptTemplateConfigurationMemberText); !ok {
		t.Errorf("template configuration %T", p.Variants[0].TemplateConfiguration)
	}
	p, err = a.GetPrompt(ctx, &bedrockagent.GetPromptInput{PromptIdentifier: aws.String("PROMPT1234"), PromptVersion: aws.String("2")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(p.Version) != "2" || aws.ToString(p.Arn) != cpPrompt+":2" || len(p.Variants) != 2 || aws.ToString(p.Variants[0].ModelId) != cpProfile {
		t.Errorf("GetPrompt v2: %+v", p)
	}
	agent, ok := p.Variants[1].GenAiResource.(*atypes.PromptGenAiResourceMemberAgent)
	if !ok || aws.ToString(agent.Value.AgentIdentifier) != "AGENT12345" || p.Variants[1].ModelId != nil {
		t.Errorf("agent variant: %+v", p.Variants[1])
	}

	calls := cp.Calls()
	if len(calls) != 10 {
		t.Fatalf("recorded %d calls, want 10", len(calls))
	}
	for _, c := range calls {
		if !c.SignatureOK || c.Region != "us-east-1" || c.AccessKeyID != testAKID || c.Status != http.StatusOK {
			t.Errorf("call %+v", c)
		}
	}
	if c := calls[len(calls)-1]; c.Op != OpGetPrompt || c.Version != "2" || c.Identifier != "PROMPT1234" {
		t.Errorf("last call %+v", c)
	}
	if cp.CallCount(OpGetPrompt) != 2 || cp.CallCount("") != 10 {
		t.Errorf("CallCount: %d %d", cp.CallCount(OpGetPrompt), cp.CallCount(""))
	}
}

func apiErr(t *testing.T, err error) smithy.APIError {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an API error", err, err)
	}
	return ae
}

func TestControlPlaneErrors(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	b, a := cpClients(cp, "us-east-1", testAKID, testSecret)

	_, err := b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(
		"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/nope12345678")})
	var nf *btypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("unknown profile: %v, want ResourceNotFoundException", err)
	}
	_, err = a.GetPrompt(ctx, &bedrockagent.GetPromptInput{PromptIdentifier: aws.String(cpPrompt), PromptVersion: aws.String("7")})
	var anf *atypes.ResourceNotFoundException
	if !errors.As(err, &anf) {
		t.Errorf("unknown prompt version: %v, want ResourceNotFoundException", err)
	}
	_, err = b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpForbidden)})
	var ad *btypes.AccessDeniedException
	if !errors.As(err, &ad) {
		t.Errorf("forbidden: %v, want AccessDeniedException", err)
	}

	// Wrong secret and unknown key are refused before anything else.
	bad, _ := cpClients(cp, "us-east-1", testAKID, "wrong")
	_, err = bad.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpProfile)})
	if ae := apiErr(t, err); ae.ErrorCode() != "InvalidSignatureException" {
		t.Errorf("wrong secret: %v", err)
	}
	unknown, _ := cpClients(cp, "us-east-1", "AKIDUNKNOWN", testSecret)
	_, err = unknown.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpProfile)})
	if ae := apiErr(t, err); ae.ErrorCode() != "UnrecognizedClientException" {
		t.Errorf("unknown key: %v", err)
	}

	// A client built for the wrong region is caught; the right one works.
	_, err = b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpEUProfile)})
	if ae := apiErr(t, err); ae.ErrorCode() != "ValidationException" {
		t.Errorf("cross-region: %v", err)
	}
	eu, _ := cpClients(cp, "eu-west-1", testAKID, testSecret)
	if _, err := eu.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpEUProfile)}); err != nil {
		t.Errorf("eu-west-1 client: %v", err)
	}
}

func TestControlPlaneFaults(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	b, _ := cpClients(cp, "us-east-1", testAKID, testSecret)
	get := func() error {
		_, err := b.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpProfile)})
		return err
	}

	cp.Inject(Fault{Op: OpGetInferenceProfile, Status: 500})
	var ise *btypes.InternalServerException
	if err := get(); !errors.As(err, &ise) {
		t.Errorf("500: %v", err)
	}
	cp.Inject(Fault{Op: OpGetPromptRouter, Status: 429}) // other operation: not consumed
	if err := get(); err != nil {
		t.Errorf("after fault: %v", err)
	}
	cp.Inject(Fault{Status: 429})
	var thr *btypes.ThrottlingException
	if err := get(); !errors.As(err, &thr) {
		t.Errorf("429: %v", err)
	}

	cp.SetDown(true)
	// GetInferenceProfile does not model ServiceUnavailableException: the
	// SDK reports a generic API error with the code.
	if err := get(); apiErr(t, err).ErrorCode() != "ServiceUnavailableException" {
		t.Errorf("down: %v", err)
	}
	cp.SetDown(false)

	cp.Reset()
	cp.Inject(Fault{Delay: 2 * time.Second})
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.GetInferenceProfile(tctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(cpProfile)}); err == nil {
		t.Error("delay: no timeout")
	}
	cp.Inject(Fault{ResetAfterEvents: -1})
	if err := get(); err == nil {
		t.Error("reset: no error")
	}
	if err := get(); err != nil {
		t.Errorf("after reset: %v", err)
	}

	cp.Close()
	if err := get(); err == nil {
		t.Error("closed: no error")
	}
}

// cpRoute parses what clients send: it must never panic, and an identifier
// escaped the way the SDK escapes labels must come back unchanged.
func FuzzControlPlaneRoute(f *testing.F) {
	f.Add("/inference-profiles/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456", cpProfile)
	f.Add("/prompts/PROMPT1234/", "PROMPT1234")
	f.Add("/model-customization/custom-model-deployments/x", "x/y")
	f.Add("/prompt-routers/%zz", "a b")
	f.Fuzz(func(t *testing.T, path, id string) {
		_, _, _ = cpRoute(http.MethodGet, path)
		if id == "" {
			return
		}
		for _, p := range []string{"/inference-profiles/%s", "/prompts/%s/", "/model-customization/custom-model-deployments/%s"} {
			// url.PathEscape escapes '/' inside a segment, as the SDK does.
			op, got, ok := cpRoute(http.MethodGet, strings.Replace(p, "%s", url.PathEscape(id), 1))
			if !ok || op == "" || got != id {
				t.Fatalf("%s with %q: op %q id %q ok %v", p, id, op, got, ok)
			}
		}
	})
}
