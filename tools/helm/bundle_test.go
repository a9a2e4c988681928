package helm_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/inject/admission"
	"github.com/warden-egress/warden/internal/kubetest"
)

// paramsArgs is the sidecar args the release's admission parameters pin.
func paramsArgs(t *testing.T, r *rendered) []string {
	t.Helper()
	return strings.Split(string(r.configMapData(t, admission.ParamsName, "args")), "\n")
}

// TestSidecarsFollowTheBundleService: in the bundle mode every sidecar's
// configuration follows the release's own bundle service (its Service's
// name and port, a name its certificate carries), trusts the keys the
// service accepts publishes from, carries no policy of its own, and its
// trust roots digest to the --bundle-pin the admission parameters pin.
func TestSidecarsFollowTheBundleService(t *testing.T) {
	m := modes[slices.IndexFunc(modes, func(m mode) bool { return m.name == "bundle" })]
	r := mustRender(t, m)
	in := injector(t, r)
	b := in.Config().Bundle
	if b == nil {
		t.Fatal("the injector configuration has no bundle section")
	}
	var keys []string
	for _, k := range b.TrustedKeys {
		keys = append(keys, k.ID+"="+k.PublicKey)
	}
	checkFollowsService(t, r, m, "sidecars", b.URL, keys)
	if b.CA == "" || b.Fleet != "eks-prod" {
		t.Errorf("bundle section: ca %d bytes, fleet %q", len(b.CA), b.Fleet)
	}
	if want := "Every injected sidecar takes its policy from " + b.URL + " (fleet eks-prod),\n  signed by sec-2026-01, sec-2026-07;"; !strings.Contains(r.notes, want) {
		t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
	}
	pin := b.TrustRoots().Pin()
	if args := paramsArgs(t, r); !slices.Equal(args, []string{"serve", "--config-env", inject.ConfigEnv, "--bundle-pin", pin}) {
		t.Errorf("the admission parameters pin args %q, want the injector's pin %s", args, pin)
	}
	for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
		sc, err := config.ParseConfig(in.SidecarConfig(mode))
		if err != nil {
			t.Fatalf("%s sidecar config: %v", mode, err)
		}
		// What `warden serve --bundle-pin` compares on the sidecar's side.
		if sc.Bundle == nil || sc.Bundle.TrustRoots().Pin() != pin || len(sc.Apps) != 0 {
			t.Errorf("%s sidecar: bundle %+v apps %d, pin want %s", mode, sc.Bundle, len(sc.Apps), pin)
		}
	}
}

// TestSharedProxyFollowsTheBundleService: with sharedProxy.bundle the shared
// proxy's configuration follows the release's bundle service (its Service's
// name and port, a name its certificate carries) over TLS with the CA given,
// trusts the keys the service accepts publishes from, places itself in the
// release's namespace and the fleet given, keeps its last good bundle on a
// writable volume, and holds no policy of its own (so `warden serve` takes
// it from bundles only).
func TestSharedProxyFollowsTheBundleService(t *testing.T) {
	m := modes[slices.IndexFunc(modes, func(m mode) bool { return m.name == "shared-bundle" })]
	r := mustRender(t, m)
	data := r.configMapData(t, "warden-proxy", "warden.yaml")
	cfg, err := config.ParseConfig(data)
	if err != nil {
		t.Fatalf("the shared proxy's config: %v\n%s", err, data)
	}
	b := cfg.Bundle
	if b == nil {
		t.Fatalf("the shared proxy's config has no bundle section:\n%s", data)
	}
	if len(cfg.Apps) != 0 || len(cfg.Deny) != 0 {
		t.Errorf("the shared proxy's config holds %d apps and %d deny rules beside its bundle section", len(cfg.Apps), len(cfg.Deny))
	}
	var keys []string
	for _, k := range b.TrustedKeys {
		keys = append(keys, k.ID+"="+k.PublicKey)
	}
	checkFollowsService(t, r, m, "the shared proxy", b.URL, keys)
	if b.CertPool() == nil || b.Fleet != "eks-shared" || b.Namespace != m.namespace || b.Wait != 20*time.Second {
		t.Errorf("bundle section: ca %d bytes, fleet %q, namespace %q, wait %v", len(b.CAPEM), b.Fleet, b.Namespace, b.Wait)
	}
	// The cache is on a writable volume of the proxy's container (the root
	// filesystem is read-only), so a container restart keeps the last good bundle.
	cs, _, _ := unstructured.NestedSlice(r.find("Deployment", "warden-proxy").Object, "spec", "template", "spec", "containers")
	writable := false
	for _, vm := range cs[0].(map[string]any)["volumeMounts"].([]any) {
		mp := vm.(map[string]any)
		if ro, _ := mp["readOnly"].(bool); !ro && strings.HasPrefix(b.CacheDir+"/", strings.TrimSuffix(mp["mountPath"].(string), "/")+"/") {
			writable = true
		}
	}
	if b.CacheDir == "" || !writable {
		t.Errorf("bundle.cache_dir %q is on no writable volume of the shared proxy", b.CacheDir)
	}
	if want := "Policy: signed bundles from " + b.URL + " (namespace " + m.namespace + ", fleet eks-shared),\n  signed by sec-2026-01."; !strings.Contains(r.notes, want) {
		t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
	}
}

// TestBundleServiceS3: with bundle.store an S3 prefix the service reads and
// writes it (`bundle serve --dir s3://…` and the region) with its service
// account's role, mounts no bundle volume and makes no claim, rolls instead
// of recreating, and runs several replicas under a PodDisruptionBudget; on
// a volume (the bundle mode) it keeps one writer: one replica, Recreate.
func TestBundleServiceS3(t *testing.T) {
	for _, c := range []struct {
		mode     string
		dir      string
		replicas int64
		recreate bool
		pdb      bool
	}{
		{"shared-bundle", "s3://platform-warden-bundles/prod/", 2, false, true},
		{"bundle", "/var/lib/warden-bundles", 1, true, false},
	} {
		t.Run(c.mode, func(t *testing.T) {
			m := modes[slices.IndexFunc(modes, func(m mode) bool { return m.name == c.mode })]
			r := mustRender(t, m)
			d := r.find("Deployment", "warden-bundles")
			rv, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas")
			replicas, _ := strconv.ParseInt(fmt.Sprint(rv), 10, 64)
			strategy, _, _ := unstructured.NestedString(d.Object, "spec", "strategy", "type")
			if replicas != c.replicas || (strategy == "Recreate") != c.recreate {
				t.Errorf("replicas %d strategy %q, want %d recreate=%v", replicas, strategy, c.replicas, c.recreate)
			}
			cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			var args []string
			for _, a := range cs[0].(map[string]any)["args"].([]any) {
				args = append(args, a.(string))
			}
			if !slices.Contains(args, "--dir="+c.dir) {
				t.Errorf("args %q lack --dir=%s", args, c.dir)
			}
			vols, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
			hasBundles := slices.ContainsFunc(vols, func(v any) bool { return v.(map[string]any)["name"] == "bundles" })
			if s3 := strings.HasPrefix(c.dir, "s3://"); s3 {
				if !slices.Contains(args, "--s3-region=us-east-1") || hasBundles {
					t.Errorf("S3 store: args %q, a bundles volume %v", args, hasBundles)
				}
				sa := r.find("ServiceAccount", "warden-bundles")
				if sa.GetAnnotations()["eks.amazonaws.com/role-arn"] == "" {
					t.Errorf("the service account carries no role for the S3 store: %v", sa.GetAnnotations())
				}
			} else if !hasBundles {
				t.Error("a volume store without the bundles volume")
			}
			if (r.find("PodDisruptionBudget", "warden-bundles") != nil) != c.pdb {
				t.Errorf("PodDisruptionBudget warden-bundles rendered %v, want %v", !c.pdb, c.pdb)
			}
		})
	}
}

// bundleVariant is a named set of values.
type bundleVariant struct {
	name string
	vals map[string]any
}

// bundleVariants are the shapes of sidecar.bundle TestBundlePinMatchesInject
// pins and TestServerSideDryRun applies: defaulted and explicit URL, keys in
// any order, no CA, an S3 prefix and its endpoint, a fleet in UTF-8.
func bundleVariants(t testing.TB) []bundleVariant {
	base := modeValues(t, "bundle")
	keys := []any{
		map[string]any{"id": "z-2027", "publicKey": "UvKwXnqyPZWFe7vCHNhqm4tl+PvLXLO1Vw6v6DJP6q4="},
		map[string]any{"id": "a-2026", "publicKey": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
	}
	ext := setValue(setValue(base, "sidecar.bundle.url", "https://bundles.corp.example:8443"), "sidecar.bundle.caPEM", "")
	s3 := setValue(setValue(ext, "sidecar.bundle.url", "s3://corp-policy/eks/"), "sidecar.bundle.s3",
		map[string]any{"region": "eu-west-1", "endpoint": "https://bucket.vpce-0a1b2c3d-4e5f.s3.eu-west-1.vpce.amazonaws.com", "pathStyle": true})
	return []bundleVariant{
		{"the chart's service", base},
		{"another fleet", setValue(base, "sidecar.bundle.fleet", "eks-prod-é€")},
		{"no fleet", setValue(base, "sidecar.bundle.fleet", "")},
		{"own keys, unsorted", setValue(base, "sidecar.bundle.trustedKeys", keys)},
		{"one key", setValue(base, "sidecar.bundle.trustedKeys", keys[1:])},
		{"external service, system roots", ext},
		{"s3 prefix", s3},
		{"s3 prefix, no endpoint", setValue(s3, "sidecar.bundle.s3", map[string]any{"region": "eu-west-1"})},
		{"wait and retry (not trust roots)", setValue(setValue(base, "sidecar.bundle.wait", "0s"), "sidecar.bundle.retry", "2s")},
	}
}

// TestBundlePinMatchesInject: the pin the chart's template computes equals
// the injector's (Go) for every shape of trust roots — defaulted and
// explicit URL, keys in any order, no CA, an S3 prefix and its endpoint, a
// fleet in UTF-8 (lengths are bytes) — and each trust root changes it.
func TestBundlePinMatchesInject(t *testing.T) {
	base := modeValues(t, "bundle")
	v := map[string]map[string]any{}
	for _, tc := range bundleVariants(t) {
		v[tc.name] = tc.vals
	}
	ext, s3 := v["external service, system roots"], v["s3 prefix"]
	for _, tc := range bundleVariants(t) {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, tc.vals, "warden-system")
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			checkAdmissionMatches(t, r)
			want := injector(t, r).Config().Bundle.TrustRoots().Pin()
			args := paramsArgs(t, r)
			if got := args[len(args)-1]; got != want {
				t.Errorf("the chart pins %s, the injector computes %s", got, want)
			}
		})
	}
	pins := map[string]string{}
	for _, tc := range []struct {
		name string
		vals map[string]any
	}{
		{"base", base}, {"fleet", setValue(base, "sidecar.bundle.fleet", "eks-dev")},
		{"keys", v["own keys, unsorted"]}, {"url", setValue(base, "sidecar.bundle.url", "https://bundles.corp.example")},
		{"ca", setValue(ext, "sidecar.bundle.caPEM", base["sidecar"].(map[string]any)["bundle"].(map[string]any)["caPEM"])},
		{"no ca", ext}, {"s3", s3},
	} {
		r, err := render(t, tc.vals, "warden-system")
		if err != nil {
			t.Fatalf("%s: render: %v", tc.name, err)
		}
		args := paramsArgs(t, r)
		pin := args[len(args)-1]
		if prev, ok := pins[pin]; ok {
			t.Errorf("%s and %s pin the same %s", prev, tc.name, pin)
		}
		pins[pin] = tc.name
	}
}

// TestBundleCAFromCluster: sidecar.bundle.caFrom reads the service's CA
// from a Secret or ConfigMap of the release's namespace at install (Helm's
// lookup, on a real API server), and the pin covers what it read.
func TestBundleCAFromCluster(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	installCRDs(t, ctx, c, "testdata/crds/cert-manager.yaml")
	const ns = "warden-ca-from"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	base := modeValues(t, "bundle")
	pem := base["sidecar"].(map[string]any)["bundle"].(map[string]any)["caPEM"].(string)
	base = setValue(base, "sidecar.bundle.caPEM", "")
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "corp-ca"},
		Data: map[string][]byte{"ca.crt": []byte(pem)}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "corp-roots"},
		Data: map[string]string{"roots.pem": pem}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		from       map[string]any
	}{
		{"secret", "", map[string]any{"secret": "corp-ca", "key": "ca.crt"}},
		{"configMap", "", map[string]any{"configMap": "corp-roots", "key": "roots.pem"}},
		{"missing key", `Secret warden-ca-from/corp-ca has no key "tls.crt"`, map[string]any{"secret": "corp-ca", "key": "tls.crt"}},
		{"missing object", `ConfigMap warden-ca-from/nope has no key`, map[string]any{"configMap": "nope", "key": "ca.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderOnCluster(t, c, setValue(base, "sidecar.bundle.caFrom", tc.from), ns)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("render: %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got := injector(t, r).Config().Bundle.CA; got != pem {
				t.Fatalf("the injector's bundle CA is %q, want the %s's", got, tc.name)
			}
			checkAdmissionMatches(t, r)
		})
	}
}

// renderOnCluster renders the chart as `helm install --dry-run=server`
// does: lookup reads the cluster c, nothing is created.
func renderOnCluster(t *testing.T, c *kubetest.Cluster, vals map[string]any, namespace string) (*rendered, error) {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	flags.Namespace = &namespace
	cfg := action.NewConfiguration()
	if err := cfg.Init(flags, namespace, "memory"); err != nil {
		t.Fatal(err)
	}
	// tools/kube's API server, built from source, reports v0.0.0-master:
	// give the version it is, as TestServerSideDryRun's renders do.
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Capabilities = common.DefaultCapabilities.Copy()
	cfg.Capabilities.KubeVersion = *kv
	in := action.NewInstall(cfg)
	in.DryRunStrategy = action.DryRunServer
	in.ReleaseName = "warden"
	in.Namespace = namespace
	rel, err := in.RunWithContext(context.Background(), loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("install returned %T", rel)
	}
	objs, err := decodeObjects([]byte(r.Manifest))
	if err != nil {
		t.Fatalf("rendered manifest: %v", err)
	}
	return &rendered{objects: objs, notes: r.Info.Notes}, nil
}

// checkFollowsService: who (sidecars, the shared proxy) follows the
// chart's bundle service at its Service name and port over https, the
// service's certificate names that host, and who trusts exactly the keys
// (ID=public key) the service accepts publishes from.
func checkFollowsService(t *testing.T, r *rendered, m mode, who, bundleURL string, keys []string) {
	t.Helper()
	u, err := url.Parse(bundleURL)
	if err != nil {
		t.Fatal(err)
	}
	svc := r.find("Service", "warden-bundles")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if want := fmt.Sprintf("warden-bundles.%s.svc:%v", m.namespace, ports[0].(map[string]any)["port"]); u.Scheme != "https" || u.Host != want {
		t.Errorf("%s follow %s, want https://%s", who, bundleURL, want)
	}
	names, _, _ := unstructured.NestedStringSlice(r.find("Certificate", "warden-bundles").Object, "spec", "dnsNames")
	if !slices.Contains(names, u.Hostname()) {
		t.Errorf("the service's certificate names %v, not %s", names, u.Hostname())
	}
	var trust []string
	cs, _, _ := unstructured.NestedSlice(r.find("Deployment", "warden-bundles").Object, "spec", "template", "spec", "containers")
	for _, a := range cs[0].(map[string]any)["args"].([]any) {
		if v, ok := strings.CutPrefix(a.(string), "--trust="); ok {
			trust = append(trust, v)
		}
	}
	if !slices.Equal(trust, keys) || len(keys) == 0 {
		t.Errorf("%s trust %q, the service %q", who, keys, trust)
	}
}
