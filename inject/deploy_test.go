package inject_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/internal/kubetest"
)

var deployDir = filepath.Join("..", "deploy", "kubernetes", "injector")

// docs splits a multi-document manifest into JSON documents.
func docs(t *testing.T, file string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out [][]byte
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if raw == nil {
			continue
		}
		b, err := yaml.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// The shipped registration says what docs/kubernetes.md promises, and the
// shipped manifests are accepted by a real API server (server-side dry
// run; cert-manager's kinds are checked for shape only: no CRDs here).
func TestDeployManifests(t *testing.T) {
	var hooks []admissionregv1.MutatingWebhookConfiguration
	for _, d := range docs(t, filepath.Join(deployDir, "webhook.yaml")) {
		var h admissionregv1.MutatingWebhookConfiguration
		if err := yaml.UnmarshalStrict(d, &h); err != nil {
			t.Fatalf("webhook.yaml: %v", err)
		}
		hooks = append(hooks, h)
	}
	if len(hooks) != 1 || len(hooks[0].Webhooks) != 1 {
		t.Fatalf("webhook.yaml: %d configurations", len(hooks))
	}
	w := hooks[0].Webhooks[0]
	if *w.FailurePolicy != admissionregv1.Fail || *w.SideEffects != admissionregv1.SideEffectClassNone ||
		*w.ReinvocationPolicy != admissionregv1.IfNeededReinvocationPolicy || w.TimeoutSeconds == nil || *w.TimeoutSeconds > 10 {
		t.Errorf("webhook: failurePolicy %v sideEffects %v reinvocation %v timeout %v", *w.FailurePolicy, *w.SideEffects, *w.ReinvocationPolicy, w.TimeoutSeconds)
	}
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{inject.LabelEnrolled: "true", "kubernetes.io/metadata.name": "shop"}, true},
		{map[string]string{"kubernetes.io/metadata.name": "shop"}, false},
		{map[string]string{inject.LabelEnrolled: "false", "kubernetes.io/metadata.name": "shop"}, false},
		{map[string]string{inject.LabelEnrolled: "true", "kubernetes.io/metadata.name": inject.DefaultNamespace}, false},
	} {
		if got := sel.Matches(labelSet(tc.labels)); got != tc.want {
			t.Errorf("namespaceSelector on %v: %v, want %v", tc.labels, got, tc.want)
		}
	}

	c := kubetest.Shared(t)
	ctx := context.Background()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	h := hooks[0].DeepCopy()
	h.Name = "warden-inject-dryrun"
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, h, dry); err != nil {
		t.Errorf("webhook.yaml rejected by the API server: %v", err)
	}
	var nsName string
	for _, d := range docs(t, filepath.Join(deployDir, "injector.yaml")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(d, &meta); err != nil {
			t.Fatal(err)
		}
		var err error
		switch meta.Kind {
		case "Namespace":
			var o corev1.Namespace
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				nsName = o.Name
				_, err = c.Client.CoreV1().Namespaces().Create(ctx, &o, dry)
			}
		case "ServiceAccount":
			var o corev1.ServiceAccount
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				_, err = c.Client.CoreV1().ServiceAccounts("default").Create(ctx, withNS(&o), dry)
			}
		case "Service":
			var o corev1.Service
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				_, err = c.Client.CoreV1().Services("default").Create(ctx, withNS(&o), dry)
			}
		case "Deployment":
			var o appsv1.Deployment
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				_, err = c.Client.AppsV1().Deployments("default").Create(ctx, withNS(&o), dry)
			}
		case "ClusterRole":
			var o rbacv1.ClusterRole
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				_, err = c.Client.RbacV1().ClusterRoles().Create(ctx, &o, dry)
			}
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			if err = yaml.UnmarshalStrict(d, &o); err == nil {
				_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &o, dry)
			}
		default:
			t.Errorf("injector.yaml: unexpected kind %q", meta.Kind)
		}
		if err != nil {
			t.Errorf("injector.yaml %s: %v", meta.Kind, err)
		}
	}
	if nsName != inject.DefaultNamespace {
		t.Errorf("injector.yaml namespace %q, want %q", nsName, inject.DefaultNamespace)
	}
	for _, d := range docs(t, filepath.Join(deployDir, "certificate.yaml")) {
		var o struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
			Spec              map[string]any `json:"spec"`
		}
		if err := yaml.UnmarshalStrict(d, &o); err != nil || o.APIVersion != "cert-manager.io/v1" {
			t.Errorf("certificate.yaml: %v %s", err, o.APIVersion)
		}
	}
}

// withNS moves a namespaced object to "default" for the dry run (the
// injector's namespace does not exist in the test cluster).
func withNS[T metav1.Object](o T) T {
	o.SetNamespace("default")
	return o
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}
