package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// TestTokenRequests: only a kubelet, for a pod, gets a token with Warden's
// audience; `kubectl create token SA --audience warden.bedrock` by a team
// holding edit is refused, other audiences are not.
func TestTokenRequests(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	plain := f.namespace(t, nsOpts{})
	pod, err := f.c.Client.CoreV1().Pods(enrolled).Create(ctx, f.canonicalPod(enrolled, "tok"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const denial = "only a kubelet may request a token with Warden's audience (warden.bedrock), bound to a pod; "
	for _, tc := range []struct {
		name     string
		user     rest.ImpersonationConfig
		audience string
		bound    bool
		plain    bool   // a namespace that is not enrolled
		want     string // "" allowed
	}{
		{name: "edit user, Warden's audience", user: teamUser, audience: testAudience, want: denial + "alice may not"},
		{name: "edit user, Warden's audience, bound to the pod", user: teamUser, audience: testAudience, bound: true, want: denial + "alice may not"},
		{name: "node, Warden's audience, unbound", user: nodeUser, audience: testAudience, want: denial + "system:node:node-1 may not"},
		{name: "node, Warden's audience, bound to the pod", user: nodeUser, audience: testAudience, bound: true},
		{name: "edit user, another audience", user: teamUser, audience: "vault"},
		// IRSA and EKS Pod Identity tokens, minted by hand instead of
		// through a pod's volume (which warden-pods refuses there).
		{name: "edit user, IRSA audience, enrolled", user: teamUser, audience: "sts.amazonaws.com",
			want: "in enrolled namespaces only Warden holds AWS credentials: alice may not request a token for AWS (sts.amazonaws.com)"},
		{name: "edit user, EKS Pod Identity audience, enrolled", user: teamUser, audience: "pods.eks.amazonaws.com", bound: true,
			want: "in enrolled namespaces only Warden holds AWS credentials: alice may not request a token for AWS (pods.eks.amazonaws.com)"},
		{name: "edit user, IRSA audience, not enrolled", user: teamUser, audience: "sts.amazonaws.com", plain: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := enrolled
			if tc.plain {
				ns = plain
			}
			if tc.user.UserName == teamUser.UserName {
				f.waitAllowed(t, tc.user, attrs(ns, "create", "serviceaccounts", "token"))
			}
			var bound *corev1.Pod
			if tc.bound {
				bound = pod
			}
			got, err := f.as(t, tc.user).CoreV1().ServiceAccounts(ns).CreateToken(ctx, appSA, tokenRequest(tc.audience, bound), metav1.CreateOptions{})
			if tc.want != "" {
				wantDenied(t, err, PolicyTokenRequests, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("token request refused: %v", err)
			}
			if got.Status.Token == "" {
				t.Fatal("no token issued")
			}
		})
	}
}

// TestExecAndDebug: exec and attach into the warden container, and ephemeral
// containers, are refused in enrolled namespaces except for the break-glass
// group. No kubelet runs: an exec admission allows fails next, on the missing
// Node, so the error tells an admission denial from an allowed exec.
func TestExecAndDebug(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	plain := f.namespace(t, nsOpts{})
	pods := map[string]*corev1.Pod{}
	for _, ns := range []string{enrolled, plain} {
		target := f.canonicalPod(ns, "target")
		if ns == plain {
			// Warden's token is for pods of enrolled namespaces only.
			target = withoutWardenToken(target)
		}
		p, err := f.c.Client.CoreV1().Pods(ns).Create(ctx, target, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods[ns] = p
	}
	const denialExec = "exec into the warden container is reserved for the break-glass groups (warden-egress.io:break-glass)"
	for _, tc := range []struct {
		name      string
		user      rest.ImpersonationConfig
		ns        string
		sub       string
		container string
		want      string // "" allowed by admission
	}{
		{name: "team exec into warden", user: teamUser, ns: enrolled, sub: "exec", container: "warden", want: denialExec},
		{name: "team attach to warden", user: teamUser, ns: enrolled, sub: "attach", container: "warden", want: "attach into the warden container is reserved"},
		{name: "team exec into its app", user: teamUser, ns: enrolled, sub: "exec", container: "app"},
		{name: "team exec with no container named (the app)", user: teamUser, ns: enrolled, sub: "exec"},
		{name: "break-glass exec into warden", user: breakGlassUser, ns: enrolled, sub: "exec", container: "warden"},
		{name: "team exec into warden outside enrolled namespaces", user: teamUser, ns: plain, sub: "exec", container: "warden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.waitAllowed(t, tc.user, attrs(tc.ns, "create", "pods", tc.sub))
			err := execInto(ctx, f.as(t, tc.user), tc.ns, pods[tc.ns].Name, tc.sub, tc.container)
			if tc.want != "" {
				wantDenied(t, err, PolicyExec, tc.want)
				return
			}
			if !noKubelet(err) {
				t.Fatalf("want admission to allow it and the API server then to find no node %q for the kubelet, got: %v", nodeName, err)
			}
		})
	}

	// kubectl (>= 1.30) execs over WebSocket: a GET, still CONNECT to admission.
	t.Run("team exec into warden with GET (WebSocket)", func(t *testing.T) {
		err := streamRequest(ctx, f.as(t, teamUser).CoreV1().RESTClient().Get(), enrolled, pods[enrolled].Name, "exec", "warden")
		wantDenied(t, err, PolicyExec, denialExec)
	})
	t.Run("break-glass exec into warden with GET (WebSocket)", func(t *testing.T) {
		err := streamRequest(ctx, f.as(t, breakGlassUser).CoreV1().RESTClient().Get(), enrolled, pods[enrolled].Name, "exec", "warden")
		if !noKubelet(err) {
			t.Fatalf("want admission to allow it and the API server then to find no node %q for the kubelet, got: %v", nodeName, err)
		}
	})

	for _, tc := range []struct {
		name string
		user rest.ImpersonationConfig
		ns   string
		want string
	}{
		{name: "team adds an ephemeral container", user: teamUser, ns: enrolled,
			want: "ephemeral containers in a Warden-enrolled namespace are reserved for the break-glass groups"},
		{name: "break-glass adds an ephemeral container", user: breakGlassUser, ns: enrolled},
		{name: "team adds an ephemeral container outside enrolled namespaces", user: teamUser, ns: plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.waitAllowed(t, tc.user, attrs(tc.ns, "patch", "pods", "ephemeralcontainers"))
			cur, err := f.c.Client.CoreV1().Pods(tc.ns).Get(ctx, "target", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dbg := debugContainer()
			dbg.Name = "debug-" + tc.user.UserName
			cur.Spec.EphemeralContainers = append(cur.Spec.EphemeralContainers, dbg)
			_, err = f.as(t, tc.user).CoreV1().Pods(tc.ns).UpdateEphemeralContainers(ctx, cur.Name, cur, metav1.UpdateOptions{})
			if tc.want != "" {
				wantDenied(t, err, PolicyEphemeralContainer, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("ephemeral container refused: %v", err)
			}
			stored, err := f.c.Client.CoreV1().Pods(tc.ns).Get(ctx, "target", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !hasEphemeral(stored, dbg.Name) {
				t.Fatalf("stored pod has no ephemeral container %s", dbg.Name)
			}
		})
	}

	// Even a break-glass user's ephemeral container may not mount Warden's
	// token (warden-pods matches pods/ephemeralcontainers too).
	t.Run("break-glass adds an ephemeral container mounting warden-token", func(t *testing.T) {
		f.waitAllowed(t, breakGlassUser, attrs(enrolled, "patch", "pods", "ephemeralcontainers"))
		cur, err := f.c.Client.CoreV1().Pods(enrolled).Get(ctx, "target", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dbg := debugContainer()
		dbg.Name = "thief"
		dbg.VolumeMounts = []corev1.VolumeMount{{Name: "warden-token", MountPath: "/t", ReadOnly: true}}
		cur.Spec.EphemeralContainers = append(cur.Spec.EphemeralContainers, dbg)
		_, err = f.as(t, breakGlassUser).CoreV1().Pods(enrolled).UpdateEphemeralContainers(ctx, cur.Name, cur, metav1.UpdateOptions{})
		wantDenied(t, err, PolicyPods, "container thief mounts a service-account token with Warden's audience")
	})
}

func hasEphemeral(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// TestPodUpdates: a running pod's warden image can move only within the
// allowed set (N and N-1), and metadata stays editable.
func TestPodUpdates(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	ns := f.namespace(t, nsOpts{enrolled: true})
	team := f.as(t, teamUser)
	if _, err := team.CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "running"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		patch string
		want  string // "" allowed
	}{
		{name: "warden image outside the allowed set",
			patch: `{"spec":{"initContainers":[{"name":"warden","image":"example.invalid/warden@sha256:` + strings.Repeat("3", 64) + `"}]}}`,
			want:  "which is not one of the allowed Warden images"},
		{name: "warden image to the other allowed digest (N-1)",
			patch: `{"spec":{"initContainers":[{"name":"warden","image":"` + f.params.Images[1] + `"}]}}`},
		{name: "a label (metadata only)", patch: `{"metadata":{"labels":{"tier":"web"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := team.CoreV1().Pods(ns).Patch(ctx, "running", types.StrategicMergePatchType, []byte(tc.patch), metav1.PatchOptions{})
			if tc.want != "" {
				wantDenied(t, err, PolicyPods, tc.want)
				stored, err := f.c.Client.CoreV1().Pods(ns).Get(ctx, "running", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if img := warden(stored).Image; img != f.params.Images[0] && img != f.params.Images[1] {
					t.Fatalf("stored warden image is %s", img)
				}
				return
			}
			if err != nil {
				t.Fatalf("update refused: %v", err)
			}
			if got.Name != "running" {
				t.Fatalf("patched %s", got.Name)
			}
		})
	}
}

// TestPodAdmittedBeforeEnrolment: a pod that predates its namespace's
// enrolment keeps its metadata editable (controllers, finalizers), but any
// change to its spec is judged like a new pod.
func TestPodAdmittedBeforeEnrolment(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	ns := f.namespace(t, nsOpts{})
	team := f.as(t, teamUser)
	if _, err := team.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "old"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	enrol := `{"metadata":{"labels":{"warden-egress.io/enrolled":"true","pod-security.kubernetes.io/enforce":"restricted"}}}`
	if _, err := f.c.Client.CoreV1().Namespaces().Patch(ctx, ns, types.StrategicMergePatchType, []byte(enrol), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("label change allowed", func(t *testing.T) {
		if _, err := team.CoreV1().Pods(ns).Patch(ctx, "old", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"tier":"web"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatalf("label change refused: %v", err)
		}
	})
	t.Run("image change judged", func(t *testing.T) {
		_, err := team.CoreV1().Pods(ns).Patch(ctx, "old", types.StrategicMergePatchType,
			[]byte(`{"spec":{"containers":[{"name":"app","image":"example.invalid/chatbot:1.4.3"}]}}`), metav1.PatchOptions{})
		wantDenied(t, err, PolicyPods, "must run the warden sidecar")
	})
}

// TestNamespaces: enrolment is the platform's, and pins Pod Security
// restricted.
func TestNamespaces(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	for _, u := range []rest.ImpersonationConfig{nsAdminUser, platformUser} {
		f.waitAllowed(t, u, attrs("", "patch", "namespaces", ""))
	}
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	plain := f.namespace(t, nsOpts{})
	platformMsg := "only the platform (groups: system:masters, warden-egress.io:platform) may set, change or remove the label warden-egress.io/enrolled"
	psaMsg := "an enrolled namespace must carry pod-security.kubernetes.io/enforce=restricted"
	for _, tc := range []struct {
		name  string
		user  rest.ImpersonationConfig
		ns    string
		patch string
		want  string // "" allowed
	}{
		{name: "non-platform user enrols a namespace", user: nsAdminUser, ns: plain,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":"true","pod-security.kubernetes.io/enforce":"restricted"}}}`, want: platformMsg},
		{name: "non-platform user removes the enrolment label", user: nsAdminUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":null}}}`, want: platformMsg},
		{name: "non-platform user sets the label to false", user: nsAdminUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":"false"}}}`, want: platformMsg},
		{name: "non-platform user allows opt-out", user: nsAdminUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"warden-egress.io/allow-opt-out":"true"}}}`,
			want:  "only the platform (groups: system:masters, warden-egress.io:platform) may set, change or remove the label warden-egress.io/allow-opt-out"},
		{name: "non-platform user changes another label", user: nsAdminUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"team":"a"}}}`},
		{name: "platform enrols without Pod Security restricted", user: platformUser, ns: plain,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":"true"}}}`, want: psaMsg},
		{name: "platform relaxes Pod Security on an enrolled namespace", user: platformUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"baseline"}}}`, want: psaMsg},
		{name: "platform pins an old Pod Security version", user: platformUser, ns: enrolled,
			patch: `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce-version":"v1.22"}}}`, want: psaMsg},
		{name: "platform enrols the injector's namespace", user: platformUser, ns: ParamsNamespace,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":"true","pod-security.kubernetes.io/enforce":"restricted"}}}`,
			want:  "the Warden injector's namespace cannot be enrolled"},
		{name: "platform enrols a namespace", user: platformUser, ns: plain,
			patch: `{"metadata":{"labels":{"warden-egress.io/enrolled":"true","pod-security.kubernetes.io/enforce":"restricted"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.as(t, tc.user).CoreV1().Namespaces().Patch(ctx, tc.ns, types.StrategicMergePatchType, []byte(tc.patch), metav1.PatchOptions{})
			if tc.want != "" {
				wantDenied(t, err, PolicyNamespaces, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("namespace update refused: %v", err)
			}
		})
	}
	t.Run("non-platform user creates an enrolled namespace", func(t *testing.T) {
		_, err := f.as(t, nsAdminUser).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "kt-",
			Labels:       map[string]string{labelEnrolled: "true", labelPSAEnforce: "restricted"},
		}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		wantDenied(t, err, PolicyNamespaces, platformMsg)
	})
}
