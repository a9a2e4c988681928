package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/warden-egress/warden/bedrock"
)

// DenyConfig is a top-level deny rule. It applies to a call when every
// condition it lists holds: its match selectors select the caller (any
// workload when match is empty), the operation is listed, one of the
// models the call may reach matches a glob, one of the regions it may be
// served in matches. A matching deny rule beats any app's allow.
//
// Deny selectors accept tags of any strength (denying on a weak tag can
// only hurt the workload that sets it, but a workload can also drop a weak
// tag to escape the rule: deny on platform-set keys).
type DenyConfig struct {
	Name       string      `yaml:"name"` // optional; shown in the rule and reason
	Match      MatchConfig `yaml:"match"`
	Models     []string    `yaml:"models"`     // globs over canonical ids (see denyModels)
	Operations []string    `yaml:"operations"` // operation names or "*"
	Regions    []string    `yaml:"regions"`    // region patterns, as allow.regions
	Line       int         `yaml:"-"`
}

// AppLimitsConfig are an app's own limits, each at most the global one.
type AppLimitsConfig struct {
	// MaxBodyBytes caps the app's request bodies; 0 means the global
	// limits.max_body_bytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxOutputTokens caps the output-token limit a request asks for
	// (maxTokens, max_tokens, max_gen_len, maxTokenCount, …); 0 means no cap.
	// A request above it is rejected, or clamped (on_exceed: clamp).
	MaxOutputTokens int64 `yaml:"max_output_tokens,omitempty"`
	// MaxPromptChars caps the characters of text a request carries (the
	// text guards read: messages, system, tool specs and results, …); 0
	// means no cap. A request above it is rejected.
	MaxPromptChars int64 `yaml:"max_prompt_chars,omitempty"`
	// OnExceed is what max_output_tokens does to a request above it:
	// reject (the default) or clamp (rewrite the value down to the cap).
	OnExceed string `yaml:"on_exceed,omitempty"`
}

// What limits.on_exceed may say.
const (
	LimitReject = "reject"
	LimitClamp  = "clamp"
)

// Clamps says whether max_output_tokens rewrites requests above it.
func (l AppLimitsConfig) Clamps() bool { return l.MaxOutputTokens > 0 && l.OnExceed == LimitClamp }

func validateDeny(rules []DenyConfig) []error {
	var errs []error
	for i := range rules {
		r := &rules[i]
		where := fmt.Sprintf("deny[%d]", i)
		if r.Line > 0 {
			where = fmt.Sprintf("line %d: deny[%d]", r.Line, i)
		}
		if r.Name != "" {
			where += fmt.Sprintf(" (%s)", r.Name)
		}
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		if r.Match.empty() && len(r.Models) == 0 && len(r.Operations) == 0 && len(r.Regions) == 0 {
			add("a deny rule must list at least one of match, models, operations or regions (an empty rule would deny every call)")
		}
		errs = append(errs, validateSelectors(r.Match, where, "rule")...)
		for _, m := range r.Models {
			if err := validateGlob(m); err != nil {
				add("models %q: %v", m, err)
			}
		}
		for _, op := range r.Operations {
			if !knownOperation(op) && op != "*" {
				add("operations: unknown operation %q", op)
			}
		}
		for _, rg := range r.Regions {
			if !bedrock.ValidRegionPattern(rg) {
				add("regions: %q is not a region (us-east-1), a region prefix ending in * (eu-*), or *", rg)
			}
		}
	}
	return errs
}

// validateSelectors checks selector syntax (not the weak-identity rule,
// which is about allowing).
func validateSelectors(m MatchConfig, where, who string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	check := func(field, k string) {
		if k == "" || hasControlOrSpace(k) {
			add("match.%s: %q is not a tag key", field, k)
		}
	}
	for _, k := range sortedKeys(m.Tags) {
		check("tags", k)
	}
	for _, k := range sortedKeys(m.In) {
		check("in", k)
		if len(m.In[k]) == 0 {
			add("match.in.%s: the list is empty, so the %s could never match", k, who)
		}
	}
	for _, k := range m.Exists {
		check("exists", k)
	}
	for _, k := range sortedKeys(m.Glob) {
		check("glob", k)
		if err := validateGlob(m.Glob[k]); err != nil {
			add("match.glob.%s %q: %v", k, m.Glob[k], err)
		}
	}
	return errs
}

// validatePolicyGlobals checks the top-level policy keys and the per-app
// limits against the global ones.
func validatePolicyGlobals(c *Config) []error {
	var errs []error
	switch c.Mode {
	case "", ModeEnforce, ModeDryRun:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not enforce or dry-run", c.Mode))
	}
	errs = append(errs, validateDeny(c.Deny)...)
	global := c.MaxBodyBytes
	if global == 0 {
		global = DefaultMaxBodyBytes
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		switch n := a.Limits.MaxBodyBytes; {
		case n < 0:
			errs = append(errs, fmt.Errorf("%s: limits.max_body_bytes: must be positive", AppWhere(a, i)))
		case n > global:
			errs = append(errs, fmt.Errorf("%s: limits.max_body_bytes: %d is above the global limits.max_body_bytes (%d); an app's limit can only be lower", AppWhere(a, i), n, global))
		}
	}
	return errs
}

type denyRule struct {
	name    string
	rule    string // "deny[0]"
	sels    []selector
	ops     opSet // 0 = any operation
	models  []string
	regions []string
}

func compileDeny(r *DenyConfig, i int) denyRule {
	d := denyRule{name: r.Name, rule: fmt.Sprintf("deny[%d]", i), models: r.Models, regions: r.Regions}
	for _, op := range r.Operations {
		if op == "*" {
			d.ops = 0
			break
		}
		d.ops |= opBit(bedrock.Operation(op))
	}
	m := r.Match
	for _, k := range sortedKeys(m.Tags) {
		d.sels = append(d.sels, selector{kind: selEq, key: k, value: m.Tags[k]})
	}
	for _, k := range sortedKeys(m.In) {
		d.sels = append(d.sels, selector{kind: selIn, key: k, values: m.In[k]})
	}
	for _, k := range sortedKeys(m.Glob) {
		d.sels = append(d.sels, selector{kind: selGlob, key: k, value: m.Glob[k]})
	}
	exists := append([]string(nil), m.Exists...)
	sort.Strings(exists)
	for _, k := range exists {
		d.sels = append(d.sels, selector{kind: selExists, key: k})
	}
	return d
}

// firstDeny returns the first deny rule that applies to the call, or nil.
func (p *Policy) firstDeny(id identity.Identity, call *Call) *denyRule {
	for i := range p.deny {
		if r := &p.deny[i]; r.applies(id, call, p.region) {
			return r
		}
	}
	return nil
}

func (r *denyRule) applies(id identity.Identity, call *Call, upstreamRegion string) bool {
	for i := range r.sels {
		if r.sels[i].check(id, true) != selOK {
			return false
		}
	}
	if r.ops != 0 && r.ops&opBit(call.Op) == 0 {
		return false
	}
	if ac := call.Agent; ac != nil && len(ac.Models) > 0 && (len(r.models) > 0 || len(r.regions) > 0) {
		// An agent-runtime body may name several models: the rule applies
		// when it applies to any one of them.
		for i := range ac.Models {
			m := &ac.Models[i]
			if m.ID == nil {
				continue // not a model id: the app's check denies it
			}
			sub := Call{Op: call.Op, Model: m.ID, Foundations: m.Foundations, Regions: m.Regions}
			if r.appliesToModel(&sub, upstreamRegion) {
				return true
			}
		}
		return false
	}
	return r.appliesToModel(call, upstreamRegion)
}

// appliesToModel checks a deny rule's models and regions against the call.
func (r *denyRule) appliesToModel(call *Call, upstreamRegion string) bool {
	var buf [8]string // the candidates fit on the stack: a deny check allocates nothing
	if len(r.models) > 0 && !anyGlob(r.models, denyModels(call, buf[:0])) {
		return false
	}
	if len(r.regions) > 0 && !regionsOverlap(r.regions, denyRegions(call, upstreamRegion, buf[:0])) {
		return false
	}
	return true
}

// denyModels are the names a deny rule's model globs are matched against:
// the call's canonical id, the foundation model behind a system inference
// profile, and every foundation model an indirect id resolved to (and
// theirs). A deny on "anthropic.claude-3-opus*" thus also stops
// "us.anthropic.claude-3-opus…" and an application profile copied from it.
func denyModels(call *Call, out []string) []string {
	if call.Model == nil {
		return out
	}
	out = append(out, call.Model.Canonical)
	if f := call.Model.Foundation; f != "" {
		out = append(out, f)
	}
	for _, f := range call.Foundations {
		out = append(out, f)
		if fm, err := bedrock.ParseModelID(f); err == nil && fm.Foundation != "" {
			out = append(out, fm.Foundation)
		}
	}
	return out
}

// denyRegions are the region patterns the call may be served in: the model
// ARN's region, the regions an indirect id resolved to, a system inference
// profile's geography, or else Warden's upstream region.
func denyRegions(call *Call, upstreamRegion string, out []string) []string {
	if m := call.Model; m != nil {
		if m.Region != "" {
			out = append(out, m.Region)
		}
		if m.Kind == bedrock.KindInferenceProfile && m.Scope != "" {
			out = append(out, scopeGeography[m.Scope]...)
		}
	}
	out = append(out, call.Regions...)
	if len(out) == 0 && upstreamRegion != "" {
		out = append(out, upstreamRegion)
	}
	return out
}

func anyGlob(patterns, names []string) bool {
	for _, n := range names {
		for _, g := range patterns {
			if Glob(g, n) {
				return true
			}
		}
	}
	return false
}

// regionsOverlap: some region named by a deny pattern may serve the call.
func regionsOverlap(deny, call []string) bool {
	for _, d := range deny {
		for _, c := range call {
			if regionPatternCovers(d, c) || regionPatternCovers(c, d) {
				return true
			}
		}
	}
	return false
}

func (r *denyRule) decision(call *Call, app string) Decision {
	label := r.rule
	if r.name != "" {
		label += " (" + r.name + ")"
	}
	who := "this workload"
	if app != "" {
		who = "app " + app
	}
	return Decision{Rule: r.rule, App: app, Reason: fmt.Sprintf(
		"warden: %s may not call operation %s on model %s: denied by policy rule %s, which overrides any allow", who, call.Op, modelName(call), label)}
}

// GlobalWarnings: deny rules a workload can escape by editing its own tags,
// and a global dry-run that forwards everything.
func GlobalWarnings(cfg *Config) []string {
	var out []string
	if cfg.Mode == ModeDryRun {
		out = append(out, "mode: dry-run: every call the policy would deny is forwarded and only recorded, including calls from workloads no app selects")
	}
	for i := range cfg.Deny {
		keys := cfg.Deny[i].Match.Keys()
		if len(keys) == 0 {
			continue
		}
		weak := true
		for _, k := range keys {
			if !identity.IsWeakKey(k) {
				weak = false
			}
		}
		if weak {
			out = append(out, fmt.Sprintf("deny[%d]: selects only on weak tags (%s), which the workload can change or remove to escape the rule; select on a platform-set tag",
				i, strings.Join(keys, ", ")))
		}
	}
	return out
}
