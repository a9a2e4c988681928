package policy

import (
	"fmt"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
)

// AppWarnings returns findings about a valid config's apps that do not stop it
// loading but are probably mistakes: apps no workload can reach because an
// earlier app selects all their workloads, StartAsyncInvoke allowed without
// an output prefix, regions that exclude the upstream region. Shadowing is
// detected for the simple cases (same or narrower selectors on the same
// keys); it never reports an app that is reachable.
func AppWarnings(cfg *Config) []string {
	var out []string
	apps := make([]app, len(cfg.Apps))
	for i := range cfg.Apps {
		apps[i] = compileApp(&cfg.Apps[i], i)
	}
	for j := range apps {
		b := &apps[j]
		where := AppWhere(&cfg.Apps[j], j)
		for i := 0; i < j; i++ {
			a := &apps[i]
			if shadows(a, b) {
				out = append(out, fmt.Sprintf("%s: unreachable: apps[%d] (%s, line %d) comes first and selects every workload this app selects (the first app in file order that selects a caller decides)",
					where, i, a.name, a.line))
				break
			}
		}
		if b.ops&opBit("StartAsyncInvoke") != 0 && len(b.prefixes) == 0 {
			out = append(out, fmt.Sprintf("%s: allow.operations \"*\" includes StartAsyncInvoke, which is denied without allow.async_output_prefixes", where))
		}
		if r := cfg.Region; r != "" && len(b.regions) > 0 && !b.regionAllowed(r) {
			out = append(out, fmt.Sprintf("%s: allow.regions does not include upstream.region %s, where calls with a bare model id are served", where, r))
		}
	}
	return out
}

// shadows reports whether every identity b selects is also selected by a,
// for the cases that can be decided selector by selector.
func shadows(a, b *app) bool {
	if !a.allowWeak && b.allowWeak {
		return false // weak identities reach b but not a
	}
	for i := range a.sels {
		if !impliedBy(&a.sels[i], b) {
			return false
		}
	}
	return true
}

// impliedBy reports whether some selector of b, on its own, guarantees s.
func impliedBy(s *selector, b *app) bool {
	for i := range b.sels {
		t := &b.sels[i]
		if t.key != s.key {
			continue
		}
		vals, literal := t.literalValues()
		switch s.kind {
		case selExists:
			return true
		case selEq:
			if literal && allOf(vals, func(v string) bool { return v == s.value }) {
				return true
			}
		case selIn:
			if literal && allOf(vals, func(v string) bool { return contains(s.values, v) }) {
				return true
			}
		case selGlob:
			if strings.Trim(s.value, "*") == "" {
				return true
			}
			if literal && allOf(vals, func(v string) bool { return Glob(s.value, v) }) {
				return true
			}
			if t.kind == selGlob && t.value == s.value {
				return true
			}
		}
	}
	return false
}

// literalValues lists the only values a selector accepts, when finite.
func (s *selector) literalValues() ([]string, bool) {
	switch s.kind {
	case selEq:
		return []string{s.value}, true
	case selIn:
		return s.values, true
	case selGlob:
		if !strings.ContainsAny(s.value, "*?") {
			return []string{s.value}, true
		}
	}
	return nil, false
}

func allOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if !f(v) {
			return false
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// WeakSelectorWarnings reports apps and deny rules that select on a key the
// identity config makes weak although the key names platform data in
// general (weakUnder is identity.Config.WeakUnder: why a key is weak under
// the configured sources, or ""). Today that is ecs.family, ecs.revision
// and ecs.service without identity.ecs_sidecar.platform_task_definitions:
// an app selecting on them never matches unless it allows weak identity,
// and then any workload naming its task definition so is selected.
func WeakSelectorWarnings(cfg *Config, weakUnder func(key string) string) []string {
	var out []string
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		for _, k := range a.Match.Keys() {
			why := weakUnder(k)
			if why == "" {
				continue
			}
			effect := "without allow_weak_identity this app never selects a caller on it, so its workloads fall to a later app or are denied"
			if a.AllowWeakIdentity {
				effect = "with allow_weak_identity any workload that gives its task definition or service that name is selected"
			}
			out = append(out, fmt.Sprintf("%s: match selects on %s, which is weak under this identity config: %s; %s. Select on %s (the task role the platform passes, which iam:PassRole controls) instead",
				AppWhere(a, i), k, why, effect, identity.TagECSTaskRole))
		}
	}
	for i := range cfg.Deny {
		for _, k := range cfg.Deny[i].Match.Keys() {
			if why := weakUnder(k); why != "" {
				out = append(out, fmt.Sprintf("deny[%d]: selects on %s, which is weak under this identity config: %s; a workload escapes the rule by renaming its task definition or service. Select on %s instead",
					i, k, why, identity.TagECSTaskRole))
			}
		}
	}
	return out
}
