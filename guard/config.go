package guard

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// Config is one named guard (the config file's top-level guards: map): the
// detectors it runs over the text of a call and what it does with their
// findings. An app applies guards by name (apps[].guards). Compile builds
// the detectors (package detect) from it.
type Config struct {
	PII       *PIIConfig       `yaml:"pii"`
	Words     *WordsConfig     `yaml:"words"`
	Injection *InjectionConfig `yaml:"injection"`
	// Bedrock sends the call's text to an Amazon Bedrock guardrail
	// (ApplyGuardrail) and acts on its verdict.
	Bedrock *BedrockConfig `yaml:"bedrock"`
	// Unscannable says what to do with content Warden cannot read (images,
	// binary documents, S3 locations): block (the default) or allow.
	Unscannable string `yaml:"unscannable"`
	// AppliesTo is input, output or both (the default).
	AppliesTo []string `yaml:"applies_to"`
	// MaxHoldBytes bounds the streamed answer text the guard holds back
	// for a value it cannot bound itself (custom expressions, URLs, the
	// injection heuristic); 0 means DefaultMaxHoldBytes.
	MaxHoldBytes int `yaml:"max_hold_bytes,omitempty"`
}

// Bounds of max_hold_bytes.
const (
	MinMaxHoldBytes = 64
	MaxMaxHoldBytes = 64 << 10
)

// EffectiveMaxHoldBytes returns max_hold_bytes, or its default.
func (g *Config) EffectiveMaxHoldBytes() int {
	if g.MaxHoldBytes == 0 {
		return DefaultMaxHoldBytes
	}
	return g.MaxHoldBytes
}

// PIIConfig finds personal data: built-in types named as Bedrock
// Guardrails names them (empty: all of them) and custom RE2 expressions,
// finding type name -> expression.
type PIIConfig struct {
	Types  []string          `yaml:"types"`
	Custom map[string]string `yaml:"custom"`
	Action string            `yaml:"action"`
}

// WordsConfig finds words and phrases (case-insensitive, at word
// boundaries).
type WordsConfig struct {
	List   []string `yaml:"list"`
	Action string   `yaml:"action"`
}

// InjectionConfig runs the prompt-injection heuristic.
type InjectionConfig struct {
	Action string `yaml:"action"`
}

// BedrockConfig is a detector backed by an Amazon Bedrock guardrail
// (created in AWS): Warden calls ApplyGuardrail with the request's text,
// with its own credentials, and a GUARDRAIL_INTERVENED verdict is a
// finding. It only reads, so it works under passthrough too.
type BedrockConfig struct {
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

// DefaultBedrockTimeout is bedrock.timeout's default.
const DefaultBedrockTimeout = 2 * time.Second

// EffectiveAction returns the bedrock detector's action (block when unset).
func (b *BedrockConfig) EffectiveAction() string { return actionOr(b.Action) }

// EffectiveTimeout returns timeout, or its default.
func (b *BedrockConfig) EffectiveTimeout() time.Duration {
	if b.Timeout <= 0 {
		return DefaultBedrockTimeout
	}
	return b.Timeout
}

// BlocksOnError says whether a failed ApplyGuardrail call stops the call.
func (b *BedrockConfig) BlocksOnError() bool { return b.OnError != Allow }

// Guard actions, unscannable settings and directions (applies_to).
const (
	Block  = "block"
	Mask   = "mask"
	Record = "record"
	Allow  = "allow" // unscannable: allow; also a finding's action when nothing was done

	Input  = "input"
	Output = "output"
)

// PIITypes returns the built-in PII types a guard may name (Bedrock
// Guardrails' names), in a fixed order: the detectors' own list.
func PIITypes() []string { return detect.PIITypes() }

// actionOr returns a, block when none is set.
func actionOr(a string) string {
	if a == "" {
		return Block
	}
	return a
}

// EffectiveAction returns the PII detector's action (block when unset).
func (p *PIIConfig) EffectiveAction() string { return actionOr(p.Action) }

// EffectiveAction returns the words detector's action (block when unset).
func (w *WordsConfig) EffectiveAction() string { return actionOr(w.Action) }

// EffectiveAction returns the injection detector's action (block when unset).
func (j *InjectionConfig) EffectiveAction() string { return actionOr(j.Action) }

// BlocksUnscannable says whether content Warden cannot read stops the call.
func (g *Config) BlocksUnscannable() bool { return g.Unscannable != Allow }

// AppliesToInput and AppliesToOutput read applies_to (both when unset).
func (g *Config) AppliesToInput() bool {
	return len(g.AppliesTo) == 0 || slices.Contains(g.AppliesTo, Input)
}

// AppliesToOutput: see AppliesToInput.
func (g *Config) AppliesToOutput() bool {
	return len(g.AppliesTo) == 0 || slices.Contains(g.AppliesTo, Output)
}

// detectorSection is one detector's section of a guard: its key and, when
// the guard sets it, its effective action.
type detectorSection struct {
	key    string
	set    bool
	action string
}

// detectorSections lists every detector section of a guard, in file order:
// the one list Masks and Validate's "names no detector" read, so a new
// detector is added here once (TestDetectorSectionsComplete checks every
// detector field of Config is listed).
func (g *Config) detectorSections() []detectorSection {
	var out []detectorSection
	add := func(key string, set bool, action func() string) {
		d := detectorSection{key: key, set: set}
		if set {
			d.action = action()
		}
		out = append(out, d)
	}
	add("pii", g.PII != nil, func() string { return g.PII.EffectiveAction() })
	add("words", g.Words != nil, func() string { return g.Words.EffectiveAction() })
	add("injection", g.Injection != nil, func() string { return g.Injection.EffectiveAction() })
	add("bedrock", g.Bedrock != nil, func() string { return g.Bedrock.EffectiveAction() })
	return out
}

// Masks says whether any of the guard's detectors rewrites the body.
func (g *Config) Masks() bool {
	return slices.ContainsFunc(g.detectorSections(), func(d detectorSection) bool { return d.set && d.action == Mask })
}

// Validate checks one guard's settings. Each problem names its key relative
// to the guard ("pii.action: …"); the config loader prefixes the guard's
// place in the file (guards.NAME).
func (g *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	checkAction := func(key, a string) {
		switch a {
		case "", Block, Mask, Record:
		default:
			add("%s.action: %q is not block, mask or record", key, a)
		}
	}
	var keys []string
	named := false
	for _, d := range g.detectorSections() {
		keys = append(keys, d.key)
		named = named || d.set
	}
	if !named {
		add("names no detector (%s or %s)", strings.Join(keys[:len(keys)-1], ", "), keys[len(keys)-1])
	}
	if b := g.Bedrock; b != nil {
		switch b.Action {
		case "", Block, Record:
		case Mask:
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
		case "", Block, Allow:
		default:
			add("bedrock.on_error: %q is not block or allow", b.OnError)
		}
	}
	if p := g.PII; p != nil {
		checkAction("pii", p.Action)
		known := PIITypes()
		for _, t := range p.Types {
			if !slices.Contains(known, t) {
				add("pii.types: unknown PII type %q (known: %s)", t, strings.Join(known, ", "))
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
			case slices.Contains(known, k):
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
	case "", Block, Allow:
	default:
		add("unscannable: %q is not block or allow", g.Unscannable)
	}
	if n := g.MaxHoldBytes; n != 0 && (n < MinMaxHoldBytes || n > MaxMaxHoldBytes) {
		add("max_hold_bytes: %d is outside %d..%d", n, MinMaxHoldBytes, MaxMaxHoldBytes)
	}
	for _, d := range g.AppliesTo {
		if d != Input && d != Output {
			add("applies_to: %q is not input or output", d)
		}
	}
	return errs
}
