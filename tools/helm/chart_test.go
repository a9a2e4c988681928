package helm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/inject/admission"
	"github.com/warden-egress/warden/internal/kubetest"
	"github.com/warden-egress/warden/proxy"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// chartDir is the chart under test.
var chartDir = filepath.Join("..", "..", "deploy", "helm", "warden")

// kubeVersion is what the chart is rendered for: the kube-apiserver of
// tools/kube (internal/kubetest), which the manifests are applied to.
const kubeVersion = "v1.36.3"

// A mode is one values file of testdata/values rendered into a namespace,
// and the objects (kind/name) it must and must not produce.
type mode struct {
	name      string
	namespace string
	want      []string
	absent    []string
	// others are namespaces besides the release's the mode puts objects
	// in (the central mode's egress NetworkPolicies).
	others []string
}

var modes = []mode{
	{
		name: "default", namespace: "warden-system",
		want: []string{"ConfigMap/warden-inject", "Deployment/warden-inject", "Service/warden-inject", "ServiceAccount/warden-inject",
			"ClusterRole/warden-inject", "ClusterRoleBinding/warden-inject", "PodDisruptionBudget/warden-inject",
			"MutatingWebhookConfiguration/warden-inject", "Issuer/warden-selfsigned", "Certificate/warden-inject",
			"ConfigMap/warden-admission-params", "ValidatingAdmissionPolicy/warden-pods"},
		absent: []string{"Deployment/warden-bundles", "Deployment/warden-proxy", "PrometheusRule/warden"},
	},
	{
		name: "secret-tls", namespace: "platform",
		want:   []string{"Deployment/warden-inject", "MutatingWebhookConfiguration/warden-inject", "ConfigMap/warden-admission-params"},
		absent: []string{"Issuer/warden-selfsigned", "Certificate/warden-inject"},
	},
	{
		name: "bundle", namespace: "warden-system",
		want: []string{"Deployment/warden-inject", "Deployment/warden-bundles", "Service/warden-bundles", "PersistentVolumeClaim/warden-bundles-data",
			"Certificate/warden-bundles", "Certificate/warden-inject"},
		absent: []string{"Issuer/warden-selfsigned"},
	},
	{
		name: "shared-proxy", namespace: "egress",
		want: []string{"Deployment/warden-subnet-a", "Service/warden-subnet-a", "ConfigMap/warden-subnet-a", "PodDisruptionBudget/warden-subnet-a",
			"ClusterRole/egress-warden-subnet-a", "ClusterRoleBinding/egress-warden-subnet-a", "Certificate/warden-subnet-a", "Issuer/warden-selfsigned"},
		absent: []string{"Deployment/warden-inject", "MutatingWebhookConfiguration/warden-inject", "ConfigMap/warden-admission-params",
			"ValidatingAdmissionPolicy/warden-pods"},
	},
	{
		name: "central", namespace: "egress",
		want: []string{"Deployment/warden-central", "Service/warden-central", "ConfigMap/warden-central", "PodDisruptionBudget/warden-central",
			"HorizontalPodAutoscaler/warden-central", "NetworkPolicy/warden-central", "NetworkPolicy/warden-central-bedrock-egress",
			"ClusterRole/egress-warden-central", "ClusterRoleBinding/egress-warden-central", "Certificate/warden-central"},
		absent: []string{"Deployment/warden-inject", "ConfigMap/warden-admission-params", "ValidatingAdmissionPolicy/warden-pods"},
		others: []string{"shop", "reports"},
	},
	{
		name: "shared-bundle", namespace: "warden-system",
		want: []string{"Deployment/warden-proxy", "ConfigMap/warden-proxy", "Deployment/warden-bundles", "Service/warden-bundles",
			"Certificate/warden-bundles", "Certificate/warden-proxy", "PodDisruptionBudget/warden-bundles"},
		absent: []string{"Deployment/warden-inject", "Issuer/warden-selfsigned", "ValidatingAdmissionPolicy/warden-pods", "ConfigMap/warden-admission-params",
			"PersistentVolumeClaim/warden-bundles-data"},
	},
	{
		name: "all", namespace: "warden-system",
		want: []string{"Deployment/warden-inject", "Deployment/warden-bundles", "Deployment/warden-proxy", "Certificate/warden-proxy",
			"ValidatingAdmissionPolicyBinding/warden-pods", "PrometheusRule/warden"},
		absent: []string{"PersistentVolumeClaim/warden-bundles-data"},
	},
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	return ch
}

func modeValues(t testing.TB, name string) map[string]any {
	t.Helper()
	v, err := common.ReadValuesFile(filepath.Join("testdata", "values", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rendered is one release rendered the way `helm template` renders it.
type rendered struct {
	objects []*unstructured.Unstructured
	notes   string
	// sources are the templates that produced a manifest (Helm's
	// "# Source: CHART/templates/..." lines).
	sources map[string]bool
}

// render renders the chart with vals into namespace through the SDK's
// install action, client-only (what `helm template` does): values schema,
// templates, hooks and NOTES.txt.
func render(t testing.TB, vals map[string]any, namespace string) (*rendered, error) {
	t.Helper()
	in := action.NewInstall(action.NewConfiguration())
	in.DryRunStrategy = action.DryRunClient
	in.ReleaseName = "warden"
	in.Namespace = namespace
	in.Replace = true
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	in.KubeVersion = kv
	rel, err := in.RunWithContext(context.Background(), loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("install returned %T", rel)
	}
	manifest := r.Manifest
	for _, h := range r.Hooks {
		manifest += "\n---\n" + h.Manifest
	}
	objs, err := decodeObjects([]byte(manifest))
	if err != nil {
		t.Fatalf("rendered manifest: %v\n%s", err, manifest)
	}
	sources := map[string]bool{}
	for _, l := range strings.Split(manifest, "\n") {
		if src, ok := strings.CutPrefix(l, "# Source: warden/"); ok {
			sources[strings.TrimSpace(src)] = true
		}
	}
	return &rendered{objects: objs, notes: r.Info.Notes, sources: sources}, nil
}

func mustRender(t testing.TB, m mode) *rendered {
	t.Helper()
	r, err := render(t, modeValues(t, m.name), m.namespace)
	if err != nil {
		t.Fatalf("render %s: %v", m.name, err)
	}
	return r
}

// decodeObjects splits a multi-document YAML stream into objects, dropping
// empty documents.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func (r *rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r *rendered) configMapData(t testing.TB, name, key string) []byte {
	t.Helper()
	cm := r.find("ConfigMap", name)
	if cm == nil {
		t.Fatalf("no ConfigMap %s", name)
	}
	s, ok, err := unstructured.NestedString(cm.Object, "data", key)
	if err != nil || !ok {
		t.Fatalf("ConfigMap %s has no data.%s (%v)", name, key, err)
	}
	return []byte(s)
}

// TestLint runs the SDK's lint rules (what `helm lint --strict` runs:
// Chart.yaml, values and its schema, every template rendered and parsed,
// deprecated APIs for the cluster's version) with each mode's values:
// a warning fails as an error does.
func TestLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := lint.RunAll(chartDir, modeValues(t, m.name), m.namespace, lint.WithKubeVersion(kv))
			for _, msg := range l.Messages {
				if msg.Severity >= support.WarningSev {
					t.Errorf("lint: %s", msg)
				} else {
					t.Logf("lint: %s", msg)
				}
			}
		})
	}
}

// TestRenderModes renders every mode and checks which objects each makes,
// that every object is namespaced in the release's namespace or is cluster
// scoped, and what NOTES.txt tells the installer.
func TestRenderModes(t *testing.T) {
	clusterScoped := []string{"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := mustRender(t, m)
			for _, w := range m.want {
				kind, name, _ := strings.Cut(w, "/")
				if r.find(kind, name) == nil {
					t.Errorf("%s is missing", w)
				}
			}
			for _, a := range m.absent {
				kind, name, _ := strings.Cut(a, "/")
				if r.find(kind, name) != nil {
					t.Errorf("%s is rendered, want none", a)
				}
			}
			seen := map[string]bool{}
			for _, o := range r.objects {
				id := o.GetKind() + "/" + o.GetName()
				if o.GetNamespace() != m.namespace && slices.Contains(m.others, o.GetNamespace()) {
					id = o.GetNamespace() + "/" + id
					if o.GetKind() != "NetworkPolicy" {
						t.Errorf("%s: only NetworkPolicies go to namespaces other than the release's", id)
					}
					continue
				}
				if seen[id] {
					t.Errorf("%s rendered twice", id)
				}
				seen[id] = true
				if slices.Contains(clusterScoped, o.GetKind()) {
					if o.GetNamespace() != "" {
						t.Errorf("%s: cluster-scoped object with namespace %q", id, o.GetNamespace())
					}
				} else if o.GetNamespace() != m.namespace {
					t.Errorf("%s: namespace %q, want the release's %q", id, o.GetNamespace(), m.namespace)
				}
			}
			if !strings.Contains(r.notes, m.namespace) {
				t.Errorf("NOTES.txt does not name the namespace %s:\n%s", m.namespace, r.notes)
			}
			for kind, hint := range map[string]string{
				"MutatingWebhookConfiguration/warden-inject": "warden-egress.io/enrolled=true",
				"Deployment/warden-bundles":                  "warden policy publish",
				"Deployment/warden-proxy":                    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://warden-proxy." + m.namespace,
				"Deployment/warden-subnet-a":                 "HTTPS_PROXY=http://warden-subnet-a." + m.namespace,
			} {
				k, n, _ := strings.Cut(kind, "/")
				if r.find(k, n) != nil && !strings.Contains(r.notes, hint) {
					t.Errorf("NOTES.txt lacks %q for %s:\n%s", hint, kind, r.notes)
				}
			}
		})
	}
}

// TestRenderedConfigsValid: the injector configuration the chart writes is
// one `warden inject` starts with (every mode's sidecar configuration passes
// what `warden policy validate` checks), and so is the shared proxy's.
func TestRenderedConfigsValid(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, what string, data []byte) {
		t.Helper()
		cfg, err := config.ParseConfig(data)
		if err == nil {
			err = proxy.CheckConfig(ctx, cfg)
		}
		if err != nil {
			t.Errorf("%s is invalid:\n%s\n%s", what, strings.Join(config.Diagnostics(what, data, err), "\n"), data)
		}
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := mustRender(t, m)
			if r.find("ConfigMap", "warden-inject") != nil {
				in := injector(t, r)
				if got := in.Config().Namespace; got != m.namespace {
					t.Errorf("injector namespace %q, want %q", got, m.namespace)
				}
				for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
					check(t, mode+" sidecar config", in.SidecarConfig(mode))
				}
			}
			for _, o := range r.objects {
				if o.GetKind() == "Deployment" && o.GetLabels()["app.kubernetes.io/component"] == "shared-proxy" {
					check(t, o.GetName()+"/warden.yaml", r.configMapData(t, o.GetName(), "warden.yaml"))
				}
			}
		})
	}
}

// injector builds the injector `warden inject --config` would run from the
// configuration the chart rendered.
func injector(t testing.TB, r *rendered) *inject.Injector {
	t.Helper()
	data := r.configMapData(t, "warden-inject", "config.yaml")
	cfg, err := inject.ParseConfig(data)
	if err != nil {
		t.Fatalf("the chart's injector config: %v\n%s", err, data)
	}
	in, err := inject.New(cfg, "test")
	if err != nil {
		t.Fatalf("the chart's injector config: %v", err)
	}
	return in
}

// TestAdmissionMatchesPrintPolicies: the chart's admission objects (the
// parameters ConfigMap, the policies and their bindings) are exactly what
// `warden inject --print-policies` prints for the injector configuration the
// same release renders, so the two cannot drift. In the bundle mode that
// includes the sidecar's `--bundle-pin`, which the chart computes in a
// template and the injector in Go (bundle.TrustRoots.Pin).
func TestAdmissionMatchesPrintPolicies(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := mustRender(t, m)
			if r.find("ConfigMap", admission.ParamsName) == nil {
				// A mode without the policies says so (TestRenderModes checks it).
				if !slices.Contains(m.absent, "ConfigMap/"+admission.ParamsName) {
					t.Fatalf("mode %s renders no %s and does not list it as absent", m.name, admission.ParamsName)
				}
				return
			}
			checkAdmissionMatches(t, r)
		})
	}
}

// checkAdmissionMatches compares r's admission objects with what
// `warden inject --print-policies` prints for r's injector configuration.
func checkAdmissionMatches(t *testing.T, r *rendered) {
	t.Helper()
	p, err := injector(t, r).AdmissionParams()
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	if err := admission.WriteManifests(&printed, p); err != nil {
		t.Fatal(err)
	}
	want, err := decodeObjects(printed.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetLabels()["app.kubernetes.io/component"] == "admission" {
			got = append(got, o)
		}
	}
	key := func(o *unstructured.Unstructured) string { return o.GetKind() + "/" + o.GetName() }
	byKey := func(objs []*unstructured.Unstructured) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, o := range objs {
			out[key(o)] = o.Object
		}
		return out
	}
	if diff := cmp.Diff(byKey(want), byKey(got)); diff != "" {
		t.Errorf("the chart's admission objects differ from `warden inject --print-policies` (-printed +chart):\n%s", diff)
	}
	// And they are a set admission.Decode accepts: bindings name defined
	// policies and read the parameters from the release's namespace.
	var stream bytes.Buffer
	for _, o := range got {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		stream.WriteString("---\n")
		stream.Write(b)
	}
	if _, err := admission.Decode(stream.Bytes()); err != nil {
		t.Errorf("admission.Decode of the chart's objects: %v", err)
	}
}

// TestAdmissionFilesVerbatim: the chart's copies of the policies are the
// embedded manifests, byte for byte (the parameters are generated).
func TestAdmissionFilesVerbatim(t *testing.T) {
	files, err := admission.Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(chartDir, "files", "admission")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range entries {
		have = append(have, e.Name())
	}
	var want []string
	for _, f := range files {
		if strings.HasPrefix(f.Name, "00-params") {
			continue
		}
		want = append(want, f.Name)
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Errorf("%v (run go test ./inject/admission -run TestDeployCopies -update)", err)
			continue
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s differs from inject/admission/manifests/%s (run go test ./inject/admission -run TestDeployCopies -update)", filepath.Join(dir, f.Name), f.Name)
		}
	}
	if !slices.Equal(have, want) {
		t.Errorf("%s holds %v, want %v (the manifests but 00-params)", dir, have, want)
	}
}

// TestRenderRefuses: values the chart cannot turn into a working, fail-closed
// install are refused at render time, naming the value.
func TestRenderRefuses(t *testing.T) {
	set := setValue
	def := modeValues(t, "default")
	bun := modeValues(t, "bundle")
	shb := modeValues(t, "shared-bundle")
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"chart defaults alone", map[string]any{}, "image.digest is required"},
		{"no role", set(def, "sidecar.roleArn", ""), "sidecar.roleArn is required"},
		{"no region", set(def, "sidecar.region", ""), "sidecar.region is required"},
		{"tag instead of digest", set(set(def, "image.digest", ""), "image.tag", "latest"), "image.digest is required with injector.enabled"},
		{"short digest", set(def, "image.digest", "sha256:abc"), `image.digest "sha256:abc"`},
		{"previous image by tag", set(def, "admission.previousImages", []any{"ghcr.io/warden-egress/warden:0.0.9"}), "is not pinned by digest"},
		{"no platform group", set(def, "admission.platformGroups", []any{}), "admission.platformGroups"},
		{"no caBundle without cert-manager", set(def, "tls.certManager.enabled", false), "injector.tls.caBundle is required"},
		{"bundle without keys", set(def, "bundle.enabled", true), "bundle.trustedKeys"},
		{"unknown top-level key", set(def, "injektor", map[string]any{"enabled": true}), "injektor"},
		{"mode typo", set(def, "injector.webhook.failurePolicy", "Ignore"), "failurePolicy"},
		{"sidecar bundle without a url or service", set(set(bun, "bundle.enabled", false), "sidecar.bundle.url", ""), "sidecar.bundle.url is required"},
		{"sidecar bundle over http", set(bun, "sidecar.bundle.url", "http://warden-bundles:8443"), "/sidecar/bundle/url"},
		{"sidecar bundle without a CA for the chart's service", set(bun, "sidecar.bundle.caPEM", ""), "caPEM or caFrom is required"},
		{"sidecar bundle on a self-signed service", set(bun, "tls.certManager.issuerRef", map[string]any{}), "needs a CA that outlives"},
		{"sidecar bundle beside apps", set(bun, "sidecar.policy.apps", []any{map[string]any{"name": "x"}}), "sidecar.policy.apps: with sidecar.bundle.enabled"},
		{"sidecar bundle with caPEM and caFrom", set(bun, "sidecar.bundle.caFrom", map[string]any{"secret": "corp-ca", "key": "ca.crt"}), "caPEM or caFrom, not both"},
		{"sidecar bundle caFrom without a cluster", set(set(bun, "sidecar.bundle.caPEM", ""), "sidecar.bundle.caFrom", map[string]any{"secret": "corp-ca", "key": "ca.crt"}), "cannot read the cluster"},
		{"sidecar bundle caFrom naming both", set(set(bun, "sidecar.bundle.caPEM", ""), "sidecar.bundle.caFrom", map[string]any{"secret": "a", "configMap": "b", "key": "ca.crt"}), "name one secret or one configMap"},
		{"sidecar bundle without keys", set(set(set(bun, "bundle.enabled", false), "bundle.trustedKeys", []any{}), "sidecar.bundle.url", "https://bundles.corp.example"), "sidecar.bundle.trustedKeys"},
		{"sidecar bundle key typo", set(bun, "sidecar.bundle.trustedKeys", []any{map[string]any{"id": "k", "public_key": "x"}}), "public_key"},
		{"bundle service replicas on a volume", set(bun, "bundle.replicas", 2), "bundle.replicas 2: bundles published to a volume have one writer"},
		{"bundle service store not S3", set(bun, "bundle.store", "gs://bucket/prefix"), "/bundle/store"},
		{"shared proxy bundle beside apps", set(shb, "sharedProxy.config.apps", []any{map[string]any{"name": "x"}}), "sharedProxy.config.apps: with sharedProxy.bundle.enabled"},
		{"shared proxy bundle beside its own bundle section", set(shb, "sharedProxy.config.bundle", map[string]any{"url": "https://x"}), "sharedProxy.config.bundle: with sharedProxy.bundle.enabled"},
		{"shared proxy bundle without a CA for the chart's service", set(shb, "sharedProxy.bundle.caPEM", ""), "sharedProxy.bundle: caPEM or caFrom is required"},
		{"shared proxy bundle without a url or service", set(shb, "bundle.enabled", false), "sharedProxy.bundle.url is required"},
		{"shared proxy bundle over http", set(shb, "sharedProxy.bundle.url", "http://warden-bundles:8443"), "/sharedProxy/bundle/url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.vals, "warden-system")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// setValue returns a copy of base with the value at path (a.b.c) set to v.
func setValue(base map[string]any, path string, v any) map[string]any {
	out := deepCopy(base)
	m := out
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return out
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = deepCopy(sub)
		}
		out[k] = v
	}
	return out
}

// TestInjectorMatchesManifests: with the default values in warden-system,
// the chart's injector is the one deploy/kubernetes/injector/*.yaml installs
// (docs/kubernetes.md): the same webhook registration, RBAC, container,
// volumes and Service ports; labels and the chart's annotations aside.
func TestInjectorMatchesManifests(t *testing.T) {
	r := mustRender(t, modes[0])
	dir := filepath.Join("..", "..", "deploy", "kubernetes", "injector")
	var plain []*unstructured.Unstructured
	for _, f := range []string{"injector.yaml", "webhook.yaml", "certificate.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeObjects(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		plain = append(plain, objs...)
	}
	image := "ghcr.io/warden-egress/warden@" + modeValues(t, "default")["image"].(map[string]any)["digest"].(string)
	for _, tc := range []struct {
		kind, name string
		paths      [][]string
	}{
		{"MutatingWebhookConfiguration", "warden-inject", [][]string{{"webhooks"}, {"metadata", "annotations"}}},
		{"ClusterRole", "warden-inject", [][]string{{"rules"}}},
		{"ClusterRoleBinding", "warden-inject", [][]string{{"roleRef"}, {"subjects"}}},
		{"ServiceAccount", "warden-inject", [][]string{{"automountServiceAccountToken"}}},
		{"Service", "warden-inject", [][]string{{"spec", "ports"}}},
		{"Deployment", "warden-inject", [][]string{{"spec", "replicas"}, {"spec", "template", "spec", "containers"},
			{"spec", "template", "spec", "volumes"}, {"spec", "template", "spec", "securityContext"},
			{"spec", "template", "spec", "serviceAccountName"}}},
		{"Certificate", "warden-inject", [][]string{{"spec"}}},
	} {
		var want *unstructured.Unstructured
		for _, o := range plain {
			if o.GetKind() == tc.kind && o.GetName() == tc.name {
				want = o
			}
		}
		got := r.find(tc.kind, tc.name)
		if want == nil || got == nil {
			t.Errorf("%s/%s: in deploy/kubernetes/injector %v, in the chart %v", tc.kind, tc.name, want != nil, got != nil)
			continue
		}
		if tc.kind == "Deployment" {
			// The manifests carry a placeholder digest; the chart the values'.
			cs, _, _ := unstructured.NestedSlice(want.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				c.(map[string]any)["image"] = image
				// Kubernetes' default for an image by digest; the chart writes it.
				c.(map[string]any)["imagePullPolicy"] = "IfNotPresent"
			}
			_ = unstructured.SetNestedSlice(want.Object, cs, "spec", "template", "spec", "containers")
		}
		if tc.kind == "Certificate" {
			// The chart's labels the issuer it made; the manifests' names their own.
			_ = unstructured.SetNestedField(want.Object, "warden-selfsigned", "spec", "issuerRef", "name")
		}
		for _, p := range tc.paths {
			w, _, _ := unstructured.NestedFieldNoCopy(want.Object, p...)
			g, _, _ := unstructured.NestedFieldNoCopy(got.Object, p...)
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("%s/%s .%s differs from deploy/kubernetes/injector (-manifests +chart):\n%s", tc.kind, tc.name, strings.Join(p, "."), diff)
			}
		}
	}
}

// TestServerSideDryRun applies every object of every mode to a real
// kube-apiserver (internal/kubetest) with a server-side dry run and strict
// field validation, after installing the CRDs of cert-manager (the
// certificates) and of the Prometheus Operator (the PrometheusRule) from
// testdata/crds: schemas, defaults, and admission of the API server's
// own (ValidatingAdmissionPolicies' CEL is compiled and type-checked there).
// The Namespace is created for real (`helm install --create-namespace`).
func TestServerSideDryRun(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	installCRDs(t, ctx, c, filepath.Join("testdata", "crds", "cert-manager.yaml"))
	installCRDs(t, ctx, c, filepath.Join("testdata", "crds", "prometheus-operator.yaml"))

	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := mustRender(t, m)
			for _, name := range append([]string{m.namespace}, m.others...) {
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
				if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
			}
			dryRunApply(t, ctx, dyn, mapper, r)
		})
	}
	// The sidecar.bundle shapes TestBundlePinMatchesInject renders (an
	// external service, an S3 prefix, own keys, ...) go to the API server
	// too: every manifest a tested value set renders is applied.
	for _, v := range bundleVariants(t) {
		t.Run("bundle/"+v.name, func(t *testing.T) {
			r, err := render(t, v.vals, "warden-system")
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "warden-system"}}
			if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			dryRunApply(t, ctx, dyn, mapper, r)
		})
	}
}

// dryRunApply server-side applies (dry run, strict field validation) every
// object of r; their namespaces must exist.
func dryRunApply(t *testing.T, ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, r *rendered) {
	t.Helper()
	if len(r.objects) == 0 {
		t.Fatal("nothing rendered")
	}
	for _, o := range r.objects {
		id := o.GetKind() + "/" + o.GetName()
		gvk := o.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
		}
		body, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
			DryRun:          []string{metav1.DryRunAll},
			FieldManager:    "warden-helm-test",
			Force:           &force,
			FieldValidation: "Strict",
		})
		if err != nil {
			t.Errorf("%s: server-side dry run: %v", id, err)
		}
	}
}

// installCRDs creates the CRDs of file (for real: dry-run objects of their
// kinds need them served) and waits until they are established.
func installCRDs(t *testing.T, ctx context.Context, c *kubetest.Cluster, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	cs, err := apiextensionsclient.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		var crd apiextensionsv1.CustomResourceDefinition
		b, err := yaml.Marshal(o.Object)
		if err == nil {
			err = yaml.UnmarshalStrict(b, &crd)
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", file, o.GetName(), err)
		}
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", crd.Name, err)
		}
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", crd.Name, err)
		}
	}
}
