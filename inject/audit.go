package inject

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Finding kinds of an audit.
const (
	FindingNotInjected = "not-injected" // admitted before enrolment (or with the webhook off)
	FindingOutdated    = "outdated"     // injected by another injector version, image or policy
	FindingOptedOut    = "opted-out"    // no sidecar, opt-out allowed by the namespace
)

// Finding is one pod that does not run the current sidecar.
type Finding struct {
	Namespace, Pod, Kind string
	Detail               string
}

// Audit lists the pods of enrolled namespaces that do not run the sidecar
// the injector would write now. Finished pods (Succeeded, Failed) are
// left out: they run nothing.
func (in *Injector) Audit(ctx context.Context, client kubernetes.Interface) ([]Finding, error) {
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{LabelEnrolled: "true"}).String()})
	if err != nil {
		return nil, fmt.Errorf("list enrolled namespaces: %w", err)
	}
	var out []Finding
	for _, n := range nss.Items {
		ns := Namespace{Name: n.Name, Labels: n.Labels}
		if !in.Enrolled(ns) {
			continue
		}
		opts := metav1.ListOptions{Limit: 500}
		for {
			pods, err := client.CoreV1().Pods(n.Name).List(ctx, opts)
			if err != nil {
				return nil, fmt.Errorf("list pods in %s: %w", n.Name, err)
			}
			for i := range pods.Items {
				if f, ok := in.auditPod(&pods.Items[i], ns); ok {
					out = append(out, f)
				}
			}
			if pods.Continue == "" {
				break
			}
			opts.Continue = pods.Continue
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return strings.Compare(a.Namespace+"/"+a.Pod, b.Namespace+"/"+b.Pod)
	})
	return out, nil
}

func (in *Injector) auditPod(p *corev1.Pod, ns Namespace) (Finding, bool) {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return Finding{}, false
	}
	f := Finding{Namespace: p.Namespace, Pod: p.Name}
	var wc *corev1.Container
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == ContainerName {
			wc = &p.Spec.InitContainers[i]
		}
	}
	if wc == nil {
		if p.Annotations[AnnotationInject] == "false" && ns.Labels[LabelAllowOptOut] == "true" {
			f.Kind, f.Detail = FindingOptedOut, "opted out (the namespace allows it)"
			return f, true
		}
		f.Kind, f.Detail = FindingNotInjected, "no warden sidecar: admitted before enrolment or while the webhook was off; restart it"
		return f, true
	}
	var why []string
	if v := p.Annotations[AnnotationInjected]; v != in.version {
		why = append(why, fmt.Sprintf("injector %q, now %q", v, in.version))
	}
	if wc.Image != in.cfg.Image {
		why = append(why, fmt.Sprintf("image %s, now %s", wc.Image, in.cfg.Image))
	}
	// The configuration the sidecar runs is its WARDEN_CONFIG, not the
	// AnnotationConfig digest next to it: a team can edit annotations of a
	// running pod, so judge the container's own value.
	running := "none"
	for _, e := range wc.Env {
		if e.Name == ConfigEnv {
			running = Digest([]byte(e.Value))
			if e.ValueFrom != nil {
				running = "not a literal"
			}
		}
	}
	if cfg, ok := in.rendered[modeOf(p)]; !ok || running != Digest(cfg) {
		want := "none for mode " + modeOf(p)
		if ok {
			want = Digest(cfg)
		}
		why = append(why, fmt.Sprintf("config %s, now %s", running, want))
	}
	if len(why) == 0 {
		return Finding{}, false
	}
	f.Kind, f.Detail = FindingOutdated, strings.Join(why, "; ")
	return f, true
}
