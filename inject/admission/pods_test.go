package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wantDenied fails unless err is a denial by policy whose message holds want.
func wantDenied(t *testing.T, err error, policy, want string) {
	t.Helper()
	if !deniedBy(err, policy) {
		t.Fatalf("want a denial by %s, got: %v", policy, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("denial by %s does not say %q: %v", policy, want, err)
	}
}

func TestPodsSmoke(t *testing.T) {
	f := installed(t)
	ns := f.namespace(t, nsOpts{enrolled: true})
	ctx := context.Background()
	_, err := f.as(t, teamUser).CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "ok"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.as(t, teamUser).CoreV1().Pods(ns).Create(ctx, plainPod(ns, "bare"), metav1.CreateOptions{})
	wantDenied(t, err, PolicyPods, "must run the warden sidecar")
	_ = corev1.Pod{}
}
