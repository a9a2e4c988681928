package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"
	"gopkg.in/yaml.v3"
)

// PolicyHash names a policy: the SHA-256 of the canonical form of the
// config's policy sections (ReloadableKeys: apps, and deny rules or a
// global mode where the config has them) — YAML with map keys sorted,
// comments, spacing and source positions dropped — as 12 hex digits. Two
// files that differ only in layout have the same hash; any change to what an
// app selects or allows changes it.
func PolicyHash(cfg *Config) string {
	sections := map[string]any{}
	v := reflect.ValueOf(*cfg)
	for i := range v.NumField() {
		if name := yamlName(v.Type().Field(i)); name != "" && isReloadable(name) {
			sections[name] = v.Field(i).Interface()
		}
	}
	b, err := yaml.Marshal(sections)
	if err != nil { // plain data: cannot happen
		b = []byte(fmt.Sprint(sections))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// ReloadableKeys are the top-level config keys a running Warden applies on
// reload (those the config has); every other key needs a restart.
var ReloadableKeys = []string{"apps", "deny", "guards", "mode"}

// RestartKeys lists the keys (top-level, or one level down for sections
// with fields, e.g. "identity.sources") whose values differ between a
// running config and a new one and that a reload does not apply.
func RestartKeys(old, new *Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*new)
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" || isReloadable(name) {
			continue
		}
		a, b := ov.Field(i), nv.Field(i)
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			continue
		}
		if f.Type.Kind() != reflect.Struct {
			out = append(out, name)
			continue
		}
		for j := range f.Type.NumField() {
			sub := yamlName(f.Type.Field(j))
			if sub == "" {
				continue
			}
			if !reflect.DeepEqual(a.Field(j).Interface(), b.Field(j).Interface()) {
				out = append(out, name+"."+sub)
			}
		}
	}
	return out
}

func isReloadable(key string) bool {
	for _, k := range ReloadableKeys {
		if k == key {
			return true
		}
	}
	return false
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var (
	reLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reField     = regexp.MustCompile(`^field (\S+) not found in type`)
	reUnmarshal = regexp.MustCompile("^cannot unmarshal \\S+ `([^`]*)`")
	reApp       = regexp.MustCompile(`^(apps|deny)\[(\d+)\]`)
)

// Diagnostics turns an error from ParseConfig into one message per problem,
// each "file:line:column: message" where the position is known
// ("file:line: message" when yaml gives no column, "file: message" when
// the problem has no single place).
func Diagnostics(file string, data []byte, err error) []string {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.diagnostics(file)
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		root = yaml.Node{}
	}
	return (&ConfigError{Problems: positionProblems(&root, err)}).diagnostics(file)
}

// columnFor finds the column of the node an error on line names: the
// unknown key, the value that did not decode, the app item; else the first
// node on the line.
func columnFor(root *yaml.Node, line int, msg string) int {
	want := ""
	if m := reField.FindStringSubmatch(msg); m != nil {
		want = m[1]
	} else if m := reUnmarshal.FindStringSubmatch(msg); m != nil {
		want = m[1]
	}
	if m := reApp.FindStringSubmatch(msg); m != nil && len(root.Content) > 0 {
		i, _ := strconv.Atoi(m[2])
		if apps := mappingValue(root.Content[0], m[1]); apps != nil && apps.Kind == yaml.SequenceNode && i < len(apps.Content) && apps.Content[i].Line == line {
			return apps.Content[i].Column
		}
	}
	first, exact := 0, 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || exact > 0 {
			return
		}
		if n.Line == line && n.Kind != yaml.DocumentNode {
			if first == 0 || n.Column < first {
				first = n.Column
			}
			if want != "" && n.Kind == yaml.ScalarNode && n.Value == want {
				exact = n.Column
				return
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	if exact > 0 {
		return exact
	}
	return first
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Warnings returns findings about a valid config that do not stop it
// loading but are probably mistakes: unreachable apps and other policy
// slips (policy.AppWarnings), identity source orders that can name the
// wrong workload (identity.Warnings), escapable deny rules or a global
// dry-run (policy.GlobalWarnings), and apps or deny rules selecting on tags
// the identity config makes weak (SelectorWarnings).
func Warnings(cfg *Config) []string {
	pc := cfg.Policy()
	out := policy.AppWarnings(&pc)
	out = append(out, identity.Warnings(&cfg.Identity)...)
	out = append(out, policy.GlobalWarnings(&pc)...)
	return append(out, SelectorWarnings(cfg)...)
}

// SelectorWarnings are the warnings that need both the policy and the
// identity config: apps and deny rules selecting on a tag that the
// configured sources produce weak (ecs.family, ecs.revision, ecs.service
// without identity.ecs_sidecar.platform_task_definitions). The server logs
// them when it loads or reloads a policy.
func SelectorWarnings(cfg *Config) []string {
	pc := cfg.Policy()
	return policy.WeakSelectorWarnings(&pc, cfg.Identity.WeakUnder)
}
