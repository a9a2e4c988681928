package models

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbedrock "github.com/aws/aws-sdk-go-v2/service/bedrock"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagent"
	agenttypes "github.com/aws/aws-sdk-go-v2/service/bedrockagent/types"
	"github.com/aws/smithy-go"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/warden-egress/warden/bedrock"
)

// Defaults for the models section.
const (
	DefaultModelsCacheTTL    = 5 * time.Minute
	DefaultModelsStaleTTL    = time.Hour
	DefaultModelsNegativeTTL = 30 * time.Second
	// DefaultModelsUnpinnedCacheTTL is how long the answer for an id its
	// owner can re-point (a prompt without a version) is used.
	DefaultModelsUnpinnedCacheTTL = 30 * time.Second
	DefaultModelsTimeout          = 3 * time.Second
	DefaultModelsCacheSize        = 10_000
	// MaxModelResolveDepth bounds the control-plane lookups in one chain
	// (prompt → provisioned model → custom model → foundation model is 3).
	MaxModelResolveDepth = 3
	// maxModelLookups bounds the control-plane calls of one resolution
	// (fan-out: a router or prompt naming many indirect targets).
	maxModelLookups = 16
)

// Config configures resolution of indirect model ids (application
// inference profiles, provisioned and custom models and deployments,
// imported models, prompts, prompt routers) through the Bedrock control
// plane, with Warden's own AWS credentials, in the region of each ARN.
type Config struct {
	// ControlPlaneURL overrides the bedrock control-plane endpoint for every
	// region ("" = https://bedrock.REGION.amazonaws.com), e.g. a VPC
	// endpoint. Non-AWS hosts and plain http need Insecure (or loopback).
	ControlPlaneURL string `yaml:"control_plane_url"`
	// AgentURL overrides the bedrock-agent endpoint (GetPrompt); tests only.
	AgentURL string `yaml:"agent_url"`
	// Insecure accepts any http(s) URL above (tests and emulators only):
	// the URL receives Warden's signed requests and decides what an
	// indirect id resolves to.
	Insecure bool `yaml:"insecure"`
	// CacheTTL is how long an answer is used without asking again.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// UnpinnedCacheTTL replaces CacheTTL for an id whose owner can re-point
	// it after Warden resolved it (a prompt without a version runs its
	// mutable DRAFT), or whose resolution passed through one: such an answer
	// is asked for again after this long and is never served stale while
	// the control plane fails (the call is denied instead). The policy
	// refuses such ids unless the app lists them in allow.unpinned_models.
	UnpinnedCacheTTL time.Duration `yaml:"unpinned_cache_ttl"`
	// StaleTTL is how long after it was fetched an answer is still served
	// while the control plane fails (throttling, 5xx, timeouts, network);
	// never for "not found" or "access denied". Equal to CacheTTL disables it.
	StaleTTL time.Duration `yaml:"stale_ttl"`
	// NegativeTTL is how long a failure is remembered before asking again.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// Timeout bounds one resolution, nested lookups and retries included.
	Timeout time.Duration `yaml:"timeout"`
	// CacheSize bounds the number of ids remembered.
	CacheSize int `yaml:"cache_size"`
}

func (c Config) withDefaults() Config {
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultModelsCacheTTL
	}
	if c.StaleTTL == 0 {
		c.StaleTTL = DefaultModelsStaleTTL
	}
	if c.StaleTTL < c.CacheTTL {
		c.StaleTTL = c.CacheTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultModelsNegativeTTL
	}
	if c.UnpinnedCacheTTL == 0 {
		c.UnpinnedCacheTTL = DefaultModelsUnpinnedCacheTTL
	}
	// Never longer than an ordinary answer is kept.
	c.UnpinnedCacheTTL = min(c.UnpinnedCacheTTL, c.CacheTTL)
	if c.Timeout == 0 {
		c.Timeout = DefaultModelsTimeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultModelsCacheSize
	}
	return c
}

// Validate checks the models section; errors name config keys.
func (c Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, d := range map[string]time.Duration{
		"models.cache_ttl": c.CacheTTL, "models.stale_ttl": c.StaleTTL,
		"models.negative_ttl": c.NegativeTTL, "models.timeout": c.Timeout,
		"models.unpinned_cache_ttl": c.UnpinnedCacheTTL,
	} {
		if d < 0 {
			add("%s: must not be negative, got %s", name, d)
		}
	}
	if c.CacheTTL > 0 && c.StaleTTL > 0 && c.StaleTTL < c.CacheTTL {
		add("models.stale_ttl: %s is shorter than models.cache_ttl %s", c.StaleTTL, c.CacheTTL)
	}
	if cache := cmp.Or(c.CacheTTL, DefaultModelsCacheTTL); c.UnpinnedCacheTTL > cache {
		add("models.unpinned_cache_ttl: %s is longer than models.cache_ttl %s; an answer its owner can re-point must not be kept longer than any other", c.UnpinnedCacheTTL, cache)
	}
	if c.CacheSize < 0 {
		add("models.cache_size: must not be negative, got %d", c.CacheSize)
	}
	if err := validateControlPlaneURL(c.ControlPlaneURL, c.Insecure, bedrock.ServiceBedrock); err != nil {
		add("models.control_plane_url: %v", err)
	}
	if err := validateControlPlaneURL(c.AgentURL, c.Insecure, bedrock.ServiceAgent); err != nil {
		add("models.agent_url: %v", err)
	}
	return errs
}

// validateControlPlaneURL accepts "" (the regional endpoint), https URLs on
// AWS host names for the service, and, with insecure or on loopback, any
// http(s) URL: whoever answers decides what an indirect id resolves to.
func validateControlPlaneURL(raw string, insecure bool, service bedrock.Service) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %v", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https", raw)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: must be scheme://host[:port] with no user, path or query", raw)
	}
	if insecure || isLoopbackHost(u.Hostname()) {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%q is plain http: Warden's signed requests would cross the network in clear; use https, a loopback address, or set models.insecure: true (tests only)", raw)
	}
	if !bedrock.IsControlPlaneHost(u.Hostname(), service) {
		return fmt.Errorf("%q is not a %s control-plane host (%s.REGION.amazonaws.com[.cn], *.vpce.amazonaws.com, *.api.aws); set models.insecure: true only for tests", raw, service, service)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Resolution is what an indirect model id stands for.
type Resolution struct {
	// Foundations are the canonical ids of what is finally invoked, sorted
	// and de-duplicated: foundation model ids ("anthropic.claude-…"),
	// system inference profile ids with their scope ("us.anthropic.claude-…",
	// because geography is policy), and imported-model ARNs, which have no
	// foundation model behind them (listed in Imported as well).
	Foundations []string
	// Imported are the imported-model ARNs among Foundations.
	Imported []string
	// Regions are the regions of the foundation-model ARNs the control plane
	// named (an application profile copied from a cross-region profile lists
	// every destination region); bare ids contribute none.
	Regions []string
	// Stale is set when the answer came from the cache, past cache_ttl,
	// because the control plane failed (within stale_ttl).
	Stale bool
	// Unpinned is set when the id, or an id its resolution passed through,
	// can be re-pointed by its owner (bedrock.ModelID.Repointable): the
	// answer is kept for unpinned_cache_ttl only and never served stale.
	Unpinned bool
	// Lookups is the number of control-plane calls the answer took (0 for
	// an answer from the cache).
	Lookups int
}

// ResolveError says why an indirect id could not be resolved. Its message
// is safe to show the caller; Err holds the control plane's own error.
type ResolveError struct {
	Model  string // the id as requested
	Reason string
	// Transient failures (throttling, 5xx, timeouts, network) may be
	// answered from a stale cache entry; definitive ones (not found, access
	// denied, an answer that names no model) never are.
	Transient bool
	Err       error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("model %s could not be resolved: %s", e.Model, e.Reason)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Stats counts resolutions since start.
type Stats struct {
	Hits, Misses, Stale, Failures, Lookups uint64
}

// Resolver resolves indirect model ids to the foundation models
// behind them through the Bedrock control plane, with an expiring LRU
// cache, one in-flight lookup per id (singleflight), negative caching and
// bounded stale serving during control-plane outages. Safe for concurrent use.
type Resolver struct {
	cfg     Config
	aws     aws.Config
	log     *zap.Logger
	cache   *expirable.LRU[string, *modelEntry]
	group   singleflight.Group
	clients *lru.Cache[string, *regionClients]
	now     func() time.Time

	hits, misses, stale, failures, lookups atomic.Uint64
}

type modelEntry struct {
	res     Resolution
	goodAt  time.Time // zero: no good answer yet
	err     *ResolveError
	errAt   time.Time
	hasGood bool
}

type regionClients struct {
	bedrock *awsbedrock.Client
	agent   *bedrockagent.Client
}

// Option adjusts a Resolver built by NewResolver.
type Option func(*Resolver)

// WithClock makes the resolver read the time from now (nil: time.Now), so
// tests can expire its cache without sleeping.
func WithClock(now func() time.Time) Option {
	return func(r *Resolver) {
		if now != nil {
			r.now = now
		}
	}
}

// NewResolver builds a resolver calling the control plane with
// awsCfg (credentials, HTTP client, retryer); the region comes from each
// ARN. It does no I/O until the first Resolve.
func NewResolver(cfg Config, awsCfg aws.Config, log *zap.Logger, opts ...Option) (*Resolver, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	ttl := max(cfg.StaleTTL, cfg.NegativeTTL, cfg.CacheTTL)
	clients, err := lru.New[string, *regionClients](32)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		cfg:     cfg,
		aws:     awsCfg.Copy(),
		log:     log.Named("models"),
		cache:   expirable.NewLRU[string, *modelEntry](cfg.CacheSize, nil, ttl),
		clients: clients,
		now:     time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Stats returns counters for metrics.
func (r *Resolver) Stats() Stats {
	return Stats{Hits: r.hits.Load(), Misses: r.misses.Load(), Stale: r.stale.Load(),
		Failures: r.failures.Load(), Lookups: r.lookups.Load()}
}

// Resolve returns the canonical ids behind m (see Resolution.Foundations).
// An id that cannot be resolved is an error (a *ResolveError): deny it.
// Direct ids (foundation models, system inference profiles) return their
// canonical id without a lookup. The slice may be shared: do not modify it.
func (r *Resolver) Resolve(ctx context.Context, m bedrock.ModelID) (foundations []string, err error) {
	res, err := r.Lookup(ctx, m)
	return res.Foundations, err
}

// Lookup is Resolve with the details: whether the answer is stale, which
// entries are imported models, which regions were named.
func (r *Resolver) Lookup(ctx context.Context, m bedrock.ModelID) (Resolution, error) {
	if !m.Indirect() {
		return Resolution{Foundations: []string{m.Canonical}}, nil
	}
	key := m.Canonical
	now := r.now()
	if e, ok := r.cache.Get(key); ok {
		if e.hasGood && now.Sub(e.goodAt) < r.ttl(e.res) {
			r.hits.Add(1)
			return e.res, nil
		}
		if e.err != nil && now.Sub(e.errAt) < r.cfg.NegativeTTL {
			r.hits.Add(1)
			return r.fallback(e, now)
		}
	}
	r.misses.Add(1)
	ch := r.group.DoChan(key, func() (any, error) { return r.refresh(ctx, key, m) })
	select {
	case <-ctx.Done():
		return Resolution{}, &ResolveError{Model: m.Raw, Reason: "the request ended before the control plane answered", Transient: true, Err: ctx.Err()}
	case out := <-ch:
		if out.Err != nil {
			return Resolution{}, out.Err
		}
		return out.Val.(Resolution), nil
	}
}

// refresh asks the control plane (once per id at a time) and updates the
// cache. It runs detached from the caller's cancellation: other callers
// may be waiting on the same lookup.
func (r *Resolver) refresh(ctx context.Context, key string, m bedrock.ModelID) (Resolution, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	defer cancel()
	acc := &accumulator{seen: map[string]bool{}, visited: map[string]bool{}}
	err := r.walk(ctx, m, 0, acc)
	if err == nil && len(acc.found) == 0 {
		err = definitive("the control plane names no model behind it (a cycle?)")
	}
	now := r.now()
	r.lookups.Add(uint64(acc.lookups))
	if err == nil {
		res := acc.result()
		r.cache.Add(key, &modelEntry{res: Resolution{Foundations: res.Foundations, Imported: res.Imported, Regions: res.Regions, Unpinned: res.Unpinned}, goodAt: now, hasGood: true})
		return res, nil
	}
	var re *ResolveError
	if !errors.As(err, &re) {
		re = &ResolveError{Model: m.Raw, Reason: "internal error", Err: err}
	}
	re.Model = m.Raw
	e := &modelEntry{err: re, errAt: now}
	if prev, ok := r.cache.Peek(key); ok && prev.hasGood {
		e.res, e.goodAt, e.hasGood = prev.res, prev.goodAt, true
	}
	r.cache.Add(key, e)
	r.log.Warn("model resolution failed", zap.String("model", m.Raw), zap.String("reason", re.Reason),
		zap.Bool("transient", re.Transient), zap.Error(re.Err))
	return r.fallback(e, now)
}

// ttl is how long a good answer is used without asking again.
func (r *Resolver) ttl(res Resolution) time.Duration {
	if res.Unpinned {
		return r.cfg.UnpinnedCacheTTL
	}
	return r.cfg.CacheTTL
}

// fallback answers from a failed entry: the last good answer while the
// failure is transient and the answer is within stale_ttl, else the error.
// An unpinned answer is never served stale: its owner may have re-pointed
// it while the control plane could not say so.
func (r *Resolver) fallback(e *modelEntry, now time.Time) (Resolution, error) {
	if e.hasGood && !e.res.Unpinned && e.err.Transient && now.Sub(e.goodAt) < r.cfg.StaleTTL {
		r.stale.Add(1)
		res := e.res
		res.Stale = true
		return res, nil
	}
	r.failures.Add(1)
	return Resolution{}, e.err
}

type accumulator struct {
	visited         map[string]bool // indirect ids already looked up
	seen            map[string]bool
	found, imported []string
	regions         []string
	seenRegion      map[string]bool
	lookups         int
	unpinned        bool // some id on the way can be re-pointed by its owner
}

func (a *accumulator) add(m bedrock.ModelID) {
	if m.Kind == bedrock.KindFoundationModel && m.Region != "" {
		if a.seenRegion == nil {
			a.seenRegion = map[string]bool{}
		}
		if !a.seenRegion[m.Region] {
			a.seenRegion[m.Region] = true
			a.regions = append(a.regions, m.Region)
		}
	}
	if a.seen[m.Canonical] {
		return
	}
	a.seen[m.Canonical] = true
	a.found = append(a.found, m.Canonical)
	if m.Kind == bedrock.KindImportedModel {
		a.imported = append(a.imported, m.Canonical)
	}
}

func (a *accumulator) result() Resolution {
	sort.Strings(a.found)
	sort.Strings(a.imported)
	sort.Strings(a.regions)
	return Resolution{Foundations: a.found, Imported: a.imported, Regions: a.regions, Lookups: a.lookups, Unpinned: a.unpinned}
}

func definitive(format string, args ...any) *ResolveError {
	return &ResolveError{Reason: fmt.Sprintf(format, args...)}
}

// walk resolves m into acc, recursing through what the control plane names.
func (r *Resolver) walk(ctx context.Context, m bedrock.ModelID, depth int, acc *accumulator) error {
	if !m.Indirect() {
		acc.add(m)
		return nil
	}
	if acc.visited[m.Canonical] {
		return nil // its models are in acc already (or it is being resolved: a cycle adds nothing)
	}
	if m.Repointable() {
		acc.unpinned = true
	}
	if depth >= MaxModelResolveDepth {
		return definitive("it nests indirect model ids more than %d deep (at %s)", MaxModelResolveDepth, m.Raw)
	}
	if m.Region == "" {
		return definitive("%s has no region", m.Raw)
	}
	if acc.lookups >= maxModelLookups {
		return definitive("it needs more than %d control-plane lookups", maxModelLookups)
	}
	cl := r.clientsFor(m.Region)
	acc.lookups++
	acc.visited[m.Canonical] = true
	var (
		children []string
		what     = string(m.Kind)
	)
	switch m.Kind {
	case bedrock.KindApplicationInferenceProfile:
		out, err := cl.bedrock.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetInferenceProfile", m.Raw, err)
		}
		for _, t := range out.Models {
			children = append(children, aws.ToString(t.ModelArn))
		}
	case bedrock.KindProvisionedModel:
		out, err := cl.bedrock.GetProvisionedModelThroughput(ctx, &awsbedrock.GetProvisionedModelThroughputInput{ProvisionedModelId: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetProvisionedModelThroughput", m.Raw, err)
		}
		if f, err := bedrock.ParseModelID(aws.ToString(out.FoundationModelArn)); err == nil && f.Kind == bedrock.KindFoundationModel {
			children = append(children, f.Raw)
		} else {
			// No foundation model given: follow the model served and, during
			// an update, the one it is switching to.
			for _, s := range []string{aws.ToString(out.ModelArn), aws.ToString(out.DesiredModelArn)} {
				if s != "" {
					children = append(children, s)
				}
			}
		}
	case bedrock.KindCustomModel:
		out, err := cl.bedrock.GetCustomModel(ctx, &awsbedrock.GetCustomModelInput{ModelIdentifier: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetCustomModel", m.Raw, err)
		}
		if s := aws.ToString(out.BaseModelArn); s != "" {
			children = append(children, s)
		}
	case bedrock.KindCustomModelDeployment:
		out, err := cl.bedrock.GetCustomModelDeployment(ctx, &awsbedrock.GetCustomModelDeploymentInput{CustomModelDeploymentIdentifier: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetCustomModelDeployment", m.Raw, err)
		}
		if s := aws.ToString(out.ModelArn); s != "" {
			children = append(children, s)
		}
	case bedrock.KindImportedModel:
		// An imported model has no foundation model: policy matches its
		// ARN. The lookup confirms it exists and is what the ARN says.
		out, err := cl.bedrock.GetImportedModel(ctx, &awsbedrock.GetImportedModelInput{ModelIdentifier: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetImportedModel", m.Raw, err)
		}
		if got := aws.ToString(out.ModelArn); got != m.Raw {
			return definitive("the control plane answered for %q instead", got)
		}
		acc.add(m)
		return nil
	case bedrock.KindPromptRouter, bedrock.KindDefaultPromptRouter:
		// Any target may serve a call: every one of them, and the
		// fallback, counts.
		out, err := cl.bedrock.GetPromptRouter(ctx, &awsbedrock.GetPromptRouterInput{PromptRouterArn: aws.String(m.Raw)})
		if err != nil {
			return controlPlaneError("GetPromptRouter", m.Raw, err)
		}
		for _, t := range out.Models {
			children = append(children, aws.ToString(t.ModelArn))
		}
		if out.FallbackModel != nil {
			children = append(children, aws.ToString(out.FallbackModel.ModelArn))
		}
	case bedrock.KindPrompt:
		in := &bedrockagent.GetPromptInput{PromptIdentifier: aws.String(m.Raw)}
		if _, ver, ok := strings.Cut(m.Resource, ":"); ok {
			// Without a version the runtime uses the DRAFT, as GetPrompt does.
			in.PromptIdentifier = aws.String(strings.TrimSuffix(m.Raw, ":"+ver))
			in.PromptVersion = aws.String(ver)
		}
		out, err := cl.agent.GetPrompt(ctx, in)
		if err != nil {
			return controlPlaneError("GetPrompt", m.Raw, err)
		}
		// The caller may pick any variant: all of them count.
		for _, v := range out.Variants {
			if id := aws.ToString(v.ModelId); id != "" {
				children = append(children, id)
				continue
			}
			if a, ok := v.GenAiResource.(*agenttypes.PromptGenAiResourceMemberAgent); ok {
				return definitive("prompt variant %q runs on agent %q, whose model Warden cannot resolve", aws.ToString(v.Name), aws.ToString(a.Value.AgentIdentifier))
			}
			return definitive("prompt variant %q names no model", aws.ToString(v.Name))
		}
	default:
		return definitive("Warden cannot resolve a %s to a foundation model", what)
	}
	if len(children) == 0 {
		return definitive("the control plane names no model behind this %s", what)
	}
	for _, s := range children {
		c, err := bedrock.ParseModelID(s)
		if err != nil {
			return definitive("the control plane named an unrecognised model id %q", s)
		}
		if err := r.walk(ctx, c, depth+1, acc); err != nil {
			return err
		}
	}
	return nil
}

// controlPlaneError classifies an SDK error: not found, access denied and
// validation are definitive; everything else (throttling, 5xx, timeouts,
// network) is transient.
func controlPlaneError(op, id string, err error) *ResolveError {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ResourceNotFoundException":
			return &ResolveError{Reason: op + " says it does not exist (ResourceNotFoundException)", Err: err}
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
			return &ResolveError{Reason: "Warden may not read it: " + op + " answered " + ae.ErrorCode(), Err: err}
		case "ValidationException":
			return &ResolveError{Reason: op + " rejected it (ValidationException)", Err: err}
		}
		return &ResolveError{Reason: "the Bedrock control plane is failing: " + op + " answered " + ae.ErrorCode(), Transient: true, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &ResolveError{Reason: "the Bedrock control plane did not answer " + op + " in time", Transient: true, Err: err}
	}
	return &ResolveError{Reason: "the Bedrock control plane is unreachable (" + op + ")", Transient: true, Err: err}
}

func (r *Resolver) clientsFor(region string) *regionClients {
	if c, ok := r.clients.Get(region); ok {
		return c
	}
	c := &regionClients{
		bedrock: awsbedrock.NewFromConfig(r.aws, func(o *awsbedrock.Options) {
			o.Region = region
			if r.cfg.ControlPlaneURL != "" {
				o.BaseEndpoint = aws.String(r.cfg.ControlPlaneURL)
			}
			o.RetryMaxAttempts = 2
		}),
		agent: bedrockagent.NewFromConfig(r.aws, func(o *bedrockagent.Options) {
			o.Region = region
			if r.cfg.AgentURL != "" {
				o.BaseEndpoint = aws.String(r.cfg.AgentURL)
			}
			o.RetryMaxAttempts = 2
		}),
	}
	r.clients.Add(region, c)
	return c
}
