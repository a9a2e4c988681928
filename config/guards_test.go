package config

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/guard"
)

// guarded is minimal with guards defined and applied by app a.
func guarded(guards, appGuards string) string {
	return strings.Replace(minimal, "    match: {tags: {app: a}}\n", "    match: {tags: {app: a}}\n    guards: "+appGuards+"\n", 1) +
		"guards:\n" + guards
}

func TestGuardsConfig(t *testing.T) {
	y := guarded(`  pii-block: {pii: {types: [EMAIL, US_SOCIAL_SECURITY_NUMBER], custom: {EMPLOYEE_ID: "EMP-[0-9]{6}"}, action: block}, unscannable: block}
  no-competitors: {words: {list: [acme corp], action: record}, applies_to: [input]}
  jailbreaks: {injection: {}, unscannable: allow}
`, "[pii-block, no-competitors, jailbreaks]")
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Apps[0].Guards; len(got) != 3 || got[0] != "pii-block" {
		t.Fatalf("apps[0].guards = %v", got)
	}
	pb, nc, jb := cfg.Guards["pii-block"], cfg.Guards["no-competitors"], cfg.Guards["jailbreaks"]
	if pb.PII.EffectiveAction() != guard.Block || !pb.BlocksUnscannable() || !pb.AppliesToInput() || !pb.AppliesToOutput() || pb.Masks() {
		t.Errorf("pii-block: %+v", pb)
	}
	if nc.Words.EffectiveAction() != guard.Record || !nc.AppliesToInput() || nc.AppliesToOutput() {
		t.Errorf("no-competitors: %+v", nc)
	}
	if jb.Injection.EffectiveAction() != guard.Block || jb.BlocksUnscannable() {
		t.Errorf("jailbreaks: %+v", jb)
	}
}

func TestGuardsConfigErrors(t *testing.T) {
	intercept := func(y string) string {
		y = strings.Replace(y, "listen: {endpoint: 127.0.0.1:8480}", "listen: {proxy: 127.0.0.1:8481}", 1)
		return strings.Replace(y, "{region: us-east-1}", "{region: us-east-1, signing: passthrough}", 1)
	}
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown guard in an app", guarded("  g: {injection: {}}\n", "[g, nope]"), []string{"line 7: apps[0] (a): guards", `unknown guard "nope"`, "defined: g"}},
		{"no guards defined", strings.Replace(minimal, "    match: {tags: {app: a}}\n", "    match: {tags: {app: a}}\n    guards: [g]\n", 1), []string{`unknown guard "g"`, "defines no guards"}},
		{"guard listed twice", guarded("  g: {injection: {}}\n", "[g, g]"), []string{`guard "g" listed twice`}},
		{"unknown PII type", guarded("  g: {pii: {types: [EMAIL, SSN]}}\n", "[g]"), []string{"guards.g: pii.types", `unknown PII type "SSN"`, "US_SOCIAL_SECURITY_NUMBER"}},
		{"invalid regex", guarded("  g: {pii: {custom: {EMP: \"EMP-(\"}}}\n", "[g]"), []string{"guards.g: pii.custom.EMP", "invalid RE2"}},
		{"backreference is not RE2", guarded("  g: {pii: {custom: {REP: '(a)\\1'}}}\n", "[g]"), []string{"pii.custom.REP", "invalid RE2"}},
		{"custom name of a built-in", guarded("  g: {pii: {custom: {EMAIL: x}}}\n", "[g]"), []string{"pii.custom.EMAIL", "built-in"}},
		{"bad action", guarded("  g: {words: {list: [x], action: redact}}\n", "[g]"), []string{"guards.g: words.action", `"redact"`, "block, mask or record"}},
		{"empty word list", guarded("  g: {words: {list: []}}\n", "[g]"), []string{"words.list: empty"}},
		{"empty word", guarded("  g: {words: {list: [ok, \" \"]}}\n", "[g]"), []string{"words.list[1]: empty entry"}},
		{"no detector", guarded("  g: {unscannable: allow}\n", "[g]"), []string{"guards.g: names no detector"}},
		{"bad unscannable", guarded("  g: {injection: {}, unscannable: maybe}\n", "[g]"), []string{"unscannable", `"maybe"`}},
		{"bad direction", guarded("  g: {injection: {}, applies_to: [inputs]}\n", "[g]"), []string{"applies_to", `"inputs"`}},
		{"mask under passthrough", intercept(guarded("  g: {pii: {action: mask}}\n", "[g]")), []string{`guard "g" masks`, "mask rewrites the body; passthrough cannot"}},
		{"unknown key", guarded("  g: {pii: {typez: [EMAIL]}}\n", "[g]"), []string{"typez"}},
		{"bedrock without id", guarded("  g: {bedrock: {version: \"1\"}}\n", "[g]"), []string{"guards.g: bedrock.id is required"}},
		{"bedrock bad id", guarded("  g: {bedrock: {id: Not_An_ID, version: \"1\"}}\n", "[g]"), []string{"bedrock.id", `"Not_An_ID"`}},
		{"bedrock bad ARN", guarded("  g: {bedrock: {id: \"arn:aws:s3:::bucket\", version: DRAFT}}\n", "[g]"), []string{"bedrock.id", "guardrail ARN"}},
		{"bedrock without version", guarded("  g: {bedrock: {id: abc123}}\n", "[g]"), []string{"bedrock.version is required"}},
		{"bedrock bad version", guarded("  g: {bedrock: {id: abc123, version: draft}}\n", "[g]"), []string{"bedrock.version", `"draft"`}},
		{"bedrock version zero", guarded("  g: {bedrock: {id: abc123, version: \"0\"}}\n", "[g]"), []string{"bedrock.version", `"0"`}},
		{"bedrock mask", guarded("  g: {bedrock: {id: abc123, version: \"1\", action: mask}}\n", "[g]"), []string{"bedrock.action: mask is not supported"}},
		{"bedrock bad action", guarded("  g: {bedrock: {id: abc123, version: \"1\", action: drop}}\n", "[g]"), []string{"bedrock.action", `"drop"`}},
		{"bedrock bad on_error", guarded("  g: {bedrock: {id: abc123, version: \"1\", on_error: retry}}\n", "[g]"), []string{"bedrock.on_error", `"retry"`, "block or allow"}},
		{"bedrock negative timeout", guarded("  g: {bedrock: {id: abc123, version: \"1\", timeout: -1s}}\n", "[g]"), []string{"bedrock.timeout", "negative"}},
		{"bedrock bad timeout", guarded("  g: {bedrock: {id: abc123, version: \"1\", timeout: soon}}\n", "[g]"), []string{"soon"}},
		{"bedrock unknown key", guarded("  g: {bedrock: {id: abc123, version: \"1\", trace: enabled}}\n", "[g]"), []string{"trace"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Passthrough with guards that do not rewrite is fine.
	if _, err := ParseConfig([]byte(intercept(guarded("  g: {pii: {action: block}}\n", "[g]")))); err != nil {
		t.Errorf("block guard under passthrough: %v", err)
	}
	// The bedrock kind only reads: passthrough is fine.
	if _, err := ParseConfig([]byte(intercept(guarded("  g: {bedrock: {id: abc123, version: \"1\", action: record}}\n", "[g]")))); err != nil {
		t.Errorf("bedrock guard under passthrough: %v", err)
	}
}

func TestBedrockGuardConfig(t *testing.T) {
	y := guarded(`  managed: {bedrock: {id: abc123def456, version: DRAFT}}
  managed-arn: {bedrock: {id: "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123", version: "12", timeout: 500ms, on_error: allow, action: record}, pii: {types: [EMAIL]}, applies_to: [input]}
`, "[managed, managed-arn]")
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	m, a := cfg.Guards["managed"].Bedrock, cfg.Guards["managed-arn"].Bedrock
	if m.ID != "abc123def456" || m.Version != "DRAFT" || m.EffectiveTimeout() != 2*time.Second || !m.BlocksOnError() || m.EffectiveAction() != guard.Block {
		t.Errorf("managed: %+v", m)
	}
	if a.Version != "12" || a.EffectiveTimeout() != 500*time.Millisecond || a.BlocksOnError() || a.EffectiveAction() != guard.Record {
		t.Errorf("managed-arn: %+v", a)
	}
	if g := cfg.Guards["managed"]; g.Masks() {
		t.Errorf("a bedrock guard never masks")
	}
}

// appWith is minimal with extra keys (indented four spaces) in app a.
func appWith(keys string) string {
	return strings.Replace(minimal, "    match: {tags: {app: a}}\n", "    match: {tags: {app: a}}\n"+keys, 1)
}

func TestAppCapsAndGuardrailConfig(t *testing.T) {
	y := appWith("    limits: {max_output_tokens: 2048, max_prompt_chars: 100000, on_exceed: clamp}\n" +
		"    bedrock_guardrail: {id: abc123def456, version: \"3\", trace: enabled}\n")
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if l := a.Limits; l.MaxOutputTokens != 2048 || l.MaxPromptChars != 100000 || !l.Clamps() {
		t.Errorf("limits: %+v", l)
	}
	if g := a.BedrockGuardrail; g == nil || *g != (policy.BedrockGuardrailConfig{ID: "abc123def456", Version: "3", Trace: "enabled"}) {
		t.Errorf("bedrock_guardrail: %+v", g)
	}
	arn := appWith("    bedrock_guardrail: {id: \"arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123\", version: DRAFT}\n" +
		"    limits: {max_output_tokens: 10}\n")
	cfg, err = ParseConfig([]byte(arn))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Apps[0].Limits.Clamps() {
		t.Error("on_exceed defaults to reject")
	}
	// An app without the new keys keeps the policy hash it had (omitempty).
	before := PolicyHash(mustParse(t, minimal))
	if PolicyHash(mustParse(t, appWith(""))) != before {
		t.Error("hash changed")
	}
}

func TestAppCapsAndGuardrailConfigErrors(t *testing.T) {
	passthrough := func(y string) string {
		y = strings.Replace(y, "listen: {endpoint: 127.0.0.1:8480}", "listen: {proxy: 127.0.0.1:8481}", 1)
		return strings.Replace(y, "{region: us-east-1}", "{region: us-east-1, signing: passthrough}", 1)
	}
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"negative max_output_tokens", appWith("    limits: {max_output_tokens: -1}\n"), []string{"apps[0] (a): limits.max_output_tokens: must be positive"}},
		{"negative max_prompt_chars", appWith("    limits: {max_prompt_chars: -5}\n"), []string{"limits.max_prompt_chars: must be positive"}},
		{"bad on_exceed", appWith("    limits: {max_output_tokens: 5, on_exceed: truncate}\n"), []string{"limits.on_exceed", `"truncate"`, "reject or clamp"}},
		{"clamp without a cap", appWith("    limits: {max_prompt_chars: 5, on_exceed: clamp}\n"), []string{"on_exceed: clamp applies to limits.max_output_tokens, which is not set"}},
		{"clamp under passthrough", passthrough(appWith("    limits: {max_output_tokens: 5, on_exceed: clamp}\n")), []string{"clamp rewrites the body; passthrough cannot"}},
		{"guardrail under passthrough", passthrough(appWith("    bedrock_guardrail: {id: abc, version: \"1\"}\n")), []string{"bedrock_guardrail: attaching a guardrail rewrites the request; passthrough cannot"}},
		{"guardrail without id", appWith("    bedrock_guardrail: {version: \"1\"}\n"), []string{"bedrock_guardrail.id is required"}},
		{"guardrail bad id", appWith("    bedrock_guardrail: {id: My-Guardrail, version: \"1\"}\n"), []string{"bedrock_guardrail.id", `"My-Guardrail"`}},
		{"guardrail without version", appWith("    bedrock_guardrail: {id: abc}\n"), []string{"bedrock_guardrail.version is required"}},
		{"guardrail bad version", appWith("    bedrock_guardrail: {id: abc, version: latest}\n"), []string{"bedrock_guardrail.version", `"latest"`}},
		{"guardrail version 0", appWith("    bedrock_guardrail: {id: abc, version: \"0\"}\n"), []string{"bedrock_guardrail.version", `"0"`}},
		{"guardrail bad trace", appWith("    bedrock_guardrail: {id: abc, version: \"1\", trace: on}\n"), []string{"bedrock_guardrail.trace", `"on"`}},
		{"guardrail unknown key", appWith("    bedrock_guardrail: {id: abc, version: \"1\", versoin: \"2\"}\n"), []string{"versoin"}}, //nolint:misspell // the typo is the input under test
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Passthrough with caps that only reject is fine.
	if _, err := ParseConfig([]byte(passthrough(appWith("    limits: {max_output_tokens: 5, max_prompt_chars: 9, on_exceed: reject}\n")))); err != nil {
		t.Errorf("reject caps under passthrough: %v", err)
	}
}
