package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/bedrock"
)

// AppConfig is one application: which workloads it selects and what they may do.
type AppConfig struct {
	Name string `yaml:"name"`
	// Mode is "enforce" (the default) or "dry-run": a dry-run app decides
	// and records, but its denials are forwarded anyway.
	Mode string `yaml:"mode"`
	// AllowWeakIdentity lets workload-editable tags (labels, annotations,
	// resource tags, static sidecar tags) satisfy the app's selectors on
	// platform-set keys, and lets an app select on weak keys alone.
	AllowWeakIdentity bool `yaml:"allow_weak_identity"`
	// RefuseStaleIdentity denies a caller whose identity was served from
	// cache while its source was failing (an IP may have changed hands in
	// the meantime); by default such identities are honoured and flagged.
	RefuseStaleIdentity bool        `yaml:"refuse_stale_identity"`
	Match               MatchConfig `yaml:"match"`
	Allow               AllowConfig `yaml:"allow"`
	Line                int         `yaml:"-"`

	// Limits are the app's own, each at most the global one.
	Limits AppLimitsConfig `yaml:"limits"`

	// Budgets are the app's rate limits and token and cost budgets, held
	// across every replica sharing the budget store.
	Budgets BudgetsConfig `yaml:"budgets,omitempty"`

	// Guards name the guards (top-level guards:) the app's calls go through.
	Guards []string `yaml:"guards"`

	// BedrockGuardrail is an Amazon Bedrock guardrail Warden attaches to
	// every InvokeModel*, Converse* call of the app (nil: none).
	BedrockGuardrail *BedrockGuardrailConfig `yaml:"bedrock_guardrail,omitempty"`
}

// Modes an app can run in.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
)

// MatchConfig selects workloads. Every listed selector must hold; a key may
// appear under several selector kinds.
type MatchConfig struct {
	Tags   map[string]string   `yaml:"tags"`   // tag equals value
	In     map[string][]string `yaml:"in"`     // tag equals one of the values
	Exists []string            `yaml:"exists"` // tag is present, any value
	Glob   map[string]string   `yaml:"glob"`   // tag matches the pattern (* and ?)
}

// Keys returns every tag key the selectors name, sorted and deduplicated.
func (m MatchConfig) Keys() []string {
	set := map[string]bool{}
	for k := range m.Tags {
		set[k] = true
	}
	for k := range m.In {
		set[k] = true
	}
	for _, k := range m.Exists {
		set[k] = true
	}
	for k := range m.Glob {
		set[k] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (m MatchConfig) empty() bool {
	return len(m.Tags) == 0 && len(m.In) == 0 && len(m.Exists) == 0 && len(m.Glob) == 0
}

// AllowConfig is an app's allowlist.
type AllowConfig struct {
	// Models are globs over canonical model ids. Indirect ids are allowed
	// only when every foundation model behind them is.
	Models     []string `yaml:"models"`
	Operations []string `yaml:"operations"`
	// Regions the call may be served in ("us-east-1", "eu-*", "*"); empty
	// means no restriction. A system inference profile's scope is a
	// geography whose every region must be allowed.
	Regions []string `yaml:"regions"`
	// ProfileScopes are the system inference profile scopes allowed (us, eu,
	// apac, jp, au, ca, us-gov, global). When listed, only those scopes are
	// allowed and a listed scope's profiles also match their base model's
	// globs. global is denied unless listed.
	ProfileScopes []string `yaml:"profile_scopes"`
	// AsyncOutputPrefixes are the s3:// prefixes StartAsyncInvoke may write
	// under; StartAsyncInvoke is denied without one.
	AsyncOutputPrefixes []string `yaml:"async_output_prefixes"`
	// UnpinnedModels are globs over the canonical ids of targets whose owner
	// can re-point them after Warden resolved them (today: prompts without a
	// version, which run the mutable DRAFT) that the app accepts anyway.
	// Such ids are denied unless listed here; a listed one is resolved again
	// after models.unpinned_cache_ttl and never served stale. It must still
	// resolve to models allow.models allows. (omitempty: policies without it
	// keep their policy hash.)
	UnpinnedModels []string `yaml:"unpinned_models,omitempty"`

	// The agent runtime's allowlists (docs/policy.md#agents-knowledge-bases-and-flows).
	// Each is empty by default, which allows nothing. (omitempty: policies
	// without them keep their policy hash.)

	// Agents are globs over "AGENT_ID/ALIAS_ID": the agent aliases
	// InvokeAgent and the agent memory operations may name, and inline
	// agents may call as collaborators.
	Agents []string `yaml:"agents,omitempty"`
	// UnpinnedAgents accepts the test alias (TSTALIASID), which runs the
	// agent's mutable DRAFT; it is denied unless listed here too.
	UnpinnedAgents []string `yaml:"unpinned_agents,omitempty"`
	// KnowledgeBases are globs over knowledge base ids (Retrieve, and every
	// knowledge base a body names).
	KnowledgeBases []string `yaml:"knowledge_bases,omitempty"`
	// Flows are globs over "FLOW_ID/ALIAS_ID" (InvokeFlow).
	Flows []string `yaml:"flows,omitempty"`
	// UnpinnedFlows accepts a flow's test alias (TSTALIASID).
	UnpinnedFlows []string `yaml:"unpinned_flows,omitempty"`
	// S3InputPrefixes are the s3:// prefixes an agent-runtime call may make
	// Bedrock read with Warden's credentials (external sources, files).
	S3InputPrefixes []string `yaml:"s3_input_prefixes,omitempty"`
	// Lambdas are globs over the Lambda ARNs an inline agent's action
	// groups and prompt overrides may invoke.
	Lambdas []string `yaml:"lambdas,omitempty"`
	// BuiltinTools are the built-in action group signatures an inline agent
	// may enable (AMAZON.CodeInterpreter, AMAZON.UserInput, ANTHROPIC.Computer, …).
	BuiltinTools []string `yaml:"builtin_tools,omitempty"`
}

// validateApps checks the apps section; errors name the app and its line.
func validateApps(apps []AppConfig) []error {
	var errs []error
	seen := map[string]int{}
	for i := range apps {
		a := &apps[i]
		where := AppWhere(a, i)
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		if a.Name == "" {
			add("name is required")
		} else if j, dup := seen[a.Name]; dup {
			add("name %q already used by apps[%d]", a.Name, j)
		} else {
			seen[a.Name] = i
		}
		switch a.Mode {
		case "", ModeEnforce, ModeDryRun:
		default:
			add("mode: %q is not enforce or dry-run", a.Mode)
		}
		errs = append(errs, validateMatch(a, where)...)
		for _, m := range a.Allow.Models {
			if err := validateGlob(m); err != nil {
				add("allow.models %q: %v", m, err)
			}
		}
		for _, m := range a.Allow.UnpinnedModels {
			if err := validateGlob(m); err != nil {
				add("allow.unpinned_models %q: %v", m, err)
			}
		}
		asyncListed := false
		for _, op := range a.Allow.Operations {
			if !knownOperation(op) && op != "*" {
				add("allow.operations: unknown operation %q", op)
			}
			if op == "StartAsyncInvoke" {
				asyncListed = true
			}
		}
		validateAgentAllow(&a.Allow, add)
		for _, r := range a.Allow.Regions {
			if !bedrock.ValidRegionPattern(r) {
				add("allow.regions: %q is not a region (us-east-1), a region prefix ending in * (eu-*), or *", r)
			}
		}
		for _, s := range a.Allow.ProfileScopes {
			if _, ok := scopeGeography[s]; !ok {
				add("allow.profile_scopes: %q is not a system inference profile scope (%s)", s, strings.Join(profileScopes(), ", "))
			}
		}
		for _, p := range a.Allow.AsyncOutputPrefixes {
			if err := validS3Prefix(p); err != nil {
				add("allow.async_output_prefixes: %q: %v", p, err)
			}
		}
		if a.Limits.MaxOutputTokens < 0 {
			add("limits.max_output_tokens: must be positive (0 or absent: no cap)")
		}
		if a.Limits.MaxPromptChars < 0 {
			add("limits.max_prompt_chars: must be positive (0 or absent: no cap)")
		}
		switch a.Limits.OnExceed {
		case "", LimitReject:
		case LimitClamp:
			if a.Limits.MaxOutputTokens <= 0 {
				add("limits.on_exceed: clamp applies to limits.max_output_tokens, which is not set")
			}
		default:
			add("limits.on_exceed: %q is not reject or clamp", a.Limits.OnExceed)
		}
		for _, e := range validateBudgets(a) {
			add("%s", e)
		}
		if asyncListed && len(a.Allow.AsyncOutputPrefixes) == 0 {
			add("allow.operations lists StartAsyncInvoke but allow.async_output_prefixes is empty, so every StartAsyncInvoke would be denied; list the s3:// prefixes its output may go to")
		}
	}
	return errs
}

func AppWhere(a *AppConfig, i int) string {
	where := fmt.Sprintf("apps[%d]", i)
	if a.Line > 0 {
		where = fmt.Sprintf("line %d: apps[%d]", a.Line, i)
	}
	if a.Name != "" {
		where += fmt.Sprintf(" (%s)", a.Name)
	}
	return where
}

func validateMatch(a *AppConfig, where string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	m := a.Match
	if m.empty() {
		add("match must select at least one tag (match.tags, match.in, match.exists or match.glob); an app matching everything is not allowed")
		return errs
	}
	errs = append(errs, validateSelectors(m, where, "app")...)
	if !a.AllowWeakIdentity {
		keys := m.Keys()
		weak := true
		for _, k := range keys {
			if !identity.IsWeakKey(k) {
				weak = false
			}
		}
		if weak {
			add("selects only on weak tags (%s), which the workload being policed can set itself; select on at least one platform-set tag (%s, %s, ecs.task_role_arn, %s, …) or set allow_weak_identity: true",
				strings.Join(keys, ", "), identity.TagK8sNamespace, identity.TagK8sServiceAccount, identity.TagWardenKeyApp)
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func hasControlOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func isLowerAlnumByte(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// RecordLines remembers where each app starts so validation errors can
// point at the line a security engineer has to edit.
func RecordLines(root *yaml.Node, apps []AppConfig, deny []DenyConfig) {
	if root == nil || len(root.Content) == 0 {
		return
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "apps" && m.Content[i+1].Kind == yaml.SequenceNode {
			for j, n := range m.Content[i+1].Content {
				if j < len(apps) {
					apps[j].Line = n.Line
				}
			}
		}
		if m.Content[i].Value == "deny" && m.Content[i+1].Kind == yaml.SequenceNode {
			for j, n := range m.Content[i+1].Content {
				if j < len(deny) {
					deny[j].Line = n.Line
				}
			}
		}
	}
}
