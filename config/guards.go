package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

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

// validateGuards checks the guards: map (each guard's own settings by
// guard.Config.Validate) and the apps' references to it.
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
		for _, err := range g.Validate() {
			add("%s", err)
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
