package inject_test

// The injector and the admission policies together, as a cluster runs them:
// the policies generated from the injector's own configuration (what
// `warden inject --print-policies` prints) installed on a fresh real
// kube-apiserver next to the webhook, and every request made by a team
// member holding the built-in `edit` role. No kubelet runs: assertions are on
// the API server's answer and the stored objects.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/inject/admission"
	"github.com/warden-egress/warden/internal/kubetest"
)

const (
	labelPSA    = "pod-security.kubernetes.io/enforce"
	nodeName    = "node-1"
	apiTokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

var team = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"team-a"}}

// installPolicies applies the stream `warden inject --print-policies` prints
// for the injector in.
func installPolicies(t *testing.T, c *kubetest.Cluster, in *inject.Injector) *admission.Params {
	t.Helper()
	ctx := context.Background()
	p, err := in.AdmissionParams()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := admission.WriteManifests(&buf, p); err != nil {
		t.Fatal(err)
	}
	set, err := admission.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.InjectorNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(p.InjectorNamespace).Create(ctx, set.Params, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, pol := range set.Policies {
		if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil {
			t.Fatalf("policy %s: %v", pol.Name, err)
		}
	}
	for _, b := range set.Bindings {
		if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatalf("binding %s: %v", b.Name, err)
		}
	}
	if err := c.AggregateClusterRoles(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// teamNamespace gives the team edit (and, as clusters allowing `kubectl
// debug` do, pods/ephemeralcontainers) in ns and waits for RBAC.
func teamNamespace(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	ctx := context.Background()
	rb := c.Client.RbacV1().RoleBindings(ns)
	subj := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: team.UserName}}
	if _, err := rb.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "edit"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update", "patch"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "debug"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs := as(t, c, team)
	for _, a := range []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: "create", Resource: "pods"},
		{Namespace: ns, Verb: "update", Resource: "pods", Subresource: "ephemeralcontainers"},
	} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}}, metav1.CreateOptions{})
			if err == nil && r.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("RBAC for %s %s in %s not in effect after 30s (%v)", a.Verb, a.Resource, ns, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func as(t *testing.T, c *kubetest.Cluster, u rest.ImpersonationConfig) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = u
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// deniedBy reports whether err is a denial by the named policy.
func deniedBy(err error, policy string) bool {
	return err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'")
}

// deniedByInjector reports whether err is the webhook's refusal.
func deniedByInjector(err error) bool {
	return err != nil && strings.Contains(err.Error(), `admission webhook "inject.warden-egress.io" denied the request`)
}

// teamPod is a Pod Security restricted app pod (uid 1000) on node-1, as the
// team writes it: no sidecar, the service account's API token automounted.
func teamPod(name, mode string) *corev1.Pod {
	p := restrictedPod(name, nil)
	if mode != "" {
		p.Annotations = map[string]string{inject.AnnotationMode: mode}
	}
	p.Spec.NodeName = nodeName
	return p
}

func wardenToken(name, audience string) corev1.Volume {
	exp := int64(3600)
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, ExpirationSeconds: &exp, Path: "token"}}}}}}
}

func apiTokenMount(c *corev1.Container) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == apiTokenDir {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func execRequest(ctx context.Context, cs kubernetes.Interface, ns, pod, container string) error {
	return cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: []string{"sh"}, Stdin: true, Stdout: true}, scheme.ParameterCodec).
		Do(ctx).Error()
}

// noKubelet: what an exec admission allowed gets here (no Node object).
func noKubelet(err error) bool {
	return err != nil && apierrors.IsNotFound(err) && strings.Contains(err.Error(), `"`+nodeName+`" not found`)
}

// TestInjectorWithPolicies: pods a team with `edit` creates in an enrolled
// namespace are injected and admitted by the generated policies (the
// ServiceAccount plugin's kube-api-access mount on the sidecar included),
// and each way around Warden of issue 14 still fails with the injector
// running.
func TestInjectorWithPolicies(t *testing.T) {
	c := kubetest.Fresh(t)
	ctx := context.Background()
	w := startWebhook(t, c)
	params := installPolicies(t, c, w.in)
	restricted := map[string]string{inject.LabelEnrolled: "true", labelPSA: "restricted"}
	enrolled := w.namespace(t, c, restricted)
	transparent := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true", admission.LabelAllowTransparent: "true", labelPSA: "privileged"})
	transparentOptOut := w.namespace(t, c, map[string]string{inject.LabelEnrolled: "true", admission.LabelAllowTransparent: "true",
		inject.LabelAllowOptOut: "true", labelPSA: "privileged"})
	plain := w.namespace(t, c, nil)
	for _, ns := range []string{enrolled, transparent, transparentOptOut, plain} {
		teamNamespace(t, c, ns)
	}
	cs := as(t, c, team)
	// The webhook is called for the enrolled namespace (configurations
	// reach the API server asynchronously).
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.Client.CoreV1().Pods(enrolled).Create(ctx, teamPod("probe", ""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && findInit(p, inject.ContainerName) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not called for %s after 60s (last: %v)", enrolled, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pods := func(ns string) func(*corev1.Pod) (*corev1.Pod, error) {
		return func(p *corev1.Pod) (*corev1.Pod, error) {
			return cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		}
	}
	// The policies reach the admission plugin through informers: wait until
	// the token-request rule (the simplest probe) and the pod rules deny.
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, errTok := c.Client.CoreV1().ServiceAccounts(plain).CreateToken(ctx, "checkout",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{params.Audience}}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		probe := teamPod("probe", "")
		probe.Spec.Volumes = append(probe.Spec.Volumes, wardenToken("t", params.Audience))
		probe.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "t", MountPath: "/t"}}
		_, errPod := c.Client.CoreV1().Pods(plain).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if deniedBy(errTok, "warden-token-requests") && deniedBy(errPod, "warden-pods") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policies not in force after 60s: %v; %v", errTok, errPod)
		}
		time.Sleep(200 * time.Millisecond)
	}

	admitted := map[string]*corev1.Pod{}
	for _, tc := range []struct{ mode, ns string }{
		{inject.ModeEndpoint, enrolled}, {inject.ModeProxy, enrolled}, {inject.ModeTransparent, transparent},
	} {
		t.Run("admitted/"+tc.mode, func(t *testing.T) {
			stored, err := pods(tc.ns)(teamPod("app-"+tc.mode, tc.mode))
			if err != nil {
				t.Fatalf("the injected pod is refused: %v", err)
			}
			assertInjected(t, w.in, stored, tc.mode, tc.ns)
			admitted[tc.mode] = stored
			// The ServiceAccount plugin ran after the webhook and gave the
			// sidecar (and warden-iptables) its read-only API token mount:
			// the policies accepted exactly that.
			names := []string{inject.ContainerName}
			if tc.mode == inject.ModeTransparent {
				names = append(names, inject.IptablesContainerName)
			}
			for _, n := range names {
				m, ok := apiTokenMount(findInit(stored, n))
				if !ok || !m.ReadOnly || !strings.HasPrefix(m.Name, "kube-api-access-") {
					t.Errorf("%s: API token mount %+v (present %v), want the ServiceAccount plugin's read-only kube-api-access-*", n, m, ok)
				}
			}
		})
	}

	// need is a pod admitted above (a subtest run alone has none).
	need := func(t *testing.T, mode string) *corev1.Pod {
		t.Helper()
		p := admitted[mode]
		if p == nil {
			t.Fatalf("needs the pod of admitted/%s: run the whole test", mode)
		}
		return p
	}
	t.Run("second admission is a no-op", func(t *testing.T) {
		for mode, first := range admitted {
			again := first.DeepCopy()
			again.ObjectMeta = metav1.ObjectMeta{Name: "again-" + mode, Annotations: first.Annotations, Labels: first.Labels}
			stored, err := pods(first.Namespace)(again)
			if err != nil {
				t.Fatalf("%s: the stored pod submitted again is refused: %v", mode, err)
			}
			if !equality.Semantic.DeepEqual(stored.Spec, first.Spec) {
				t.Errorf("%s: a second admission changed the spec", mode)
			}
		}
	})

	t.Run("untouched elsewhere", func(t *testing.T) {
		stored, err := pods(plain)(teamPod("plain", inject.ModeProxy))
		if err != nil {
			t.Fatal(err)
		}
		if findInit(stored, inject.ContainerName) != nil || stored.Annotations[inject.AnnotationInjected] != "" {
			t.Errorf("a pod in a namespace that is not enrolled was injected")
		}
	})

	// The examples in deploy/kubernetes: the app as a team deploys it with
	// the injector is admitted; the hand-written sidecar is refused.
	t.Run("app example admitted", func(t *testing.T) {
		c.ServiceAccount(t, enrolled, "chatbot")
		p := examplePod(t, "app-example.yaml")
		stored, err := pods(enrolled)(p)
		if err != nil {
			t.Fatalf("deploy/kubernetes/app-example.yaml: %v", err)
		}
		wc := findInit(stored, inject.ContainerName)
		if wc == nil {
			t.Fatal("no warden sidecar")
		}
		if e, _ := envOf(wc, inject.PodSAEnv); e.Value != "chatbot" {
			t.Errorf("warden's service account %q, want chatbot", e.Value)
		}
		if e, _ := envOf(&stored.Spec.Containers[0], inject.EnvAWSEndpoint); e.Value != "http://127.0.0.1:8480" {
			t.Errorf("app %s = %q", inject.EnvAWSEndpoint, e.Value)
		}
	})
	t.Run("hand-written sidecar example refused", func(t *testing.T) {
		p := examplePod(t, "sidecar-example.yaml")
		if _, err := pods(enrolled)(p); !deniedByInjector(err) {
			t.Errorf("enrolled: got %v, want the injector's refusal", err)
		}
		c.ServiceAccount(t, plain, "chatbot")
		if _, err := pods(plain)(p); !deniedBy(err, "warden-pods") {
			t.Errorf("not enrolled: got %v, want warden-pods' refusal", err)
		}
	})
	// The hand-written transparent example (its own warden-redirect init
	// container with NET_ADMIN): refused in an enrolled namespace by the
	// injector, elsewhere by warden-pods, and where the platform allows
	// transparent mode by the injector too — only the injector's own
	// warden-iptables may hold NET_ADMIN.
	t.Run("hand-written transparent example refused", func(t *testing.T) {
		p := examplePod(t, "transparent-example.yaml")
		for _, ns := range []string{enrolled, transparent, plain} { // the other examples' subtests may have made them
			_, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chatbot"}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		if _, err := pods(enrolled)(p.DeepCopy()); !deniedByInjector(err) {
			t.Errorf("enrolled: got %v, want the injector's refusal", err)
		}
		if _, err := pods(transparent)(p.DeepCopy()); !deniedByInjector(err) {
			t.Errorf("transparent allowed: got %v, want the injector's refusal", err)
		}
		if _, err := pods(plain)(p.DeepCopy()); !deniedBy(err, "warden-pods") {
			t.Errorf("not enrolled: got %v, want warden-pods' refusal", err)
		}
	})

	// Each way around Warden (issue 14, "Rejected"), as the team.
	t.Run("rejected/token volume in an app container, enrolled", func(t *testing.T) {
		p := teamPod("steal-token", "")
		p.Spec.Volumes = []corev1.Volume{wardenToken("mine", params.Audience)}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: "/t", ReadOnly: true}}
		if _, err := pods(enrolled)(p); !deniedByInjector(err) {
			t.Fatalf("got %v, want the injector's refusal", err)
		}
	})
	t.Run("rejected/token volume in an app container, not enrolled", func(t *testing.T) {
		p := teamPod("steal-token", "")
		p.Spec.Volumes = []corev1.Volume{wardenToken(inject.VolumeToken, params.Audience)}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: inject.VolumeToken, MountPath: "/t", ReadOnly: true}}
		if _, err := pods(plain)(p); !deniedBy(err, "warden-pods") {
			t.Fatalf("got %v, want warden-pods' refusal", err)
		}
	})
	t.Run("rejected/app mounts warden-token by name: taken away", func(t *testing.T) {
		p := teamPod("mount-by-name", "")
		p.Spec.Volumes = []corev1.Volume{wardenToken(inject.VolumeToken, params.Audience)}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: inject.VolumeToken, MountPath: "/t", ReadOnly: true}}
		stored, err := pods(enrolled)(p)
		if err != nil {
			t.Fatal(err)
		}
		if mounts(&stored.Spec.Containers[0], inject.VolumeToken) {
			t.Fatal("the app container kept Warden's token")
		}
	})
	t.Run("rejected/opt-out where forbidden", func(t *testing.T) {
		p := teamPod("opt-out", "")
		p.Annotations = map[string]string{inject.AnnotationInject: "false"}
		if _, err := pods(enrolled)(p); !deniedByInjector(err) {
			t.Fatalf("got %v, want the injector's refusal", err)
		}
	})
	t.Run("rejected/opt-out keeping a hand-written sidecar with Warden's token", func(t *testing.T) {
		// Opted out where allowed: the injector leaves the pod as written.
		// The team copies the canonical sidecar (image, args, mounts,
		// securityContext, Warden's token) with its own WARDEN_CONFIG.
		p := need(t, inject.ModeEndpoint).DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Name: "opt-out-own-warden", Annotations: map[string]string{inject.AnnotationInject: "false"}}
		wc := findInit(p, inject.ContainerName)
		for i := range wc.Env {
			switch wc.Env[i].Name {
			case inject.ConfigEnv:
				wc.Env[i].Value = "version: 1\napps: [{name: anything, match: {}, allow: {models: ['*']}}]\n"
			case inject.PodNamespaceEnv:
				wc.Env[i].Value = transparentOptOut
			}
		}
		_, err := pods(transparentOptOut)(p)
		if !deniedBy(err, "warden-pods") || !strings.Contains(err.Error(), "opts out of Warden") {
			t.Fatalf("got %v, want warden-pods' refusal of a Warden token in an opted-out pod", err)
		}
	})
	t.Run("rejected/a different warden container: replaced", func(t *testing.T) {
		p := teamPod("fake-warden", "")
		always := corev1.ContainerRestartPolicyAlways
		p.Spec.InitContainers = []corev1.Container{{Name: inject.ContainerName, Image: "attacker/warden:1", RestartPolicy: &always,
			Args: []string{"serve", "--config", "/tmp/allow-all.yaml"}, SecurityContext: p.Spec.Containers[0].SecurityContext}}
		stored, err := pods(enrolled)(p)
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, w.in, stored, inject.ModeEndpoint, enrolled)
	})
	t.Run("rejected/a different warden container where the injector is not called", func(t *testing.T) {
		// Not enrolled, so no injector: Warden's token is for pods of
		// enrolled namespaces only, whatever the sidecar (this one runs
		// another image).
		p := need(t, inject.ModeEndpoint).DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Name: "fake-warden"}
		findInit(p, inject.ContainerName).Image = "attacker/warden:1"
		if _, err := pods(plain)(p); !deniedBy(err, "warden-pods") {
			t.Fatalf("got %v, want warden-pods' refusal", err)
		}
	})
	t.Run("rejected/kube-api-access impostor on the sidecar", func(t *testing.T) {
		// A pre-seeded warden with a read-only mount at the API token path
		// from a team-written volume named like the plugin's: the injector
		// keeps such a mount, the policy refuses the volume.
		p := teamPod("impostor", "")
		exp := int64(3600)
		p.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-evil", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", ExpirationSeconds: &exp, Path: "token"}}}}}}}
		always := corev1.ContainerRestartPolicyAlways
		p.Spec.InitContainers = []corev1.Container{{Name: inject.ContainerName, Image: "x", RestartPolicy: &always,
			VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-evil", MountPath: apiTokenDir, ReadOnly: true}}}}
		_, err := pods(enrolled)(p)
		if !deniedBy(err, "warden-pods") || !strings.Contains(err.Error(), "the warden sidecar mounts a volume") {
			t.Fatalf("got %v, want warden-pods' refusal of the sidecar's mounts", err)
		}
	})
	t.Run("rejected/token request with Warden's audience", func(t *testing.T) {
		_, err := cs.CoreV1().ServiceAccounts(enrolled).CreateToken(ctx, "checkout",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{params.Audience}}}, metav1.CreateOptions{})
		if !deniedBy(err, "warden-token-requests") {
			t.Fatalf("got %v, want warden-token-requests' refusal", err)
		}
		// Another audience is the team's business.
		if _, err := cs.CoreV1().ServiceAccounts(enrolled).CreateToken(ctx, "checkout",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"team-api"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a token for another audience: %v", err)
		}
	})
	t.Run("rejected/exec into warden", func(t *testing.T) {
		pod := need(t, inject.ModeEndpoint)
		if err := execRequest(ctx, cs, enrolled, pod.Name, inject.ContainerName); !deniedBy(err, "warden-exec") {
			t.Fatalf("got %v, want warden-exec's refusal", err)
		}
		if err := execRequest(ctx, cs, enrolled, pod.Name, "app"); !noKubelet(err) {
			t.Fatalf("exec into the app container: %v, want admitted (then no kubelet)", err)
		}
	})
	t.Run("rejected/ephemeral container", func(t *testing.T) {
		pod, err := cs.CoreV1().Pods(enrolled).Get(ctx, need(t, inject.ModeEndpoint).Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f := false
		uid := int64(1000)
		pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "app", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "busybox:1", SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, AllowPrivilegeEscalation: &f,
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}}
		if _, err := cs.CoreV1().Pods(enrolled).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{}); !deniedBy(err, "warden-ephemeral-containers") {
			t.Fatalf("got %v, want warden-ephemeral-containers' refusal", err)
		}
	})
	t.Run("rejected/UPDATE changing the warden image", func(t *testing.T) {
		pod, err := cs.CoreV1().Pods(enrolled).Get(ctx, need(t, inject.ModeProxy).Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		changed := pod.DeepCopy()
		findInit(changed, inject.ContainerName).Image = "attacker/warden:1"
		if _, err := cs.CoreV1().Pods(enrolled).Update(ctx, changed, metav1.UpdateOptions{}); !deniedBy(err, "warden-pods") {
			t.Fatalf("got %v, want warden-pods' refusal", err)
		}
		// The app's own image stays the team's.
		pod.Spec.Containers[0].Image = "app:2"
		if _, err := cs.CoreV1().Pods(enrolled).Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating the app image: %v", err)
		}
	})

	// Transparent mode (docs/kubernetes-admission.md, "Transparent mode and
	// Pod Security").
	t.Run("transparent/refused where Pod Security is restricted", func(t *testing.T) {
		_, err := pods(enrolled)(teamPod("transparent-in-restricted", inject.ModeTransparent))
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "violates PodSecurity") || !strings.Contains(err.Error(), "NET_ADMIN") {
			t.Fatalf("got %v, want PodSecurity's refusal of NET_ADMIN", err)
		}
	})
	t.Run("transparent/app container asking for a network capability", func(t *testing.T) {
		p := teamPod("net-admin", inject.ModeTransparent)
		p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		// warden-pods refuses added capabilities in every enrolled namespace
		// too; the API server reports whichever policy it evaluates first.
		if _, err := pods(transparent)(p); !deniedBy(err, "warden-transparent") && !deniedBy(err, "warden-pods") {
			t.Fatalf("got %v, want warden-transparent's or warden-pods' refusal", err)
		}
	})
	// warden-transparent re-states Pod Security restricted: each rule, the
	// same pod refused by the built-in PodSecurity plugin in a restricted
	// namespace and by the policy where transparent mode is allowed.
	sc := func(p *corev1.Pod) *corev1.SecurityContext { return p.Spec.Containers[0].SecurityContext }
	yes := true
	for _, rc := range []struct {
		name   string
		change func(*corev1.Pod)
		// alsoPods: warden-pods refuses it in every enrolled namespace as
		// well, and the API server names whichever policy it evaluates
		// first (the order is not fixed).
		alsoPods bool
	}{
		{"privilege escalation not refused", func(p *corev1.Pod) { sc(p).AllowPrivilegeEscalation = nil }, false},
		{"privileged", func(p *corev1.Pod) { sc(p).Privileged, sc(p).AllowPrivilegeEscalation = &yes, &yes }, true},
		{"capabilities not dropped", func(p *corev1.Pod) { sc(p).Capabilities.Drop = nil }, false},
		{"SYS_ADMIN added", func(p *corev1.Pod) { sc(p).Capabilities.Add = []corev1.Capability{"SYS_ADMIN"} }, true},
		{"container runAsNonRoot false", func(p *corev1.Pod) { f := false; sc(p).RunAsNonRoot = &f }, false},
		{"seccomp Unconfined", func(p *corev1.Pod) {
			sc(p).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, false},
		{"pod seccomp Unconfined", func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			sc(p).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
		}, false},
		{"hostPort", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 8080}}
		}, false},
		{"hostIPC", func(p *corev1.Pod) { p.Spec.HostIPC = true }, false},
		{"SELinux user", func(p *corev1.Pod) { sc(p).SELinuxOptions = &corev1.SELinuxOptions{User: "system_u"} }, false},
		{"AppArmor Unconfined", func(p *corev1.Pod) {
			sc(p).AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
		}, false},
		{"unsafe sysctl", func(p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}
		}, false},
		{"nfs volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "share", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs.example", Path: "/x"}}}}
		}, false},
	} {
		t.Run("transparent/restricted/"+rc.name, func(t *testing.T) {
			p := teamPod("restricted-"+strings.ToLower(strings.ReplaceAll(rc.name, " ", "-")), inject.ModeEndpoint)
			p.Name = strings.ReplaceAll(p.Name, "_", "-")
			rc.change(p)
			if _, err := pods(enrolled)(p.DeepCopy()); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
				t.Errorf("restricted namespace: got %v, want PodSecurity's refusal", err)
			}
			if _, err := pods(transparent)(p.DeepCopy()); !deniedBy(err, "warden-transparent") && !(rc.alsoPods && deniedBy(err, "warden-pods")) {
				t.Errorf("transparent namespace: got %v, want warden-transparent's refusal", err)
			}
		})
	}
	t.Run("transparent/root app container", func(t *testing.T) {
		p := teamPod("root-app", inject.ModeTransparent)
		root := int64(0)
		p.Spec.Containers[0].SecurityContext.RunAsUser = &root
		if _, err := pods(transparent)(p); !deniedBy(err, "warden-transparent") {
			t.Fatalf("got %v, want warden-transparent's refusal", err)
		}
	})
	t.Run("transparent/fake warden-iptables in an opted-out pod", func(t *testing.T) {
		// Opted out (allowed here), so the injector does not touch it: a
		// team-written warden-iptables with the canonical securityContext
		// running its own command.
		iptables := findInit(need(t, inject.ModeTransparent), inject.IptablesContainerName).DeepCopy()
		iptables.VolumeMounts = nil
		iptables.Command = []string{"/bin/sh", "-c", "nft flush ruleset"}
		p := teamPod("fake-iptables", "")
		p.Annotations = map[string]string{inject.AnnotationInject: "false"}
		p.Spec.InitContainers = []corev1.Container{*iptables}
		if _, err := pods(transparentOptOut)(p); !deniedBy(err, "warden-transparent") {
			t.Fatalf("got %v, want warden-transparent's refusal", err)
		}
	})
	t.Run("transparent/UPDATE changing the warden-iptables image", func(t *testing.T) {
		pod, err := cs.CoreV1().Pods(transparent).Get(ctx, need(t, inject.ModeTransparent).Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		findInit(pod, inject.IptablesContainerName).Image = "attacker/iptables:1"
		if _, err := cs.CoreV1().Pods(transparent).Update(ctx, pod, metav1.UpdateOptions{}); !deniedBy(err, "warden-transparent") {
			t.Fatalf("got %v, want warden-transparent's refusal", err)
		}
	})
	t.Run("transparent/allow-transparent is the platform's", func(t *testing.T) {
		ns, err := c.Client.CoreV1().Namespaces().Get(ctx, enrolled, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels[admission.LabelAllowTransparent] = "true"
		ns.Labels[labelPSA] = "privileged"
		nsAdmin := rest.ImpersonationConfig{UserName: "carol", Groups: []string{"system:authenticated"}}
		if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ns-editor"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "update", "patch"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ns-editor"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "ns-editor"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: nsAdmin.UserName}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := as(t, c, nsAdmin).CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			if deniedBy(err, "warden-namespaces") && strings.Contains(err.Error(), admission.LabelAllowTransparent) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %v, want warden-namespaces' refusal naming %s", err, admission.LabelAllowTransparent)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The platform may (admin is system:masters).
		if _, err := c.Client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("the platform allowing transparent mode: %v", err)
		}
	})
}

// examplePod is the pod template of the Deployment in
// deploy/kubernetes/FILE, as its ReplicaSet would create it.
func examplePod(t *testing.T, file string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if meta.Kind != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "example-" + d.Name, Labels: d.Spec.Template.Labels,
			Annotations: d.Spec.Template.Annotations}, Spec: d.Spec.Template.Spec}
	}
	t.Fatalf("%s has no Deployment", file)
	return nil
}
