package admission

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Params are the policies' parameters: what the canonical Warden sidecar
// looks like, and who may do what. The injector generates them from its own
// configuration (ConfigMap); the policies read them through paramRef.
type Params struct {
	// Audience of Warden's projected service-account token.
	Audience string
	// InjectorNamespace is never enrolled and is exempt from the pod rules.
	InjectorNamespace string
	// Images the sidecar may run, each pinned by digest (N and N-1).
	Images []string
	// Args are the sidecar's exact args (no command override).
	Args []string
	// IptablesArgs are the exact args of transparent mode's warden-iptables
	// init container (the one container allowed NET_ADMIN alone, in
	// namespaces that allow transparent mode).
	IptablesArgs []string
	// Env lists the variables the sidecar may have and how each is pinned.
	Env []EnvRule
	// Mounts lists the sidecar's allowed volume mounts.
	Mounts []Mount
	// BreakGlassGroups may exec/attach into the sidecar and add ephemeral
	// containers in enrolled namespaces.
	BreakGlassGroups []string
	// PlatformGroups may set, change or remove the enrolment label.
	PlatformGroups []string
}

// EnvRule pins one environment variable of the sidecar.
type EnvRule struct {
	Name string
	Kind EnvKind
	// Arg is the literal value (EnvValue) or the fieldPath (EnvField).
	Arg string
}

// EnvKind says how an EnvRule pins its variable.
type EnvKind string

// The kinds of EnvRule, as written in the parameters ("NAME=kind:arg").
const (
	EnvAny            EnvKind = ""               // any literal value
	EnvValue          EnvKind = "value"          // exactly Arg
	EnvNamespace      EnvKind = "namespace"      // the pod's namespace
	EnvServiceAccount EnvKind = "serviceAccount" // the pod's service account
	EnvField          EnvKind = "field"          // valueFrom.fieldRef.fieldPath == Arg
)

// Mount is one volume mount the sidecar may have.
type Mount struct{ Volume, Path string }

// ParamsError says which parameter is wrong and why.
type ParamsError struct {
	Key    string
	Reason string
}

func (e *ParamsError) Error() string {
	return fmt.Sprintf("admission parameters: %s: %s", e.Key, e.Reason)
}

// digestRef is an image reference pinned by a sha256 digest.
var digestRef = regexp.MustCompile(`^[a-z0-9]+([._/:-][a-z0-9]+)*@sha256:[0-9a-f]{64}$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ConfigMap renders p as the parameters ConfigMap the bindings name, in the
// injector's namespace (WriteManifests points the bindings there).
func (p *Params) ConfigMap() (*corev1.ConfigMap, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	env := make([]string, len(p.Env))
	for i, r := range p.Env {
		env[i] = r.String()
	}
	mounts := make([]string, len(p.Mounts))
	for i, m := range p.Mounts {
		mounts[i] = m.Volume + "=" + m.Path
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ParamsName,
			Namespace: p.InjectorNamespace,
			Labels:    map[string]string{"app.kubernetes.io/name": "warden", "app.kubernetes.io/component": "admission"},
		},
		Data: map[string]string{
			"audience":          p.Audience,
			"injectorNamespace": p.InjectorNamespace,
			"images":            strings.Join(p.Images, "\n"),
			"args":              strings.Join(p.Args, "\n"),
			"iptablesArgs":      strings.Join(p.IptablesArgs, "\n"),
			"env":               strings.Join(env, "\n"),
			"mounts":            strings.Join(mounts, "\n"),
			"breakGlassGroups":  strings.Join(p.BreakGlassGroups, "\n"),
			"platformGroups":    strings.Join(p.PlatformGroups, "\n"),
		},
	}, nil
}

// String is the rule as the parameters write it.
func (r EnvRule) String() string {
	switch r.Kind {
	case EnvAny:
		return r.Name
	case EnvNamespace, EnvServiceAccount:
		return r.Name + "=" + string(r.Kind)
	default:
		return r.Name + "=" + string(r.Kind) + ":" + r.Arg
	}
}

// paramKeys are the keys the policies read; each is required.
var paramKeys = [...]string{"audience", "injectorNamespace", "images", "args", "iptablesArgs", "env", "mounts", "breakGlassGroups", "platformGroups"}

// ParseParams reads and validates the parameters ConfigMap the way the
// policies read it (lists one item a line, surrounding spaces trimmed, blank
// lines ignored).
func ParseParams(cm *corev1.ConfigMap) (*Params, error) {
	if cm == nil {
		return nil, &ParamsError{Key: "(ConfigMap)", Reason: "missing"}
	}
	for _, k := range paramKeys {
		if _, ok := cm.Data[k]; !ok {
			return nil, &ParamsError{Key: k, Reason: "missing (the policies would deny every request they match)"}
		}
	}
	for k := range cm.Data {
		if !slices.Contains(paramKeys[:], k) {
			return nil, &ParamsError{Key: k, Reason: "unknown key (known: " + strings.Join(paramKeys[:], ", ") + ")"}
		}
	}
	p := &Params{
		Audience:          cm.Data["audience"],
		InjectorNamespace: cm.Data["injectorNamespace"],
		Images:            lines(cm.Data["images"]),
		Args:              lines(cm.Data["args"]),
		IptablesArgs:      lines(cm.Data["iptablesArgs"]),
		BreakGlassGroups:  lines(cm.Data["breakGlassGroups"]),
		PlatformGroups:    lines(cm.Data["platformGroups"]),
	}
	for _, l := range lines(cm.Data["env"]) {
		r, err := parseEnvRule(l)
		if err != nil {
			return nil, err
		}
		p.Env = append(p.Env, r)
	}
	for _, l := range lines(cm.Data["mounts"]) {
		vol, mountPath, ok := strings.Cut(l, "=")
		if !ok {
			return nil, &ParamsError{Key: "mounts", Reason: fmt.Sprintf("%q is not VOLUME=PATH", l)}
		}
		p.Mounts = append(p.Mounts, Mount{Volume: vol, Path: mountPath})
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		// CEL's trim() removes Unicode white space, as strings.TrimSpace does.
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func parseEnvRule(l string) (EnvRule, error) {
	name, rule, hasRule := strings.Cut(l, "=")
	r := EnvRule{Name: name}
	if hasRule {
		kind, arg, hasArg := strings.Cut(rule, ":")
		r.Kind, r.Arg = EnvKind(kind), arg
		switch r.Kind {
		case EnvNamespace, EnvServiceAccount:
			if hasArg {
				return r, &ParamsError{Key: "env", Reason: fmt.Sprintf("%q: %s takes no argument", l, kind)}
			}
		case EnvValue, EnvField:
			if !hasArg {
				return r, &ParamsError{Key: "env", Reason: fmt.Sprintf("%q: %s needs an argument (%s:…)", l, kind, kind)}
			}
		default:
			return r, &ParamsError{Key: "env", Reason: fmt.Sprintf("%q: unknown rule %q (value:TEXT, namespace, serviceAccount, field:PATH)", l, kind)}
		}
	}
	return r, nil
}

// Validate checks what the policies rely on: a DNS-label injector namespace,
// digest-pinned images, one item a line, well-formed env and mount rules.
func (p *Params) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ParamsError{Key: key, Reason: fmt.Sprintf(format, a...)})
	}
	if p.Audience == "" || strings.TrimSpace(p.Audience) != p.Audience || strings.ContainsAny(p.Audience, "\n\r") {
		bad("audience", "%q must be a non-empty single line without surrounding spaces", p.Audience)
	}
	if msgs := validation.IsDNS1123Label(p.InjectorNamespace); len(msgs) > 0 {
		bad("injectorNamespace", "%q: %s", p.InjectorNamespace, strings.Join(msgs, "; "))
	}
	if len(p.Images) == 0 {
		bad("images", "at least one image is required")
	}
	for _, img := range p.Images {
		if !digestRef.MatchString(img) {
			bad("images", "%q is not pinned by digest (REPOSITORY@sha256:<64 hex>)", img)
		}
	}
	if len(p.Args) == 0 {
		bad("args", "the sidecar's args are required")
	}
	single := func(key string, items []string) {
		for _, it := range items {
			if it == "" || strings.TrimSpace(it) != it || strings.ContainsAny(it, "\n\r") {
				bad(key, "%q must be a non-empty single line without surrounding spaces", it)
			}
		}
	}
	single("args", p.Args)
	if len(p.IptablesArgs) == 0 {
		bad("iptablesArgs", "the warden-iptables init container's args are required")
	}
	single("iptablesArgs", p.IptablesArgs)
	single("breakGlassGroups", p.BreakGlassGroups)
	single("platformGroups", p.PlatformGroups)
	if len(p.PlatformGroups) == 0 {
		bad("platformGroups", "at least one group is required (nobody could enrol a namespace)")
	}
	seen := map[string]bool{}
	for _, r := range p.Env {
		if !envName.MatchString(r.Name) {
			bad("env", "%q is not an environment variable name", r.Name)
		}
		if seen[r.Name] {
			bad("env", "%s is listed twice", r.Name)
		}
		seen[r.Name] = true
		switch r.Kind {
		case EnvAny, EnvNamespace, EnvServiceAccount:
			if r.Arg != "" {
				bad("env", "%s: rule %q takes no argument", r.Name, r.Kind)
			}
		case EnvValue, EnvField:
			if strings.ContainsAny(r.Arg, "\n\r") || strings.TrimSpace(r.Arg) != r.Arg {
				bad("env", "%s: %q must be a single line without surrounding spaces", r.Name, r.Arg)
			}
			if r.Kind == EnvField && r.Arg == "" {
				bad("env", "%s: field needs a fieldPath", r.Name)
			}
		default:
			bad("env", "%s: unknown rule %q", r.Name, r.Kind)
		}
	}
	for _, m := range p.Mounts {
		if msgs := validation.IsDNS1123Label(m.Volume); len(msgs) > 0 {
			bad("mounts", "volume %q: %s", m.Volume, strings.Join(msgs, "; "))
		}
		if !strings.HasPrefix(m.Path, "/") || strings.ContainsAny(m.Path, "\n\r=") || strings.TrimSpace(m.Path) != m.Path {
			bad("mounts", "%s: mount path %q must be absolute, one line, without '='", m.Volume, m.Path)
		}
	}
	return errors.Join(errs...)
}
