package inject

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/warden-egress/warden/inject/admission"
)

// AdmissionParams are the admission policies' parameters generated from the
// injector's own configuration and from the containers Mutate writes: one
// source of truth, so the policies' canonical sidecar cannot drift from the
// injected one. Env rules pin every value that is the same in every pod
// (value:), the identity the injector writes per pod (namespace,
// serviceAccount) and the downward-API fields (field:); a literal that
// varies (the per-mode WARDEN_CONFIG, the per-namespace session name) is
// pinned by name only. The sidecar's image must be pinned by digest.
func (in *Injector) AdmissionParams() (*admission.Params, error) {
	c := in.cfg
	p := &admission.Params{
		Audience:          c.Audience,
		InjectorNamespace: c.Namespace,
		Images:            append([]string{c.Image}, c.Admission.PreviousImages...),
		IptablesArgs:      in.iptablesContainer().Args,
		BreakGlassGroups:  c.Admission.BreakGlassGroups,
		PlatformGroups:    c.Admission.PlatformGroups,
	}
	// Render the sidecar of every mode for two different pods: what differs
	// between renders is per-pod or per-mode.
	var renders []corev1.Container
	for _, mode := range []string{ModeEndpoint, ModeProxy, ModeTransparent} {
		renders = append(renders, in.wardenContainer(mode, "ns-a", "sa-a"), in.wardenContainer(mode, "namespace-b", "sa-b"))
	}
	p.Args = renders[0].Args
	type envSeen struct {
		rule   admission.EnvRule
		values map[string]bool
	}
	var order []string
	seen := map[string]*envSeen{}
	for _, w := range renders {
		if !slices.Equal(w.Args, p.Args) {
			return nil, fmt.Errorf("inject: the sidecar's args differ between modes (%q, %q): the policies pin one list", p.Args, w.Args)
		}
		for _, m := range w.VolumeMounts {
			mt := admission.Mount{Volume: m.Name, Path: m.MountPath}
			if !slices.Contains(p.Mounts, mt) {
				p.Mounts = append(p.Mounts, mt)
			}
		}
		for _, e := range w.Env {
			s := seen[e.Name]
			if s == nil {
				s = &envSeen{rule: admission.EnvRule{Name: e.Name}, values: map[string]bool{}}
				seen[e.Name] = s
				order = append(order, e.Name)
			}
			switch {
			case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
				s.rule = admission.EnvRule{Name: e.Name, Kind: admission.EnvField, Arg: e.ValueFrom.FieldRef.FieldPath}
			case e.ValueFrom != nil:
				return nil, fmt.Errorf("inject: sidecar env %s: only fieldRef sources can be pinned by the policies", e.Name)
			case e.Name == PodNamespaceEnv:
				s.rule.Kind = admission.EnvNamespace
			case e.Name == PodSAEnv:
				s.rule.Kind = admission.EnvServiceAccount
			default:
				s.values[e.Value] = true
			}
		}
	}
	for _, name := range order {
		s := seen[name]
		if len(s.values) == 1 {
			for v := range s.values {
				if !strings.ContainsAny(v, "\n\r") && strings.TrimSpace(v) == v {
					s.rule = admission.EnvRule{Name: name, Kind: admission.EnvValue, Arg: v}
				}
			}
		}
		p.Env = append(p.Env, s.rule)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("inject: the admission parameters generated from the injector's configuration: %w", err)
	}
	return p, nil
}
