package models_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	. "github.com/warden-egress/warden/authz/models"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
)

const (
	cpKey    = "AKIAWARDENCP00000001"
	cpSecret = "warden-cp-secret"

	haikuID    = "anthropic.claude-3-5-haiku-20241022-v1:0"
	sonnetID   = "anthropic.claude-3-5-sonnet-20240620-v1:0"
	titanID    = "amazon.titan-text-express-v1:0:8k"
	fm         = "arn:aws:bedrock:us-east-1::foundation-model/"
	acctPrefix = "arn:aws:bedrock:us-east-1:123456789012:"

	appProfile    = acctPrefix + "application-inference-profile/abc123def456"
	crossProfile  = acctPrefix + "application-inference-profile/cross1234567"
	euProfile     = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/eu1234567890"
	emptyProfile  = acctPrefix + "application-inference-profile/empty1234567"
	missing       = acctPrefix + "application-inference-profile/nope12345678"
	forbidden     = acctPrefix + "application-inference-profile/forbid123456"
	provFM        = acctPrefix + "provisioned-model/provfm123456"
	provCustom    = acctPrefix + "provisioned-model/provcu123456"
	customModel   = acctPrefix + "custom-model/amazon.titan-text-express-v1:0:8k/cust12345678"
	deployment    = acctPrefix + "custom-model-deployment/depl12345678"
	imported      = acctPrefix + "imported-model/impt12345678"
	router        = acctPrefix + "default-prompt-router/anthropic.claude:1"
	sysHaikuARN   = acctPrefix + "inference-profile/us." + haikuID
	prompt        = acctPrefix + "prompt/PROMPT1234"
	agentPrompt   = acctPrefix + "prompt/AGENT12345"
	deepPrompt    = acctPrefix + "prompt/DEEP123456"
	tooDeepPrompt = acctPrefix + "prompt/TOODEEP123"
	cyclePrompt   = acctPrefix + "prompt/CYCLE12345"
	sagemaker     = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint"
)

func testControlPlane(t *testing.T) *bedrocktest.ControlPlane {
	t.Helper()
	cp := bedrocktest.NewControlPlane(bedrocktest.ControlPlaneConfig{
		Credentials: map[string]string{cpKey: cpSecret},
		InferenceProfiles: map[string]bedrocktest.InferenceProfile{
			appProfile: {Models: []string{fm + haikuID}},
			crossProfile: {Models: []string{fm + haikuID, "arn:aws:bedrock:us-east-2::foundation-model/" + haikuID,
				"arn:aws:bedrock:us-west-2::foundation-model/" + haikuID}},
			euProfile:    {Models: []string{"arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0"}},
			emptyProfile: {},
		},
		ProvisionedModels: map[string]bedrocktest.ProvisionedModel{
			provFM:     {ModelArn: fm + sonnetID, FoundationModelArn: fm + sonnetID},
			provCustom: {ModelArn: customModel}, // no FoundationModelArn: follow the custom model
		},
		CustomModels:           map[string]bedrocktest.CustomModel{customModel: {BaseModelArn: fm + titanID}},
		CustomModelDeployments: map[string]bedrocktest.CustomModelDeployment{deployment: {ModelArn: customModel}},
		ImportedModels:         map[string]bedrocktest.ImportedModel{imported: {}},
		PromptRouters: map[string]bedrocktest.PromptRouter{router: {
			Models: []string{sysHaikuARN, fm + sonnetID}, Fallback: fm + haikuID,
		}},
		Prompts: map[string]bedrocktest.Prompt{
			prompt:        {Variants: []bedrocktest.PromptVariant{{ModelID: sonnetID}}},
			prompt + ":3": {Variants: []bedrocktest.PromptVariant{{ModelID: appProfile}, {ModelID: "us." + haikuID}}},
			prompt + ":5": {Variants: []bedrocktest.PromptVariant{{ModelID: prompt}}}, // a version over the DRAFT
			cyclePrompt:   {Variants: []bedrocktest.PromptVariant{{ModelID: acctPrefix + "prompt/CYCLE12345"}}},
			agentPrompt:   {Variants: []bedrocktest.PromptVariant{{Name: "a", AgentID: "AGENTABCDE"}}},
			deepPrompt:    {Variants: []bedrocktest.PromptVariant{{ModelID: provCustom}}},                       // prompt → provisioned → custom → titan
			tooDeepPrompt: {Variants: []bedrocktest.PromptVariant{{ModelID: acctPrefix + "prompt/DEEP123456"}}}, // one more level
		},
		Forbidden: []string{forbidden},
		Logf:      bedrocktest.TestLogf(t),
	})
	t.Cleanup(cp.Close)
	return cp
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func testResolver(t *testing.T, cp *bedrocktest.ControlPlane, cfg Config) (*Resolver, *fakeClock) {
	t.Helper()
	cfg.ControlPlaneURL, cfg.AgentURL = cp.URL, cp.URL
	r, err := NewResolver(cfg, aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(cpKey, cpSecret, ""),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	SetModelResolverClock(r, clk.now)
	return r, clk
}

func mustModel(t *testing.T, s string) bedrock.ModelID {
	t.Helper()
	m, err := bedrock.ParseModelID(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModelResolverKinds(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{})
	cases := []struct {
		model    string
		want     []string
		imported bool
		regions  []string
		lookups  int
	}{
		{appProfile, []string{haikuID}, false, []string{"us-east-1"}, 1},
		{crossProfile, []string{haikuID}, false, []string{"us-east-1", "us-east-2", "us-west-2"}, 1},
		{euProfile, []string{"amazon.nova-lite-v1:0"}, false, []string{"eu-west-1"}, 1},
		{provFM, []string{sonnetID}, false, []string{"us-east-1"}, 1},
		{provCustom, []string{titanID}, false, []string{"us-east-1"}, 2},
		{customModel, []string{titanID}, false, []string{"us-east-1"}, 1},
		{deployment, []string{titanID}, false, []string{"us-east-1"}, 2},
		{imported, []string{imported}, true, nil, 1},
		// System profiles keep their scope: geography is policy.
		{router, []string{sonnetID, haikuID, "us." + haikuID}, false, []string{"us-east-1"}, 1},
		{prompt, []string{sonnetID}, false, nil, 1},
		{prompt + ":3", []string{haikuID, "us." + haikuID}, false, []string{"us-east-1"}, 2},
		{deepPrompt, []string{titanID}, false, []string{"us-east-1"}, 3},
		// Direct ids need no lookup.
		{"us." + haikuID, []string{"us." + haikuID}, false, nil, 0},
		{fm + haikuID, []string{haikuID}, false, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			before := cp.CallCount("")
			res, err := r.Lookup(context.Background(), mustModel(t, tc.model))
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string(nil), tc.want...)
			if !reflect.DeepEqual(res.Foundations, sortedCopy(want)) {
				t.Errorf("foundations %q, want %q", res.Foundations, sortedCopy(want))
			}
			if (len(res.Imported) > 0) != tc.imported || res.Stale {
				t.Errorf("imported %q stale %v", res.Imported, res.Stale)
			}
			if !reflect.DeepEqual(res.Regions, tc.regions) {
				t.Errorf("regions %q, want %q", res.Regions, tc.regions)
			}
			if got := cp.CallCount("") - before; got != tc.lookups || res.Lookups != tc.lookups {
				t.Errorf("control-plane calls %d (reported %d), want %d", got, res.Lookups, tc.lookups)
			}
			// Resolve is the short form.
			f, err := r.Resolve(context.Background(), mustModel(t, tc.model))
			if err != nil || !reflect.DeepEqual(f, res.Foundations) {
				t.Errorf("Resolve: %q, %v", f, err)
			}
		})
	}
	// Every call was signed for the ARN's region.
	for _, c := range cp.Calls() {
		if !c.SignatureOK || c.Status != 200 {
			t.Errorf("call %+v", c)
		}
		if strings.Contains(c.Identifier, "eu-west-1") != (c.Region == "eu-west-1") {
			t.Errorf("call for %s signed for %s", c.Identifier, c.Region)
		}
	}
	// The versioned prompt was asked for with promptVersion.
	var sawVersion bool
	for _, c := range cp.Calls() {
		if c.Op == bedrocktest.OpGetPrompt && c.Version == "3" && c.Identifier == prompt {
			sawVersion = true
		}
	}
	if !sawVersion {
		t.Error("GetPrompt with promptVersion=3 not seen")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestModelResolverUnresolvable(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{})
	cases := []struct {
		model, want string
		transient   bool
	}{
		{missing, "does not exist", false},
		{forbidden, "Warden may not read it", false},
		{emptyProfile, "names no model", false},
		{agentPrompt, "runs on agent", false},
		{tooDeepPrompt, "more than 3 deep", false},
		{sagemaker, "cannot resolve a sagemaker-endpoint", false},
		{prompt + ":9", "does not exist", false},
		{cyclePrompt, "names no model", false},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			_, err := r.Resolve(context.Background(), mustModel(t, tc.model))
			var re *ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *ResolveError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.model) || re.Transient != tc.transient {
				t.Errorf("error %q (transient %v), want it to name the model and say %q", err, re.Transient, tc.want)
			}
		})
	}
}

func TestModelResolverCacheHit(t *testing.T) {
	cp := testControlPlane(t)
	r, clk := testResolver(t, cp, Config{})
	m := mustModel(t, appProfile)
	for i := 0; i < 5; i++ {
		if _, err := r.Resolve(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if n := cp.CallCount(""); n != 1 {
		t.Fatalf("%d control-plane calls for 5 resolutions, want 1", n)
	}
	clk.add(DefaultModelsCacheTTL + time.Second)
	res, err := r.Lookup(context.Background(), m)
	if err != nil || res.Stale {
		t.Fatalf("after cache_ttl: %+v %v", res, err)
	}
	if n := cp.CallCount(""); n != 2 {
		t.Fatalf("%d control-plane calls after expiry, want 2", n)
	}
	if s := r.Stats(); s.Hits != 4 || s.Misses != 2 || s.Lookups != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestModelResolverSingleflight(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{})
	// Hold the lookup long enough that every caller joins it.
	cp.Inject(bedrocktest.Fault{Op: bedrocktest.OpGetInferenceProfile, Delay: 300 * time.Millisecond})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f, err := r.Resolve(context.Background(), mustModel(t, appProfile))
			if err == nil && (len(f) != 1 || f[0] != haikuID) {
				err = errors.New("wrong answer " + strings.Join(f, ","))
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if c := cp.CallCount(bedrocktest.OpGetInferenceProfile); c != 1 {
		t.Errorf("%d concurrent resolutions made %d control-plane calls, want 1", n, c)
	}
}

// A caller that gives up does not cancel the shared lookup for the others.
func TestModelResolverCallerCancel(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{})
	cp.Inject(bedrocktest.Fault{Op: bedrocktest.OpGetInferenceProfile, Delay: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Resolve(ctx, mustModel(t, appProfile)); err == nil {
		t.Fatal("cancelled caller got an answer")
	}
	if f, err := r.Resolve(context.Background(), mustModel(t, appProfile)); err != nil || f[0] != haikuID {
		t.Fatalf("second caller: %q %v", f, err)
	}
	if c := cp.CallCount(bedrocktest.OpGetInferenceProfile); c != 1 {
		t.Errorf("%d calls, want 1 (the cancelled caller's lookup is shared)", c)
	}
}

func TestModelResolverStale(t *testing.T) {
	cp := testControlPlane(t)
	r, clk := testResolver(t, cp, Config{Timeout: 2 * time.Second})
	m := mustModel(t, appProfile)
	if _, err := r.Resolve(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	cp.SetDown(true)
	clk.add(DefaultModelsCacheTTL + time.Second)
	res, err := r.Lookup(context.Background(), m)
	if err != nil || !res.Stale || res.Foundations[0] != haikuID {
		t.Fatalf("outage with a warm cache: %+v %v, want a stale answer", res, err)
	}
	calls := cp.CallCount("")
	// Within negative_ttl the failure is remembered: no new call, still stale.
	res, err = r.Lookup(context.Background(), m)
	if err != nil || !res.Stale || cp.CallCount("") != calls {
		t.Fatalf("within negative_ttl: %+v %v, calls %d→%d", res, err, calls, cp.CallCount(""))
	}
	// Past stale_ttl the answer is too old to serve.
	clk.add(DefaultModelsStaleTTL)
	_, err = r.Resolve(context.Background(), m)
	var re *ResolveError
	if !errors.As(err, &re) || !re.Transient || !strings.Contains(err.Error(), "control plane is failing") {
		t.Fatalf("past stale_ttl: %v, want a transient ResolveError", err)
	}
	// Recovery: the next lookup after negative_ttl succeeds and is fresh.
	cp.SetDown(false)
	clk.add(DefaultModelsNegativeTTL + time.Second)
	res, err = r.Lookup(context.Background(), m)
	if err != nil || res.Stale {
		t.Fatalf("after recovery: %+v %v", res, err)
	}
	if s := r.Stats(); s.Stale != 2 || s.Failures != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A definitive answer (the profile was deleted) is never covered by a stale
// cache entry.
func TestModelResolverNoStaleOnNotFound(t *testing.T) {
	cp := testControlPlane(t)
	r, clk := testResolver(t, cp, Config{})
	m := mustModel(t, appProfile)
	if _, err := r.Resolve(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	cp.Inject(bedrocktest.Fault{Status: 404, Message: "Inference profile not found."})
	clk.add(DefaultModelsCacheTTL + time.Second)
	if _, err := r.Resolve(context.Background(), m); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("deleted profile: %v, want a not-found error", err)
	}
}

func TestModelResolverNoCacheOutage(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{Timeout: 2 * time.Second})
	cp.Close()
	_, err := r.Resolve(context.Background(), mustModel(t, appProfile))
	var re *ResolveError
	if !errors.As(err, &re) || !re.Transient || !strings.Contains(err.Error(), "could not be resolved") {
		t.Fatalf("cold cache, control plane down: %v", err)
	}
}

func TestModelResolverTimeout(t *testing.T) {
	cp := testControlPlane(t)
	r, _ := testResolver(t, cp, Config{Timeout: 100 * time.Millisecond})
	cp.Inject(bedrocktest.Fault{Delay: 2 * time.Second, Times: 5})
	_, err := r.Resolve(context.Background(), mustModel(t, appProfile))
	var re *ResolveError
	if !errors.As(err, &re) || !re.Transient {
		t.Fatalf("slow control plane: %v", err)
	}
}

func TestModelResolverNegativeCache(t *testing.T) {
	cp := testControlPlane(t)
	r, clk := testResolver(t, cp, Config{})
	m := mustModel(t, missing)
	for i := 0; i < 3; i++ {
		if _, err := r.Resolve(context.Background(), m); err == nil {
			t.Fatal("resolved a missing profile")
		}
	}
	if c := cp.CallCount(""); c != 1 {
		t.Fatalf("%d calls within negative_ttl, want 1", c)
	}
	clk.add(DefaultModelsNegativeTTL + time.Second)
	if _, err := r.Resolve(context.Background(), m); err == nil {
		t.Fatal("resolved a missing profile")
	}
	if c := cp.CallCount(""); c != 2 {
		t.Fatalf("%d calls after negative_ttl, want 2", c)
	}
}

func TestModelsConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{ControlPlaneURL: "https://bedrock.us-east-1.amazonaws.com"}, ""},
		{Config{ControlPlaneURL: "https://vpce-0abc-123.bedrock.us-east-1.vpce.amazonaws.com"}, ""},
		{Config{AgentURL: "https://bedrock-agent.eu-west-1.amazonaws.com"}, ""},
		{Config{ControlPlaneURL: "http://127.0.0.1:9999"}, ""},
		{Config{ControlPlaneURL: "http://10.0.0.1:9999", Insecure: true}, ""},
		{Config{ControlPlaneURL: "http://10.0.0.1:9999"}, "plain http"},
		{Config{ControlPlaneURL: "https://evil.example.com"}, "not a bedrock control-plane host"},
		{Config{AgentURL: "https://bedrock.us-east-1.amazonaws.com"}, "not a bedrock-agent control-plane host"},
		{Config{ControlPlaneURL: "https://bedrock.us-east-1.amazonaws.com/path"}, "no user, path or query"},
		// bedrock.ParseControlPlaneHost is the one host check: a name needs a
		// region of its partition, and the vpce form names the service.
		{Config{ControlPlaneURL: "https://bedrock-fips.us-gov-west-1.amazonaws.com"}, ""},
		{Config{ControlPlaneURL: "https://bedrock.cn-north-1.amazonaws.com.cn"}, ""},
		{Config{AgentURL: "https://bedrock-agent.eu-west-1.api.aws"}, ""},
		{Config{ControlPlaneURL: "https://bedrock.not-a-region.amazonaws.com"}, "not a bedrock control-plane host"},
		{Config{ControlPlaneURL: "https://bedrock.evil.example.api.aws"}, "not a bedrock control-plane host"},
		{Config{ControlPlaneURL: "https://bedrock.us-east-1.amazonaws.com.cn"}, "not a bedrock control-plane host"},
		{Config{ControlPlaneURL: "https://vpce-0abc-123.vpce.amazonaws.com"}, "not a bedrock control-plane host"},
		{Config{ControlPlaneURL: "https://vpce-0abc-123.s3.us-east-1.vpce.amazonaws.com"}, "not a bedrock control-plane host"},
		{Config{CacheTTL: -time.Second}, "models.cache_ttl"},
		{Config{CacheTTL: time.Hour, StaleTTL: time.Minute}, "models.stale_ttl"},
		{Config{CacheSize: -1}, "models.cache_size"},
		{Config{UnpinnedCacheTTL: -time.Second}, "models.unpinned_cache_ttl"},
		{Config{CacheTTL: time.Minute, UnpinnedCacheTTL: 2 * time.Minute}, "models.unpinned_cache_ttl: 2m0s is longer than models.cache_ttl 1m0s"},
		{Config{UnpinnedCacheTTL: 10 * time.Minute}, "longer than models.cache_ttl 5m0s"},
		{Config{UnpinnedCacheTTL: 5 * time.Second}, ""},
		{Config{CacheTTL: 10 * time.Second}, ""}, // the 30s default follows cache_ttl down
	}
	for _, tc := range cases {
		errs := ValidateModelsConfig(tc.cfg)
		got := errors.Join(errs...)
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%+v: %v", tc.cfg, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.cfg, got, tc.want)
		}
	}
}

const minimalConfig = `
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
  - name: a
    match: {tags: {app: a}}
    allow_weak_identity: true
    allow: {models: ["*"], operations: [Converse]}
`

func TestModelsConfigYAML(t *testing.T) {
	cfg, err := config.ParseConfig([]byte(minimalConfig + `
models:
  control_plane_url: http://127.0.0.1:9999
  agent_url: http://127.0.0.1:9998
  cache_ttl: 2m
  stale_ttl: 30m
  negative_ttl: 10s
  timeout: 1500ms
  unpinned_cache_ttl: 15s
`))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Models
	if m.ControlPlaneURL != "http://127.0.0.1:9999" || m.CacheTTL != 2*time.Minute || m.StaleTTL != 30*time.Minute ||
		m.NegativeTTL != 10*time.Second || m.Timeout != 1500*time.Millisecond || m.UnpinnedCacheTTL != 15*time.Second {
		t.Errorf("parsed %+v", m)
	}
	d := ModelsConfigDefaults(Config{})
	if d.CacheTTL != 5*time.Minute || d.StaleTTL != time.Hour || d.NegativeTTL != 30*time.Second || d.Timeout != 3*time.Second ||
		d.UnpinnedCacheTTL != 30*time.Second {
		t.Errorf("defaults %+v", d)
	}
	if d := ModelsConfigDefaults(Config{CacheTTL: 10 * time.Second}); d.UnpinnedCacheTTL != 10*time.Second {
		t.Errorf("unpinned_cache_ttl %s with cache_ttl 10s, want 10s", d.UnpinnedCacheTTL)
	}
	if _, err := config.ParseConfig([]byte(minimalConfig + "models: {control_plane_url: \"http://10.1.2.3\"}\n")); err == nil ||
		!strings.Contains(err.Error(), "models.control_plane_url") {
		t.Errorf("non-loopback http accepted: %v", err)
	}
}

// An id its owner can re-point (a prompt without a version, or a resolution
// passing through one) is asked for again after unpinned_cache_ttl and is
// never served stale; a numbered version keeps cache_ttl and stale serving.
func TestModelResolverUnpinned(t *testing.T) {
	cp := testControlPlane(t)
	r, clk := testResolver(t, cp, Config{Timeout: 2 * time.Second})
	ctx := context.Background()
	draft, version, nested := mustModel(t, prompt), mustModel(t, prompt+":3"), mustModel(t, prompt+":5")
	lookup := func(m bedrock.ModelID) Resolution {
		t.Helper()
		res, err := r.Lookup(ctx, m)
		if err != nil {
			t.Fatalf("%s: %v", m.Raw, err)
		}
		return res
	}
	getPrompt := func() int { return cp.CallCount(bedrocktest.OpGetPrompt) }

	if res := lookup(draft); !res.Unpinned || !reflect.DeepEqual(res.Foundations, []string{sonnetID}) {
		t.Fatalf("draft: %+v", res)
	}
	if res := lookup(version); res.Unpinned {
		t.Fatalf("version marked unpinned: %+v", res)
	}
	if res := lookup(nested); !res.Unpinned || !reflect.DeepEqual(res.Foundations, []string{sonnetID}) {
		t.Fatalf("a version over a DRAFT: %+v, want unpinned", res)
	}
	calls := getPrompt()
	// Within the short TTL: no lookup.
	clk.add(DefaultModelsUnpinnedCacheTTL - time.Second)
	lookup(draft)
	lookup(version)
	if getPrompt() != calls {
		t.Fatalf("within unpinned_cache_ttl: %d GetPrompt calls, want %d", getPrompt(), calls)
	}
	// The owner re-points the DRAFT; past the short TTL it is asked again,
	// and the version is not.
	cp.UpdatePrompt(prompt, bedrocktest.Prompt{Variants: []bedrocktest.PromptVariant{{ModelID: haikuID}}})
	clk.add(2 * time.Second)
	if res := lookup(draft); !reflect.DeepEqual(res.Foundations, []string{haikuID}) {
		t.Errorf("after the re-point and the short TTL: %q, want the new model", res.Foundations)
	}
	lookup(version)
	if got := getPrompt(); got != calls+1 {
		t.Errorf("%d GetPrompt calls past the short TTL, want %d (the DRAFT only)", got, calls+1)
	}

	// An outage past the short TTL: the DRAFT is an error, not stale; the
	// version, past cache_ttl, is served stale.
	cp.SetDown(true)
	clk.add(DefaultModelsCacheTTL)
	var re *ResolveError
	if res, err := r.Lookup(ctx, draft); !errors.As(err, &re) || !re.Transient {
		t.Fatalf("draft during an outage: %+v %v, want a transient ResolveError", res, err)
	}
	if res, err := r.Lookup(ctx, draft); err == nil {
		t.Fatalf("draft within negative_ttl of the failure: %+v, want the error again", res)
	}
	if res := lookup(version); !res.Stale {
		t.Errorf("version during an outage: %+v, want stale", res)
	}
	if res, err := r.Lookup(ctx, nested); err == nil {
		t.Errorf("a version over a DRAFT during an outage: %+v, want an error", res)
	}
}
