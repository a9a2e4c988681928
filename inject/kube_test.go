package inject_test

// These tests run the webhook against a real kube-apiserver and etcd
// (internal/kubetest). There is no kubelet, scheduler or controller manager:
// nothing runs a pod, so every assertion is on the pod as the API server
// STORED it after admission (what a kubelet would then run).

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/internal/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// webhook is the injector serving on loopback TLS and registered with the
// API server.
type webhook struct {
	in      *inject.Injector
	url     string
	caPEM   []byte
	srv     *http.Server
	metrics *prometheus.Registry
	testID  string
	certDir string // tls.crt and tls.key, read by the server's CertReloader
}

func loadInjector(t *testing.T) *inject.Injector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "injector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := inject.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(cfg, "v1.2.3-test")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// startWebhook serves the injector on 127.0.0.1 with a bootstrap
// certificate and registers a MutatingWebhookConfiguration like
// deploy/kubernetes/injector/webhook.yaml, narrowed to namespaces labelled
// with this test's id so concurrent tests do not see it.
func startWebhook(t *testing.T, c *kubetest.Cluster) *webhook {
	t.Helper()
	in := loadInjector(t)
	ss, err := inject.NewSelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ss.Write(dir); err != nil {
		t.Fatal(err)
	}
	certs, err := inject.NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := inject.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := &inject.Handler{Injector: in, Namespaces: inject.APINamespaces{Client: c.Client}, Log: zaptest.NewLogger(t), Metrics: m}
	mux := http.NewServeMux()
	mux.Handle("/inject", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: certs.TLSConfig(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	w := &webhook{in: in, url: "https://" + ln.Addr().String() + "/inject", caPEM: ss.CACert, srv: srv, metrics: reg,
		testID: strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), certDir: dir}
	w.register(t, c)
	return w
}

func (w *webhook) register(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	ifNeeded := admissionregv1.IfNeededReinvocationPolicy
	timeout := int32(5)
	cfg := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "warden-inject-" + w.testID},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "inject.warden-egress.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &w.url, CABundle: w.caPEM},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create}, Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ReinvocationPolicy:      &ifNeeded,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{inject.LabelEnrolled: "true", "warden-test": w.testID},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{inject.DefaultNamespace}}},
			},
		}},
	}
	ctx := context.Background()
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}

// namespace creates a namespace with labels (the test id added) and the
// service accounts pods name. The labels are there from creation: the API
// server reads a namespace it has not cached yet, but a label added later
// could reach its cache after the pod.
func (w *webhook) namespace(t *testing.T, c *kubetest.Cluster, labels map[string]string) string {
	t.Helper()
	l := map[string]string{"warden-test": w.testID}
	for k, v := range labels {
		l[k] = v
	}
	ns, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kt-inject-", Labels: l}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	for _, sa := range []string{"default", "checkout"} {
		c.ServiceAccount(t, ns.Name, sa)
	}
	return ns.Name
}

// waitActive waits until the API server calls the webhook for ns (it
// picks configurations up asynchronously), with server-side dry runs.
func waitActive(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), appPod("probe", nil, "app"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && findInit(p, inject.ContainerName) != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not called for %s after 60s (last: %v)", ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appPod(name string, annotations map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Spec: corev1.PodSpec{ServiceAccountName: "checkout"}}
	for _, c := range containers {
		runAs := int64(1000)
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "app:1",
			SecurityContext: &corev1.SecurityContext{RunAsUser: &runAs}})
	}
	return p
}

// restrictedPod is an app pod that meets Pod Security "restricted".
func restrictedPod(name string, annotations map[string]string) *corev1.Pod {
	p := appPod(name, annotations, "app")
	t, f := true, false
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &t,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &f
	p.Spec.Containers[0].SecurityContext.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	return p
}

func findInit(p *corev1.Pod, name string) *corev1.Container {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return &p.Spec.InitContainers[i]
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func mounts(c *corev1.Container, vol string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			return true
		}
	}
	return false
}

func create(t *testing.T, c *kubetest.Cluster, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	if _, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, p.Name, err)
	}
	stored, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func admissions(t *testing.T, w *webhook, outcome inject.Outcome) float64 {
	t.Helper()
	mfs, err := w.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "warden_inject_admissions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == string(outcome) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no warden_inject_admissions_total{outcome=%q}", outcome)
	return 0
}

// Pods created through the API server in an enrolled namespace are stored
// with the canonical sidecar, in every mode; pods elsewhere, opted out
// where allowed, are stored untouched; an opt-out where it is not allowed,
// hostNetwork and a foreign Warden-audience token are refused.
func TestWebhookOnAPIServer(t *testing.T) {
	c := kubetest.Shared(t)
	w := startWebhook(t, c)
	enrolled := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true"})
	optOutOK := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true", inject.LabelAllowOptOut: "true"})
	plain := w.namespace(t, c, nil)
	waitActive(t, c, enrolled)

	for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
		t.Run("injected/"+mode, func(t *testing.T) {
			p := appPod("app-"+mode, map[string]string{inject.AnnotationMode: mode}, "api", "worker", "ui")
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app:1"}}
			stored := create(t, c, enrolled, p)
			assertInjected(t, w.in, stored, mode, enrolled)
		})
	}

	t.Run("fake-warden-replaced", func(t *testing.T) {
		p := appPod("sneaky", nil, "app", inject.ContainerName)
		p.Spec.Containers[1].Image = "attacker/warden:latest"
		always := corev1.ContainerRestartPolicyAlways
		p.Spec.InitContainers = []corev1.Container{{Name: inject.ContainerName, Image: "attacker/warden:latest", RestartPolicy: &always,
			Args: []string{"serve", "--config", "/tmp/allow-all.yaml"}}}
		stored := create(t, c, enrolled, p)
		assertInjected(t, w.in, stored, inject.ModeEndpoint, enrolled)
		if len(stored.Spec.Containers) != 1 || stored.Spec.Containers[0].Name != "app" {
			t.Errorf("containers after replacement: %v", names(stored.Spec.Containers))
		}
	})

	for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
		t.Run("second-admission-empty-patch/"+mode, func(t *testing.T) {
			ann := map[string]string{inject.AnnotationMode: mode}
			stored := create(t, c, enrolled, appPod("once-"+mode, ann, "app", "sidecar-app"))
			// The stored (injected, defaulted) pod submitted again as a new
			// pod: the API server calls the webhook, which answers with no
			// patch.
			again := stored.DeepCopy()
			again.ObjectMeta = metav1.ObjectMeta{Name: "twice-" + mode, Annotations: stored.Annotations, Labels: stored.Labels}
			before := admissions(t, w, inject.OutcomeUnchanged)
			stored2 := create(t, c, enrolled, again)
			if got := admissions(t, w, inject.OutcomeUnchanged); got != before+1 {
				t.Errorf("unchanged admissions %v → %v, want one more", before, got)
			}
			assertInjected(t, w.in, stored2, mode, enrolled)
			// And the handler's own answer for the stored object: allowed, no patch.
			raw, _ := json.Marshal(stored)
			h := &inject.Handler{Injector: w.in, Namespaces: inject.APINamespaces{Client: c.Client}}
			resp, outcome := h.Review(context.Background(), &admissionv1.AdmissionRequest{UID: types.UID("u-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Namespace: enrolled, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}})
			if !resp.Allowed || resp.Patch != nil || outcome != inject.OutcomeUnchanged || resp.UID != "u-1" {
				t.Errorf("review of the stored pod: allowed %v patch %s outcome %s uid %s", resp.Allowed, resp.Patch, outcome, resp.UID)
			}
		})
	}

	untouched := []struct {
		name, ns string
		ann      map[string]string
	}{
		{"other-namespace", plain, nil},
		{"other-namespace-proxy-annotation", plain, map[string]string{inject.AnnotationMode: inject.ModeProxy}},
		{"opt-out-allowed", optOutOK, map[string]string{inject.AnnotationInject: "false"}},
	}
	for _, tc := range untouched {
		t.Run("untouched/"+tc.name, func(t *testing.T) {
			optedOut := admissions(t, w, inject.OutcomeOptedOut)
			stored := create(t, c, tc.ns, appPod(tc.name, tc.ann, "app"))
			if tc.ns == optOutOK && admissions(t, w, inject.OutcomeOptedOut) != optedOut+1 {
				t.Errorf("the webhook did not record the opt-out")
			}
			if len(stored.Spec.InitContainers) != 0 || len(stored.Spec.Containers[0].Env) != 0 || stored.Annotations[inject.AnnotationInjected] != "" {
				t.Errorf("pod changed: init %v env %v annotations %v", names(stored.Spec.InitContainers), stored.Spec.Containers[0].Env, stored.Annotations)
			}
			for _, v := range stored.Spec.Volumes {
				if strings.HasPrefix(v.Name, "warden-") {
					t.Errorf("volume %s added", v.Name)
				}
			}
		})
	}

	// Pod Security "restricted" (the admission policies require it on
	// enrolled namespaces) runs after the webhook: the injected pod of a
	// compliant app passes in endpoint and proxy modes; transparent mode's
	// NET_ADMIN init step cannot.
	restricted := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true", "pod-security.kubernetes.io/enforce": "restricted"})
	for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
		t.Run("pod-security-restricted/"+mode, func(t *testing.T) {
			p := restrictedPod("r-"+mode, map[string]string{inject.AnnotationMode: mode})
			_, err := c.Client.CoreV1().Pods(restricted).Create(context.Background(), p, metav1.CreateOptions{})
			if mode == inject.ModeTransparent {
				if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") || !strings.Contains(err.Error(), inject.IptablesContainerName) {
					t.Fatalf("transparent mode under restricted: %v, want a PodSecurity refusal naming %s", err, inject.IptablesContainerName)
				}
				return
			}
			if err != nil {
				t.Fatalf("restricted namespace refused the injected pod: %v", err)
			}
			stored, err := c.Client.CoreV1().Pods(restricted).Get(context.Background(), p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertInjected(t, w.in, stored, mode, restricted)
		})
	}

	refused := []struct {
		name string
		pod  func() *corev1.Pod
		want string
	}{
		{"opt-out-forbidden", func() *corev1.Pod {
			return appPod("optout", map[string]string{inject.AnnotationInject: "false"}, "app")
		}, "does not allow opting out"},
		{"unknown-mode", func() *corev1.Pod {
			return appPod("badmode", map[string]string{inject.AnnotationMode: "sidecar"}, "app")
		}, "want endpoint, proxy or transparent"},
		{"host-network", func() *corev1.Pod { p := appPod("hostnet", nil, "app"); p.Spec.HostNetwork = true; return p }, "hostNetwork"},
		{"share-process-namespace", func() *corev1.Pod {
			p := appPod("sharer", nil, "app")
			yes := true
			p.Spec.ShareProcessNamespace = &yes
			return p
		}, "shares a process namespace"},
		{"foreign-warden-token", func() *corev1.Pod {
			p := appPod("thief", nil, "app")
			p.Spec.Volumes = []corev1.Volume{{Name: "mine", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: inject.DefaultAudience, Path: "t"}}}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: "/t"}}
			return p
		}, "Warden's audience"},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			_, err := c.Client.CoreV1().Pods(enrolled).Create(context.Background(), tc.pod(), metav1.CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "warden injector") {
				t.Fatalf("create: %v, want a denial naming %q", err, tc.want)
			}
		})
	}

	if n := admissions(t, w, inject.OutcomeDenied); n < float64(len(refused)) {
		t.Errorf("denied admissions = %v, want >= %d", n, len(refused))
	}
}

// With the webhook down, pod creation fails in enrolled namespaces
// (failurePolicy Fail) and succeeds elsewhere (namespaceSelector).
func TestWebhookDown(t *testing.T) {
	c := kubetest.Shared(t)
	w := startWebhook(t, c)
	enrolled := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true"})
	plain := w.namespace(t, c, nil)
	waitActive(t, c, enrolled)
	if err := w.srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Client.CoreV1().Pods(enrolled).Create(context.Background(), appPod("nowarden", nil, "app"), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "inject.warden-egress.io") {
		t.Fatalf("create in an enrolled namespace with the webhook down: %v, want a webhook failure", err)
	}
	stored := create(t, c, plain, appPod("fine", nil, "app"))
	if len(stored.Spec.InitContainers) != 0 {
		t.Errorf("pod in a plain namespace changed: %v", names(stored.Spec.InitContainers))
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// assertInjected checks a stored pod: the sidecar, the env in every app
// container, the volumes, and Warden's token, spool and pod info mounted in
// Warden's container only.
func assertInjected(t *testing.T, in *inject.Injector, p *corev1.Pod, mode, ns string) {
	t.Helper()
	wi := -1
	for i, c := range p.Spec.InitContainers {
		if c.Name == inject.ContainerName {
			if wi >= 0 {
				t.Fatalf("two warden init containers")
			}
			wi = i
		}
	}
	if wi < 0 {
		t.Fatalf("no warden init container: %v", names(p.Spec.InitContainers))
	}
	wc := &p.Spec.InitContainers[wi]
	wantIdx := 0
	if mode == inject.ModeTransparent {
		wantIdx = 1
		ipt := p.Spec.InitContainers[0]
		if ipt.Name != inject.IptablesContainerName || ipt.Args[0] != "iptables" || ipt.Args[1] != "--apply" {
			t.Errorf("transparent init step: %s %v", ipt.Name, ipt.Args)
		}
		if caps := ipt.SecurityContext.Capabilities.Add; len(caps) != 1 || caps[0] != "NET_ADMIN" {
			t.Errorf("iptables capabilities: %v", caps)
		}
	}
	if wi != wantIdx {
		t.Errorf("warden at initContainers[%d], want %d", wi, wantIdx)
	}
	if wc.RestartPolicy == nil || *wc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("warden restartPolicy %v, want Always (native sidecar)", wc.RestartPolicy)
	}
	if wc.StartupProbe == nil || wc.StartupProbe.HTTPGet == nil || wc.StartupProbe.HTTPGet.Path != "/readyz" || wc.StartupProbe.HTTPGet.Port.IntValue() != inject.AdminPort {
		t.Errorf("startupProbe: %+v", wc.StartupProbe)
	}
	sc := wc.SecurityContext
	if sc == nil || *sc.RunAsUser != inject.UID || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("warden securityContext: %+v", sc)
	}
	if wc.Resources.Limits.Memory().String() != "256Mi" || wc.Resources.Requests.Cpu().String() != "50m" {
		t.Errorf("warden resources: %v", wc.Resources)
	}
	if got, _ := envOf(wc, inject.ConfigEnv); got.Value != string(in.SidecarConfig(mode)) {
		t.Errorf("WARDEN_CONFIG differs from the rendered %s config", mode)
	}
	for k, want := range map[string]string{inject.PodNamespaceEnv: ns, inject.PodSAEnv: "checkout",
		"AWS_ROLE_ARN": in.Config().RoleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": inject.TokenFile} {
		if e, _ := envOf(wc, k); e.Value != want || e.ValueFrom != nil {
			t.Errorf("warden env %s = %+v, want the literal %q", k, e, want)
		}
	}
	if e, _ := envOf(wc, inject.PodNameEnv); e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("POD_NAME: %+v", e)
	}
	if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.FSGroup == nil || *p.Spec.SecurityContext.FSGroup != inject.GID {
		t.Errorf("fsGroup: %+v", p.Spec.SecurityContext)
	}
	if p.Annotations[inject.AnnotationInjected] != in.Version() || p.Annotations[inject.AnnotationConfig] != inject.Digest(in.SidecarConfig(mode)) {
		t.Errorf("annotations: %v", p.Annotations)
	}

	vols := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		vols[v.Name] = v
	}
	tok := vols[inject.VolumeToken]
	if tok.Projected == nil || len(tok.Projected.Sources) != 1 || tok.Projected.Sources[0].ServiceAccountToken.Audience != inject.DefaultAudience {
		t.Errorf("warden-token volume: %+v", tok)
	}
	if vols[inject.VolumeSpool].EmptyDir == nil || vols[inject.VolumePodInfo].DownwardAPI == nil {
		t.Errorf("spool/podinfo volumes: %+v %+v", vols[inject.VolumeSpool], vols[inject.VolumePodInfo])
	}
	_, hasCA := vols[inject.VolumeCA]
	if hasCA != (mode != inject.ModeEndpoint) {
		t.Errorf("warden-ca volume present %v in mode %s", hasCA, mode)
	}
	for _, v := range []string{inject.VolumeToken, inject.VolumeSpool, inject.VolumePodInfo} {
		if !mounts(wc, v) {
			t.Errorf("warden does not mount %s", v)
		}
	}

	// Every container but Warden's (app containers and the pod's own init
	// containers): the mode's env, never Warden's token, spool or pod info.
	var apps []*corev1.Container
	for i := range p.Spec.Containers {
		apps = append(apps, &p.Spec.Containers[i])
	}
	for i := range p.Spec.InitContainers {
		if n := p.Spec.InitContainers[i].Name; n != inject.ContainerName && n != inject.IptablesContainerName {
			apps = append(apps, &p.Spec.InitContainers[i])
		}
	}
	// The endpoint variables in every mode: the clients that read them
	// reach Warden's endpoint listener (up in every mode) whatever else the
	// mode adds for the clients that do not.
	want := map[string]string{
		inject.EnvAWSEndpoint:      "http://127.0.0.1:8480",
		inject.EnvAWSAgentEndpoint: "http://127.0.0.1:8480",
		inject.EnvAnthropicBedrock: "http://127.0.0.1:8480",
	}
	switch mode {
	case inject.ModeProxy:
		want[inject.EnvHTTPSProxy] = "http://127.0.0.1:8481"
		want[inject.EnvAWSCABundle] = inject.CABundleFile
		want[inject.EnvNodeExtraCA] = inject.CACertFile
	case inject.ModeTransparent:
		want[inject.EnvAWSCABundle] = inject.CABundleFile
		want[inject.EnvNodeExtraCA] = inject.CACertFile
	}
	for _, a := range apps {
		for k, v := range want {
			if e, _ := envOf(a, k); e.Value != v {
				t.Errorf("%s: env %s = %q, want %q", a.Name, k, e.Value, v)
			}
		}
		for _, v := range []string{inject.VolumeToken, inject.VolumeSpool, inject.VolumePodInfo} {
			if mounts(a, v) {
				t.Errorf("app container %s mounts %s", a.Name, v)
			}
		}
		if _, ok := envOf(a, "AWS_WEB_IDENTITY_TOKEN_FILE"); ok {
			t.Errorf("app container %s has AWS_WEB_IDENTITY_TOKEN_FILE", a.Name)
		}
		if mode != inject.ModeEndpoint {
			found := false
			for _, m := range a.VolumeMounts {
				if m.Name == inject.VolumeCA {
					found = m.ReadOnly && m.MountPath == inject.CADir
				}
			}
			if !found {
				t.Errorf("app container %s: no read-only %s mount", a.Name, inject.VolumeCA)
			}
		}
	}
}

// TestWebhookCertRotation: a certificate renewed on disk is what the API
// server gets from the running injector, with no restart. The API server
// is told to trust only the next CA: pod creation fails against the
// certificate being served (so the new caBundle is in effect), then the
// renewal is written over the files the server reads, and creation
// succeeds with the sidecar injected.
func TestWebhookCertRotation(t *testing.T) {
	c := kubetest.Shared(t)
	w := startWebhook(t, c)
	ns := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true"})
	waitActive(t, c, ns)
	next, err := inject.NewSelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hooks := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := hooks.Get(ctx, "warden-inject-"+w.testID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[0].ClientConfig.CABundle = next.CACert
	if _, err := hooks.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dryRun := func() (*corev1.Pod, error) {
		return c.Client.CoreV1().Pods(ns).Create(ctx, appPod("rotate", nil, "app"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	waitFor := func(what string, ok func(*corev1.Pod, error) bool) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var p *corev1.Pod
			if p, err = dryRun(); ok(p, err) {
				return
			}
		}
		t.Fatalf("%s: not within 60s (last error: %v)", what, err)
	}
	waitFor("the API server refusing the old certificate", func(_ *corev1.Pod, err error) bool {
		return err != nil && strings.Contains(err.Error(), "certificate")
	})
	if err := next.Write(w.certDir); err != nil {
		t.Fatal(err)
	}
	waitFor("the renewed certificate served", func(p *corev1.Pod, err error) bool {
		return err == nil && findInit(p, inject.ContainerName) != nil
	})
}
