package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/warden-egress/warden/bedrock"
)

// Operations returns the operations an app can be allowed: the runtime's,
// the OpenAI-compatible and Anthropic ones, then the agent runtime's.
// allow.operations "*" stands for all but the named-only ones (namedOnly).
func Operations() []bedrock.Operation { return policyOperations[:] }

// policyOperations are the operations an app can be allowed. The
// bidirectional stream is absent on purpose: Warden cannot inspect its
// per-frame-signed body yet, so it is denied whatever the policy says.
var policyOperations = [...]bedrock.Operation{
	bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream,
	bedrock.OpConverse, bedrock.OpConverseStream, bedrock.OpCountTokens,
	bedrock.OpApplyGuardrail, bedrock.OpInvokeGuardrailChecks,
	bedrock.OpStartAsyncInvoke, bedrock.OpGetAsyncInvoke, bedrock.OpListAsyncInvokes,
	bedrock.OpOpenAIChatCompletions, bedrock.OpOpenAIResponses,
	bedrock.OpMantleChatCompletions, bedrock.OpMantleResponses, bedrock.OpMantleMessages,
	bedrock.OpAnthropicAgents, bedrock.OpAnthropicSessions, bedrock.OpAnthropicMemoryStores,
	// bedrock-agent-runtime: never included by "*".
	bedrock.OpInvokeAgent, bedrock.OpInvokeInlineAgent, bedrock.OpRetrieve, bedrock.OpRetrieveAndGenerate,
	bedrock.OpRetrieveAndGenerateStream, bedrock.OpInvokeFlow, bedrock.OpRerank, bedrock.OpGenerateQuery,
	bedrock.OpOptimizePrompt, bedrock.OpCreateSession, bedrock.OpGetSession, bedrock.OpUpdateSession,
	bedrock.OpEndSession, bedrock.OpDeleteSession, bedrock.OpListSessions, bedrock.OpCreateInvocation,
	bedrock.OpListInvocations, bedrock.OpPutInvocationStep, bedrock.OpGetInvocationStep,
	bedrock.OpListInvocationSteps, bedrock.OpGetAgentMemory, bedrock.OpDeleteAgentMemory,
	bedrock.OpTagResource, bedrock.OpUntagResource, bedrock.OpListTagsForResource,
}

// opSet is a set of policy operations, one bit each.
type opSet uint64

// A compile-time check that every policy operation has a bit.
var _ = [64 - len(policyOperations)]struct{}{}

// namedOnly reports the operations "*" leaves out, which an app gets only by
// naming them (so a policy written before they existed does not gain them):
// Anthropic's Bedrock-only APIs (agents, sessions, memory stores) carry state
// and content Warden does not inspect as prompts, and the agent runtime's
// operations run agents and read knowledge bases and S3 with Warden's
// credentials.
func namedOnly(op bedrock.Operation) bool {
	switch op {
	case bedrock.OpAnthropicAgents, bedrock.OpAnthropicSessions, bedrock.OpAnthropicMemoryStores:
		return true
	}
	return op.AgentRuntime()
}

func knownOperation(name string) bool {
	return opBit(bedrock.Operation(name)) != 0
}

// opBit gives each policy operation one bit of a set.
func opBit(op bedrock.Operation) opSet {
	for i, o := range policyOperations {
		if o == op {
			return 1 << i
		}
	}
	return 0
}

// starOps is the set allow.operations "*" stands for.
func starOps() opSet {
	var b opSet
	for _, o := range policyOperations {
		if !namedOnly(o) {
			b |= opBit(o)
		}
	}
	return b
}

// Decision is the policy's answer for one call.
type Decision struct {
	Allow bool
	// DryRun is set when the deciding app runs in dry-run mode: the proxy
	// forwards the call even if Allow is false, and records the denial it
	// would have made.
	DryRun bool
	App    string // "" when no app matched
	Rule   string // which part of the policy decided, e.g. "apps[0].allow.models"
	Reason string // a sentence safe to show the caller
	// MaxBodyBytes is the deciding app's own body limit (limits.max_body_bytes
	// of the app), enforced by the proxy once the app is known; 0 means only
	// the global limit applies.
	MaxBodyBytes int64
}

// NoPolicy is the decision when no valid policy is loaded (a Warden whose
// bundle has not arrived, or whose first policy failed to compile): every
// call is denied, failing closed.
func NoPolicy() Decision {
	return Decision{Rule: "policy", Reason: "warden: no valid policy is loaded"}
}

// Call is what the policy looks at. Decide does no I/O: everything it needs
// is resolved by the caller first.
type Call struct {
	Op    bedrock.Operation
	Model *bedrock.ModelID // nil for operations without a model
	// Foundations are the foundation model ids behind an indirect model id
	// (application inference profile, provisioned or custom model, prompt,
	// prompt router …), resolved through the Bedrock control plane by the
	// caller; Resolved says the resolution was done (an indirect id that was
	// not resolved is denied).
	// Foundations are canonical ids: foundation model ids, system inference
	// profile ids (their scope is policy) and imported-model ARNs (which
	// have no foundation model and match as themselves).
	Foundations []string
	Resolved    bool
	// ResolveReason is why the resolution failed (not found, access
	// denied, the control plane failing): a denial for want of it ends
	// with it.
	ResolveReason string
	// Regions are the regions of the foundation-model ARNs the resolution
	// named (an application profile copied from a cross-region profile
	// routes to each); every one must be in allow.regions.
	Regions []string
	// S3OutputURI is StartAsyncInvoke's outputDataConfig.s3OutputDataConfig.s3Uri.
	S3OutputURI string
	// Agent is what an agent-runtime call names (nil for runtime calls).
	Agent *AgentCall
}

// Policy is an immutable, compiled set of apps. Decide is pure and lock-free.
//
// Overlap rule: the first app in file order whose selectors all hold for
// the caller decides the call. An index on one equality (or in) selector
// per app narrows the candidates; it never changes which app wins.
type Policy struct {
	apps       []app
	anchors    []anchor // one per distinct anchor key
	unanchored []int32  // apps without an equality or in selector, in file order

	deny   []denyRule // top-level deny rules: any that applies beats every allow
	dryRun bool       // top-level mode: dry-run (every decision is forwarded)
	region string     // upstream region: where a call on a bare model id is served
}

type anchor struct {
	key    string
	values map[string][]int32 // tag value → apps selecting it, in file order
}

type selKind uint8

const (
	selEq selKind = iota
	selIn
	selGlob
	selExists
)

func (k selKind) String() string {
	return [...]string{"tags", "in", "glob", "exists"}[k]
}

type selector struct {
	kind   selKind
	key    string
	value  string   // selEq: the value; selGlob: the pattern
	values []string // selIn
	// strongKey: the key names platform-set data, so unless the app allows
	// weak identity only a Strong tag satisfies it.
	strongKey bool
}

type app struct {
	name      string
	index     int
	line      int
	dryRun    bool
	allowWeak bool
	noStale   bool // refuse_stale_identity
	sels      []selector
	models    []string
	unpinned  []string // allow.unpinned_models
	ops       opSet
	regions   []string
	scopes    []string
	prefixes  []string // normalised to end in '/'
	maxBody   int64    // limits.max_body_bytes; 0 = the global limit
	agents    agentAllow

	// Rules, precomputed so the allow path does not format strings.
	rule, ruleOps string
}

// WithRegion returns the policy with the region Warden actually forwards to,
// which may come from AWS_REGION rather than upstream.region: deny rules on
// regions judge bare model ids by it.
func (p *Policy) WithRegion(region string) *Policy {
	q := *p
	q.region = region
	return &q
}

// Config is the policy part of the configuration file: the apps, the
// top-level deny rules and mode, and the two settings of other sections the
// policy checks against.
type Config struct {
	Apps []AppConfig
	Deny []DenyConfig
	Mode string
	// MaxBodyBytes is limits.max_body_bytes (0: DefaultMaxBodyBytes); an
	// app may lower it, never raise it.
	MaxBodyBytes int64
	// Region is upstream.region, where calls with a bare model id are served.
	Region string
}

// DefaultMaxBodyBytes is Bedrock's own InvokeModel body limit.
const DefaultMaxBodyBytes = 25_000_000

// Validate checks the apps, deny rules and mode; errors name config keys.
func (c *Config) Validate() []error {
	return append(validateApps(c.Apps), validatePolicyGlobals(c)...)
}

// New validates and compiles a policy: its apps, top-level deny rules and
// mode.
func New(cfg Config) (*Policy, error) {
	errs := validatePolicyGlobals(&cfg)
	p, err := NewPolicy(cfg.Apps)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.dryRun = cfg.Mode == ModeDryRun
	p.region = cfg.Region
	for i := range cfg.Deny {
		p.deny = append(p.deny, compileDeny(&cfg.Deny[i], i))
	}
	return p, nil
}

// NewPolicy validates and compiles the apps of a config (without the
// top-level deny rules and mode: see New).
func NewPolicy(apps []AppConfig) (*Policy, error) {
	if errs := validateApps(apps); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Policy{apps: make([]app, len(apps))}
	for i := range apps {
		p.apps[i] = compileApp(&apps[i], i)
	}
	p.buildIndex()
	return p, nil
}

func compileApp(a *AppConfig, i int) app {
	c := app{
		name: a.Name, index: i, line: a.Line,
		dryRun: a.Mode == ModeDryRun, allowWeak: a.AllowWeakIdentity, noStale: a.RefuseStaleIdentity, maxBody: a.Limits.MaxBodyBytes,
		models: a.Allow.Models, unpinned: a.Allow.UnpinnedModels, regions: a.Allow.Regions, scopes: a.Allow.ProfileScopes,
		rule: fmt.Sprintf("apps[%d]", i), ruleOps: fmt.Sprintf("apps[%d].allow.operations", i),
	}
	for _, op := range a.Allow.Operations {
		if op == "*" {
			c.ops |= starOps()
			continue
		}
		c.ops |= opBit(bedrock.Operation(op))
	}
	c.agents = compileAgentAllow(&a.Allow)
	for _, pfx := range a.Allow.AsyncOutputPrefixes {
		c.prefixes = append(c.prefixes, normaliseS3Prefix(pfx))
	}
	add := func(s selector) {
		s.strongKey = !identity.IsWeakKey(s.key)
		c.sels = append(c.sels, s)
	}
	// Cheap selectors first: equality, then in, glob, exists.
	for _, k := range sortedKeys(a.Match.Tags) {
		add(selector{kind: selEq, key: k, value: a.Match.Tags[k]})
	}
	for _, k := range sortedKeys(a.Match.In) {
		add(selector{kind: selIn, key: k, values: a.Match.In[k]})
	}
	for _, k := range sortedKeys(a.Match.Glob) {
		add(selector{kind: selGlob, key: k, value: a.Match.Glob[k]})
	}
	exists := append([]string(nil), a.Match.Exists...)
	sort.Strings(exists)
	for j, k := range exists {
		if j > 0 && exists[j-1] == k {
			continue
		}
		add(selector{kind: selExists, key: k})
	}
	return c
}

// buildIndex anchors every app on one equality or in selector, preferring
// the key most apps select on so a decision does few lookups.
func (p *Policy) buildIndex() {
	freq := map[string]int{}
	for i := range p.apps {
		for _, s := range p.apps[i].sels {
			if s.kind == selEq || s.kind == selIn {
				freq[s.key]++
			}
		}
	}
	byKey := map[string]*anchor{}
	for i := range p.apps {
		a := &p.apps[i]
		best := -1
		for j, s := range a.sels {
			if s.kind != selEq && s.kind != selIn {
				continue
			}
			if best < 0 || freq[s.key] > freq[a.sels[best].key] ||
				freq[s.key] == freq[a.sels[best].key] && s.kind == selEq && a.sels[best].kind == selIn {
				best = j
			}
		}
		if best < 0 {
			p.unanchored = append(p.unanchored, int32(i))
			continue
		}
		s := a.sels[best]
		an := byKey[s.key]
		if an == nil {
			an = &anchor{key: s.key, values: map[string][]int32{}}
			byKey[s.key] = an
		}
		vals := s.values
		if s.kind == selEq {
			vals = []string{s.value}
		}
		for _, v := range vals {
			if l := an.values[v]; len(l) == 0 || l[len(l)-1] != int32(i) {
				an.values[v] = append(l, int32(i))
			}
		}
	}
	for _, k := range sortedKeys(byKey) {
		p.anchors = append(p.anchors, *byKey[k])
	}
}

// Apps returns the app names in file order.
func (p *Policy) Apps() []string {
	out := make([]string, len(p.apps))
	for i := range p.apps {
		out[i] = p.apps[i].name
	}
	return out
}

// Match returns the app selecting id and its index: the first app, in file
// order, all of whose selectors hold. ("", -1) when none does.
func (p *Policy) Match(id identity.Identity) (string, int) {
	if i := p.match(id); i >= 0 {
		return p.apps[i].name, i
	}
	return "", -1
}

func (p *Policy) match(id identity.Identity) int {
	best := int32(len(p.apps))
	for k := range p.anchors {
		an := &p.anchors[k]
		t, ok := id.Tags[an.key]
		if !ok {
			continue
		}
		best = p.firstSelecting(an.values[t.Value], id, best)
	}
	best = p.firstSelecting(p.unanchored, id, best)
	if int(best) == len(p.apps) {
		return -1
	}
	return int(best)
}

// firstSelecting returns the first app in list (sorted) below best that
// selects id, or best.
func (p *Policy) firstSelecting(list []int32, id identity.Identity, best int32) int32 {
	for _, i := range list {
		if i >= best {
			break
		}
		if p.apps[i].selects(id) {
			return i
		}
	}
	return best
}

func (a *app) selects(id identity.Identity) bool {
	for i := range a.sels {
		if a.sels[i].check(id, a.allowWeak) != selOK {
			return false
		}
	}
	return true
}

type selResult uint8

const (
	selOK selResult = iota
	selMissing
	selWeak
	selMismatch
)

func (s *selector) check(id identity.Identity, allowWeak bool) selResult {
	t, ok := id.Tags[s.key]
	if !ok {
		return selMissing
	}
	if s.strongKey && !allowWeak && !t.Strong {
		return selWeak
	}
	switch s.kind {
	case selEq:
		if t.Value != s.value {
			return selMismatch
		}
	case selIn:
		for _, v := range s.values {
			if t.Value == v {
				return selOK
			}
		}
		return selMismatch
	case selGlob:
		if !Glob(s.value, t.Value) {
			return selMismatch
		}
	}
	return selOK
}

// Decide answers whether id may make call. Default deny.
func (p *Policy) Decide(id identity.Identity, call Call) Decision {
	if call.Op == bedrock.OpInvokeModelWithBidirectionalStream {
		return Decision{Rule: "unsupported-operation", Reason: fmt.Sprintf(
			"warden: operation %s on model %s is not supported by Warden yet (its per-frame signed body cannot be inspected)", call.Op, modelName(&call))}
	}
	i := p.match(id)
	if r := p.firstDeny(id, &call); r != nil {
		app := ""
		if i >= 0 {
			app = p.apps[i].name
		}
		d := r.decision(&call, app)
		d.DryRun = p.dryRun // deny rules hold even for an app in dry-run
		return d
	}
	if i < 0 {
		return Decision{Rule: "default-deny", DryRun: p.dryRun, Reason: fmt.Sprintf(
			"warden: no app matches this workload for operation %s on model %s", call.Op, modelName(&call))}
	}
	a := &p.apps[i]
	if a.noStale && id.Stale {
		return Decision{App: a.name, Rule: a.rule + ".refuse_stale_identity", DryRun: a.dryRun || p.dryRun, MaxBodyBytes: a.maxBody,
			Reason: fmt.Sprintf("warden: app %s refuses identities served from cache while their source is failing (operation %s, model %s)", a.name, call.Op, modelName(&call))}
	}
	d := a.decide(&call)
	d.App, d.DryRun, d.MaxBodyBytes = a.name, a.dryRun || p.dryRun, a.maxBody
	if !d.Allow && d.Rule == "model-resolution" && call.ResolveReason != "" {
		d.Reason += ": " + call.ResolveReason
	}
	if !d.Allow && d.Rule == "model-resolution" && len(p.deny) > 0 {
		// Deny rules hold even for an app in dry-run, and with the model
		// behind an indirect id unknown they cannot be checked: only a
		// global dry-run forwards such a call.
		d.DryRun = p.dryRun
	}
	return d
}

func modelName(call *Call) string {
	if call.Model == nil {
		return "-"
	}
	return call.Model.Raw
}

func (a *app) decide(call *Call) Decision {
	if a.ops&opBit(call.Op) == 0 {
		hint := ""
		if call.Op.AgentRuntime() {
			hint = ` (agent-runtime operations are allowed only by name; "*" does not include them)`
		}
		return Decision{Rule: a.ruleOps, Reason: fmt.Sprintf(
			"warden: app %s may not call operation %s (model %s): operation not in allow.operations%s", a.name, call.Op, modelName(call), hint)}
	}
	if call.Model != nil {
		if v := a.checkModel(call.Model, call); v.field != "" {
			return a.deny(call, v)
		}
	}
	if call.Op.AgentRuntime() {
		if call.Agent == nil {
			return a.deny(call, deny("agent-request", "the agent-runtime request was not read"))
		}
		if v := a.checkAgent(call.Agent); v.field != "" {
			return a.deny(call, v)
		}
	}
	if call.Op == bedrock.OpStartAsyncInvoke {
		if v := a.checkAsyncOutput(call.S3OutputURI); v.field != "" {
			return a.deny(call, v)
		}
	}
	return Decision{Allow: true, Rule: a.rule, Reason: "allowed"}
}

func (a *app) deny(call *Call, v verdict) Decision {
	rule := v.field // model-resolution is not a rule of the app's
	if strings.HasPrefix(rule, "allow.") {
		rule = a.rule + "." + rule
	}
	if call.Agent != nil {
		return Decision{Rule: rule, Reason: fmt.Sprintf(
			"warden: app %s may not call operation %s: %s", a.name, call.Op, v.why)}
	}
	return Decision{Rule: rule, Reason: fmt.Sprintf(
		"warden: app %s may not call operation %s on model %s: %s", a.name, call.Op, modelName(call), v.why)}
}

func validateGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty pattern")
	}
	if strings.ContainsAny(g, "[]{}\\") {
		return fmt.Errorf("only * and ? are supported in patterns")
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character in pattern")
		}
	}
	return nil
}

// Glob matches s against a pattern where * is any run of characters
// (including ':' and '/', which canonical ids contain) and ? is one character.
func Glob(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice, no recursion.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
