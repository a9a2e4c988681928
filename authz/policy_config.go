package authz

import "fmt"

// AppConfig is one application: which workloads it selects and what they may do.
type AppConfig struct {
	Name  string      `yaml:"name"`
	Match MatchConfig `yaml:"match"`
	Allow AllowConfig `yaml:"allow"`
	Line  int         `yaml:"-"`
}

// MatchConfig selects workloads: every listed tag must hold.
type MatchConfig struct {
	Tags map[string]string `yaml:"tags"`
}

// AllowConfig is an app's allowlist.
type AllowConfig struct {
	Models     []string `yaml:"models"`
	Operations []string `yaml:"operations"`
}

// validateApps checks the apps section; errors name the app and its line.
func validateApps(apps []AppConfig) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seen := map[string]int{}
	for i, a := range apps {
		where := fmt.Sprintf("apps[%d]", i)
		if a.Line > 0 {
			where = fmt.Sprintf("line %d: apps[%d]", a.Line, i)
		}
		if a.Name == "" {
			add("%s: name is required", where)
		} else if j, dup := seen[a.Name]; dup {
			add("%s: name %q already used by apps[%d]", where, a.Name, j)
		} else {
			seen[a.Name] = i
		}
		if len(a.Match.Tags) == 0 {
			add("%s (%s): match.tags must select at least one tag; an app matching everything is not allowed", where, a.Name)
		}
		for _, m := range a.Allow.Models {
			if err := validateGlob(m); err != nil {
				add("%s (%s): allow.models %q: %v", where, a.Name, m, err)
			}
		}
		for _, op := range a.Allow.Operations {
			if !knownOperation(op) && op != "*" {
				add("%s (%s): allow.operations: unknown operation %q", where, a.Name, op)
			}
		}
	}
	return errs
}
