package authz

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// GuardConfig is one named guard (top-level guards: map): the detectors it
// runs over the text of a call and what it does with their findings. An app
// applies guards by name (apps[].guards). The detectors themselves live in
// package guard; the proxy builds them from this.
type GuardConfig struct {
	PII       *PIIGuardConfig       `yaml:"pii"`
	Words     *WordsGuardConfig     `yaml:"words"`
	Injection *InjectionGuardConfig `yaml:"injection"`
	// Bedrock sends the call's text to an Amazon Bedrock guardrail
	// (ApplyGuardrail) and acts on its verdict.
	Bedrock *BedrockGuardConfig `yaml:"bedrock"`
	// Unscannable says what to do with content Warden cannot read (images,
	// binary documents, S3 locations): block (the default) or allow.
	Unscannable string `yaml:"unscannable"`
	// AppliesTo is input, output or both (the default).
	AppliesTo []string `yaml:"applies_to"`
}

// PIIGuardConfig finds personal data: built-in types named as Bedrock
// Guardrails names them (empty: all of them) and custom RE2 expressions,
// finding type name -> expression.
type PIIGuardConfig struct {
	Types  []string          `yaml:"types"`
	Custom map[string]string `yaml:"custom"`
	Action string            `yaml:"action"`
}

// WordsGuardConfig finds words and phrases (case-insensitive, at word
// boundaries).
type WordsGuardConfig struct {
	List   []string `yaml:"list"`
	Action string   `yaml:"action"`
}

// InjectionGuardConfig runs the prompt-injection heuristic.
type InjectionGuardConfig struct {
	Action string `yaml:"action"`
}

// BedrockGuardConfig is a detector backed by an Amazon Bedrock guardrail
// (created in AWS): Warden calls ApplyGuardrail with the request's text,
// with its own credentials, and a GUARDRAIL_INTERVENED verdict is a
// finding. It only reads, so it works under passthrough too.
type BedrockGuardConfig struct {
	// ID is the guardrail's id or ARN.
	ID string `yaml:"id"`
	// Version is a version number ("1") or DRAFT.
	Version string `yaml:"version"`
	// Timeout bounds the ApplyGuardrail call (default 2s).
	Timeout time.Duration `yaml:"timeout"`
	// OnError is what a failed or timed-out call means: block (the
	// default) or allow.
	OnError string `yaml:"on_error"`
	// Action is block (the default) or record; mask is not supported.
	Action string `yaml:"action"`
}

// DefaultBedrockGuardTimeout is bedrock.timeout's default.
const DefaultBedrockGuardTimeout = 2 * time.Second

// EffectiveAction returns the bedrock detector's action (block when unset).
func (b *BedrockGuardConfig) EffectiveAction() string { return actionOr(b.Action) }

// EffectiveTimeout returns timeout, or its default.
func (b *BedrockGuardConfig) EffectiveTimeout() time.Duration {
	if b.Timeout <= 0 {
		return DefaultBedrockGuardTimeout
	}
	return b.Timeout
}

// BlocksOnError says whether a failed ApplyGuardrail call stops the call.
func (b *BedrockGuardConfig) BlocksOnError() bool { return b.OnError != GuardAllow }

// Guard actions, unscannable settings and directions.
const (
	GuardBlock  = "block"
	GuardMask   = "mask"
	GuardRecord = "record"
	GuardAllow  = "allow" // unscannable: allow

	GuardInput  = "input"
	GuardOutput = "output"
)

// PIITypes are the built-in PII types a guard may name (Bedrock Guardrails'
// names). Package guard holds the detectors; authz cannot import it, so the
// list is kept here too and a proxy test checks the two agree.
var PIITypes = []string{
	"EMAIL", "PHONE", "US_SOCIAL_SECURITY_NUMBER", "CREDIT_DEBIT_CARD_NUMBER",
	"INTERNATIONAL_BANK_ACCOUNT_NUMBER", "US_BANK_ROUTING_NUMBER", "IP_ADDRESS", "MAC_ADDRESS", "URL",
	"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "UK_NATIONAL_INSURANCE_NUMBER",
}

// actionOr returns a, block when none is set.
func actionOr(a string) string {
	if a == "" {
		return GuardBlock
	}
	return a
}

// EffectiveAction returns the PII detector's action (block when unset).
func (p *PIIGuardConfig) EffectiveAction() string { return actionOr(p.Action) }

// EffectiveAction returns the words detector's action (block when unset).
func (w *WordsGuardConfig) EffectiveAction() string { return actionOr(w.Action) }

// EffectiveAction returns the injection detector's action (block when unset).
func (j *InjectionGuardConfig) EffectiveAction() string { return actionOr(j.Action) }

// BlocksUnscannable says whether content Warden cannot read stops the call.
func (g *GuardConfig) BlocksUnscannable() bool { return g.Unscannable != GuardAllow }

// AppliesToInput and AppliesToOutput read applies_to (both when unset).
func (g *GuardConfig) AppliesToInput() bool {
	return len(g.AppliesTo) == 0 || slices.Contains(g.AppliesTo, GuardInput)
}

// AppliesToOutput: see AppliesToInput.
func (g *GuardConfig) AppliesToOutput() bool {
	return len(g.AppliesTo) == 0 || slices.Contains(g.AppliesTo, GuardOutput)
}

// Masks says whether any of the guard's detectors rewrites the body.
func (g *GuardConfig) Masks() bool {
	return (g.PII != nil && g.PII.EffectiveAction() == GuardMask) ||
		(g.Words != nil && g.Words.EffectiveAction() == GuardMask) ||
		(g.Injection != nil && g.Injection.EffectiveAction() == GuardMask)
}

// validateAppRewrites checks the app settings that rewrite requests
// (limits.on_exceed: clamp, bedrock_guardrail): Warden must sign the
// calls, so upstream.signing: passthrough rules them out.
func validateAppRewrites(c *Config) []error {
	var errs []error
	passthrough := c.Upstream.Signing == "passthrough"
	for i := range c.Apps {
		a := &c.Apps[i]
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", policy.AppWhere(a, i), fmt.Sprintf(format, args...)))
		}
		if a.Limits.Clamps() && passthrough {
			add("limits.on_exceed: clamp rewrites the body; passthrough cannot (upstream.signing: passthrough forwards the caller's signature, which covers the body); use reject")
		}
		g := a.BedrockGuardrail
		if g == nil {
			continue
		}
		switch {
		case g.ID == "":
			add("bedrock_guardrail.id is required (a guardrail id or ARN)")
		case !bedrock.ValidGuardrailID(g.ID):
			add("bedrock_guardrail.id: %q is not a guardrail id (lower-case letters and digits) or guardrail ARN", g.ID)
		}
		switch {
		case g.Version == "":
			add("bedrock_guardrail.version is required (a version number or DRAFT)")
		case !bedrock.ValidGuardrailVersion(g.Version):
			add("bedrock_guardrail.version: %q is not a version number (1, 2, …) or DRAFT", g.Version)
		}
		if g.Trace != "" && !slices.Contains(policy.GuardrailTraces, g.Trace) {
			add("bedrock_guardrail.trace: %q is not %s", g.Trace, strings.Join(policy.GuardrailTraces, ", "))
		}
		if passthrough {
			add("bedrock_guardrail: attaching a guardrail rewrites the request; passthrough cannot (upstream.signing: passthrough forwards the caller's signature, which covers headers and body)")
		}
	}
	return errs
}

// validateGuards checks the guards: map and the apps' references to it.
func validateGuards(c *Config) []error {
	var errs []error
	names := make([]string, 0, len(c.Guards))
	for name := range c.Guards {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g := c.Guards[name]
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("guards.%s: %s", name, fmt.Sprintf(format, args...)))
		}
		if strings.TrimSpace(name) == "" {
			add("a guard needs a name")
		}
		checkAction := func(key, a string) {
			switch a {
			case "", GuardBlock, GuardMask, GuardRecord:
			default:
				add("%s.action: %q is not block, mask or record", key, a)
			}
		}
		if g.PII == nil && g.Words == nil && g.Injection == nil && g.Bedrock == nil {
			add("names no detector (pii, words, injection or bedrock)")
		}
		if b := g.Bedrock; b != nil {
			switch b.Action {
			case "", GuardBlock, GuardRecord:
			case GuardMask:
				add("bedrock.action: mask is not supported (Warden cannot tell where in the text the guardrail intervened); use block or record")
			default:
				add("bedrock.action: %q is not block or record", b.Action)
			}
			switch {
			case b.ID == "":
				add("bedrock.id is required (a guardrail id or ARN)")
			case !bedrock.ValidGuardrailID(b.ID):
				add("bedrock.id: %q is not a guardrail id (lower-case letters and digits) or guardrail ARN", b.ID)
			}
			switch {
			case b.Version == "":
				add("bedrock.version is required (a version number or DRAFT)")
			case !bedrock.ValidGuardrailVersion(b.Version):
				add("bedrock.version: %q is not a version number (1, 2, …) or DRAFT", b.Version)
			}
			if b.Timeout < 0 {
				add("bedrock.timeout: %s is negative", b.Timeout)
			}
			switch b.OnError {
			case "", GuardBlock, GuardAllow:
			default:
				add("bedrock.on_error: %q is not block or allow", b.OnError)
			}
		}
		if p := g.PII; p != nil {
			checkAction("pii", p.Action)
			for _, t := range p.Types {
				if !slices.Contains(PIITypes, t) {
					add("pii.types: unknown PII type %q (known: %s)", t, strings.Join(PIITypes, ", "))
				}
			}
			custom := make([]string, 0, len(p.Custom))
			for k := range p.Custom {
				custom = append(custom, k)
			}
			sort.Strings(custom)
			for _, k := range custom {
				switch {
				case strings.TrimSpace(k) == "":
					add("pii.custom: a custom type needs a name")
				case slices.Contains(PIITypes, k):
					add("pii.custom.%s: the name of a built-in type; list it under pii.types instead", k)
				}
				if p.Custom[k] == "" {
					add("pii.custom.%s: empty expression", k)
				} else if _, err := regexp.Compile(p.Custom[k]); err != nil {
					add("pii.custom.%s: invalid RE2 expression: %v", k, err)
				}
			}
		}
		if w := g.Words; w != nil {
			checkAction("words", w.Action)
			if len(w.List) == 0 {
				add("words.list: empty")
			}
			for i, e := range w.List {
				if strings.TrimSpace(e) == "" {
					add("words.list[%d]: empty entry", i)
				}
			}
		}
		if j := g.Injection; j != nil {
			checkAction("injection", j.Action)
		}
		switch g.Unscannable {
		case "", GuardBlock, GuardAllow:
		default:
			add("unscannable: %q is not block or allow", g.Unscannable)
		}
		for _, d := range g.AppliesTo {
			if d != GuardInput && d != GuardOutput {
				add("applies_to: %q is not input or output", d)
			}
		}
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		seen := map[string]bool{}
		for _, name := range a.Guards {
			add := func(format string, args ...any) {
				errs = append(errs, fmt.Errorf("%s: guards: %s", policy.AppWhere(a, i), fmt.Sprintf(format, args...)))
			}
			g, ok := c.Guards[name]
			switch {
			case !ok:
				if len(names) == 0 {
					add("unknown guard %q (the config defines no guards:)", name)
				} else {
					add("unknown guard %q (defined: %s)", name, strings.Join(names, ", "))
				}
			case seen[name]:
				add("guard %q listed twice", name)
			case g.Masks() && c.Upstream.Signing == "passthrough":
				add("guard %q masks: mask rewrites the body; passthrough cannot (upstream.signing: passthrough forwards the caller's signature, which covers the body)", name)
			}
			seen[name] = true
		}
	}
	return append(errs, validateAppRewrites(c)...)
}
