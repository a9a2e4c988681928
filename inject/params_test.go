package inject

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warden-egress/warden/inject/admission"
)

// envAllowed is the policies' env rule (10-pods.yaml, wEnv) in Go: the
// value e of the sidecar in pod p (namespace ns) satisfies one rule.
func envAllowed(rules []admission.EnvRule, e corev1.EnvVar, p *corev1.Pod, ns string) bool {
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	for _, r := range rules {
		if r.Name != e.Name {
			continue
		}
		switch r.Kind {
		case admission.EnvAny:
			return e.ValueFrom == nil
		case admission.EnvValue:
			return e.ValueFrom == nil && e.Value == r.Arg
		case admission.EnvNamespace:
			return e.ValueFrom == nil && e.Value == ns
		case admission.EnvServiceAccount:
			return e.ValueFrom == nil && e.Value == sa
		case admission.EnvField:
			return e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == r.Arg
		}
	}
	return false
}

// violations lists where the containers Mutate wrote differ from what the
// parameters pin (image, args, env, mounts; warden-iptables' args).
func violations(p *admission.Params, pod *corev1.Pod, ns string) []string {
	var out []string
	for _, c := range pod.Spec.InitContainers {
		switch c.Name {
		case ContainerName:
			if !slices.Contains(p.Images, c.Image) {
				out = append(out, "image "+c.Image)
			}
			if len(c.Command) != 0 || !slices.Equal(c.Args, p.Args) {
				out = append(out, "args "+strings.Join(c.Args, " "))
			}
			for _, e := range c.Env {
				if !envAllowed(p.Env, e, pod, ns) {
					out = append(out, "env "+e.Name)
				}
			}
			for _, m := range c.VolumeMounts {
				if !slices.Contains(p.Mounts, admission.Mount{Volume: m.Name, Path: m.MountPath}) {
					out = append(out, "mount "+m.Name+"="+m.MountPath)
				}
			}
		case IptablesContainerName:
			if !slices.Contains(p.Images, c.Image) {
				out = append(out, "iptables image "+c.Image)
			}
			if len(c.Command) != 0 || !slices.Equal(c.Args, p.IptablesArgs) {
				out = append(out, "iptables args "+strings.Join(c.Args, " "))
			}
		}
	}
	return out
}

// The parameters AdmissionParams generates admit exactly the containers
// Mutate writes, in every mode and for pods in different namespaces and
// service accounts; and they pin what is the same in every pod (a changed
// role, region, token path or fieldRef is a violation).
func TestAdmissionParamsMatchMutate(t *testing.T) {
	in := testInjector(t)
	p, err := in.AdmissionParams()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Images; len(got) != 1 || got[0] != in.Config().Image {
		t.Fatalf("images %v, want the injector's image", got)
	}
	// The parameters survive the ConfigMap the policies read.
	cm, err := p.ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	if p, err = admission.ParseParams(cm); err != nil {
		t.Fatal(err)
	}
	namespaces := []Namespace{shop, {Name: "team-b-with-a-longer-name", Labels: map[string]string{LabelEnrolled: "true"}}}
	for _, mode := range []string{ModeEndpoint, ModeProxy, ModeTransparent} {
		for _, ns := range namespaces {
			for _, sa := range []string{"", "checkout"} {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{AnnotationMode: mode}},
					Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
				}
				out, _, err := in.Mutate(pod, ns)
				if err != nil {
					t.Fatal(err)
				}
				if v := violations(p, out, ns.Name); len(v) > 0 {
					t.Errorf("%s pod in %s (sa %q): the generated parameters refuse %v", mode, ns.Name, sa, v)
				}
				if mode == ModeTransparent && out.Spec.InitContainers[0].Name != IptablesContainerName {
					t.Errorf("transparent: first init container %s", out.Spec.InitContainers[0].Name)
				}
			}
		}
	}
	// Pinned, not merely named: each change is a violation.
	base, _, err := in.Mutate(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationMode: ModeTransparent}}}, shop)
	if err != nil {
		t.Fatal(err)
	}
	warden := func(p *corev1.Pod) *corev1.Container { return &p.Spec.InitContainers[1] }
	setEnv := func(name, value string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			for i, e := range warden(p).Env {
				if e.Name == name {
					warden(p).Env[i] = corev1.EnvVar{Name: name, Value: value}
				}
			}
		}
	}
	for name, change := range map[string]func(*corev1.Pod){
		"role":       setEnv("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/other"),
		"region":     setEnv("AWS_REGION", "eu-west-1"),
		"token file": setEnv("AWS_WEB_IDENTITY_TOKEN_FILE", "/tmp/token"),
		"imds":       setEnv("AWS_EC2_METADATA_DISABLED", "false"),
		"namespace":  setEnv(PodNamespaceEnv, "other"),
		"pod name":   setEnv(PodNameEnv, "literal"),
		"extra env": func(p *corev1.Pod) {
			warden(p).Env = append(warden(p).Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "x"})
		},
		"image":         func(p *corev1.Pod) { warden(p).Image = "ghcr.io/warden-egress/warden:latest" },
		"args":          func(p *corev1.Pod) { warden(p).Args = []string{"serve", "--config", "/tmp/x"} },
		"mount":         func(p *corev1.Pod) { warden(p).VolumeMounts[0].MountPath = "/tmp" },
		"iptables args": func(p *corev1.Pod) { p.Spec.InitContainers[0].Args = []string{"iptables", "--flush"} },
	} {
		pod := base.DeepCopy()
		change(pod)
		if v := violations(p, pod, shop.Name); len(v) == 0 {
			t.Errorf("%s: a changed sidecar passes the generated parameters", name)
		}
	}
}
