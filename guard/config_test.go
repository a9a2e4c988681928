package guard

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Validate names keys relative to the guard; the config loader prefixes
// guards.NAME (authz's tests and cmd/warden's goldens check the full
// messages and their positions).
func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"valid", Config{PII: &PIIConfig{Types: []string{"EMAIL"}, Custom: map[string]string{"EMP": "EMP-[0-9]+"}, Action: Mask},
			Words: &WordsConfig{List: []string{"x"}}, Injection: &InjectionConfig{Action: Record},
			Bedrock:     &BedrockConfig{ID: "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123", Version: "DRAFT", Timeout: time.Second, OnError: Allow},
			Unscannable: Allow, AppliesTo: []string{Input, Output}}, nil},
		{"no detector", Config{}, []string{"names no detector (pii, words, injection or bedrock)"}},
		{"pii", Config{PII: &PIIConfig{Types: []string{"SSN"}, Custom: map[string]string{"EMAIL": "x", " ": "(", "E": ""}, Action: "redact"}}, []string{
			`pii.action: "redact" is not block, mask or record`,
			`pii.types: unknown PII type "SSN" (known: EMAIL, PHONE, US_SOCIAL_SECURITY_NUMBER, CREDIT_DEBIT_CARD_NUMBER, INTERNATIONAL_BANK_ACCOUNT_NUMBER, US_BANK_ROUTING_NUMBER, IP_ADDRESS, MAC_ADDRESS, URL, AWS_ACCESS_KEY, AWS_SECRET_KEY, UK_NATIONAL_INSURANCE_NUMBER)`,
			"pii.custom: a custom type needs a name",
			"pii.custom. : invalid RE2 expression: error parsing regexp: missing closing ): `(`",
			"pii.custom.E: empty expression",
			"pii.custom.EMAIL: the name of a built-in type; list it under pii.types instead",
		}},
		{"words", Config{Words: &WordsConfig{List: []string{"ok", " "}}}, []string{"words.list[1]: empty entry"}},
		{"empty words", Config{Words: &WordsConfig{}}, []string{"words.list: empty"}},
		{"bedrock", Config{Bedrock: &BedrockConfig{ID: "Not_An_ID", Version: "0", Timeout: -time.Second, OnError: "retry", Action: Mask}}, []string{
			"bedrock.action: mask is not supported (Warden cannot tell where in the text the guardrail intervened); use block or record",
			`bedrock.id: "Not_An_ID" is not a guardrail id (lower-case letters and digits) or guardrail ARN`,
			`bedrock.version: "0" is not a version number (1, 2, …) or DRAFT`,
			"bedrock.timeout: -1s is negative",
			`bedrock.on_error: "retry" is not block or allow`,
		}},
		{"bedrock required", Config{Bedrock: &BedrockConfig{Action: "drop"}}, []string{
			`bedrock.action: "drop" is not block or record`,
			"bedrock.id is required (a guardrail id or ARN)",
			"bedrock.version is required (a version number or DRAFT)",
		}},
		{"sides", Config{Injection: &InjectionConfig{}, Unscannable: "maybe", AppliesTo: []string{"inputs"}}, []string{
			`unscannable: "maybe" is not block or allow`,
			`applies_to: "inputs" is not input or output`,
		}},
		{"max_hold_bytes low", Config{Injection: &InjectionConfig{}, MaxHoldBytes: 63}, []string{"max_hold_bytes: 63 is outside 64..65536"}},
		{"max_hold_bytes high", Config{Injection: &InjectionConfig{}, MaxHoldBytes: 65537}, []string{"max_hold_bytes: 65537 is outside 64..65536"}},
		{"max_hold_bytes bounds", Config{Injection: &InjectionConfig{}, MaxHoldBytes: 64}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, err := range tc.cfg.Validate() {
				got = append(got, err.Error())
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("Validate() =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	g := Config{PII: &PIIConfig{}, Words: &WordsConfig{Action: Mask}, Injection: &InjectionConfig{}, Bedrock: &BedrockConfig{}}
	if g.PII.EffectiveAction() != Block || g.Injection.EffectiveAction() != Block || g.Bedrock.EffectiveAction() != Block ||
		!g.BlocksUnscannable() || !g.AppliesToInput() || !g.AppliesToOutput() || !g.Masks() ||
		g.Bedrock.EffectiveTimeout() != DefaultBedrockTimeout || !g.Bedrock.BlocksOnError() ||
		g.EffectiveMaxHoldBytes() != DefaultMaxHoldBytes {
		t.Errorf("defaults: %+v", g)
	}
	out := Config{AppliesTo: []string{Output}, Unscannable: Allow}
	if out.AppliesToInput() || !out.AppliesToOutput() || out.BlocksUnscannable() || out.Masks() {
		t.Errorf("output only: %+v", out)
	}
}

// TestDetectorSectionsComplete: every detector field of Config (a pointer to
// a section with an action) is in detectorSections under its yaml key, so a
// detector added to Config (ARCHITECTURE.md, "Adding a detector") is seen
// by Masks and by the "names no detector" check without another hand list.
func TestDetectorSectionsComplete(t *testing.T) {
	ct := reflect.TypeFor[Config]()
	var want []string
	full := &Config{}
	fv := reflect.ValueOf(full).Elem()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
			continue
		}
		if _, ok := f.Type.Elem().FieldByName("Action"); !ok {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		want = append(want, key)
		fv.Field(i).Set(reflect.New(f.Type.Elem()))
	}
	var got []string
	for _, d := range full.detectorSections() {
		got = append(got, d.key)
		if !d.set {
			t.Errorf("detector %q: set in Config but detectorSections says unset", d.key)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("detectorSections lists %v; Config's detector fields are %v", got, want)
	}
	for _, d := range (&Config{}).detectorSections() {
		if d.set {
			t.Errorf("detector %q: set in an empty Config", d.key)
		}
	}
}
