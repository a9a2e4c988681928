package admission

// Tests on the real kube-apiserver (internal/kubetest). No kubelet, scheduler or
// controller runs: these tests assert admission outcomes (the API server's
// answer) and the objects it stored, never a running container. An exec that
// admission allows fails afterwards because no Node object or kubelet exists;
// the tests tell the two apart by the error.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/warden-egress/warden/internal/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// Users the tests act as (impersonated by the admin, which does not bypass
// admission: the policies see the impersonated user and groups).
var (
	teamUser       = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"team-a"}}
	breakGlassUser = rest.ImpersonationConfig{UserName: "bob", Groups: []string{"warden-egress.io:break-glass"}}
	nsAdminUser    = rest.ImpersonationConfig{UserName: "carol", Groups: []string{"namespace-admins"}}
	platformUser   = rest.ImpersonationConfig{UserName: "pat", Groups: []string{"namespace-admins", "warden-egress.io:platform"}}
	nodeUser       = rest.ImpersonationConfig{UserName: "system:node:node-1", Groups: []string{"system:nodes"}}
)

const (
	nodeName        = "node-1"
	appSA           = "app"
	testAudience    = "warden.bedrock"
	labelEnrolled   = "warden-egress.io/enrolled"
	labelAllowOpt   = "warden-egress.io/allow-opt-out"
	labelPSAEnforce = "pod-security.kubernetes.io/enforce"
	legacyNamespace = "kt-enrolled-without-psa"
)

// fixture is the cluster with the embedded policies installed.
type fixture struct {
	c      *kubetest.Cluster
	params *Params
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

// installed returns the shared cluster with the embedded manifests applied
// and in force (each policy has denied a probe).
func installed(t *testing.T) *fixture {
	t.Helper()
	c := kubetest.Shared(t)
	fixtureOnce.Do(func() { fixtureVal, fixtureErr = install(c) })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureVal
}

func install(c *kubetest.Cluster) (*fixture, error) {
	ctx := context.Background()
	set, err := Load()
	if err != nil {
		return nil, err
	}
	params, err := ParseParams(set.Params)
	if err != nil {
		return nil, err
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ParamsNamespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create %s: %w", ParamsNamespace, err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ParamsNamespace).Create(ctx, set.Params, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create params: %w", err)
	}
	// A namespace enrolled before the policies existed, without Pod Security
	// labels: what a cluster without the PodSecurity plugin looks like. It
	// shows the policies' own host rules, which PodSecurity otherwise
	// answers first.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: legacyNamespace, Labels: map[string]string{labelEnrolled: "true"},
	}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create %s: %w", legacyNamespace, err)
	}
	for _, p := range set.Policies {
		if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create policy %s: %w", p.Name, err)
		}
	}
	for _, b := range set.Bindings {
		if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create binding %s: %w", b.Name, err)
		}
	}
	// The built-in edit role the team holds, aggregated as the controller
	// manager would.
	if err := c.AggregateClusterRoles(ctx); err != nil {
		return nil, err
	}
	// RBAC for the test users: cluster-wide namespace editing for carol and
	// pat, token requests for the node (no Node authorizer runs here).
	rbac := c.Client.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kt-namespace-admin"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "update", "patch"}}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kt-namespace-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kt-namespace-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "namespace-admins"}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kt-node-tokens"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kt-node-tokens"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kt-node-tokens"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:nodes"}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	f := &fixture{c: c, params: params}
	if err := f.waitInForce(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// waitInForce waits until every policy denies a probe: policies, bindings
// and parameters reach the admission plugin through informers, a moment
// after they are stored.
func (f *fixture) waitInForce(ctx context.Context) error {
	admin := f.c.Client
	ns := "kt-probe"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   ns,
		Labels: map[string]string{labelEnrolled: "true", labelPSAEnforce: "restricted"},
	}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("probe namespace: %w", err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: appSA}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "probe"), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("probe pod: %w", err)
	}
	dry := []string{metav1.DryRunAll}
	probes := map[string]func() error{
		PolicyPods: func() error {
			_, err := admin.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "bare"), metav1.CreateOptions{DryRun: dry})
			return err
		},
		PolicyNamespaces: func() error {
			_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: "kt-probe-psa", Labels: map[string]string{labelEnrolled: "true"},
			}}, metav1.CreateOptions{DryRun: dry})
			return err
		},
		PolicyTokenRequests: func() error {
			_, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, appSA, tokenRequest(testAudience, nil), metav1.CreateOptions{DryRun: dry})
			return err
		},
		PolicyExec: func() error {
			return execInto(ctx, admin, ns, pod.Name, "exec", "warden")
		},
		PolicyEphemeralContainer: func() error {
			p := pod.DeepCopy()
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, debugContainer())
			_, err := admin.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{DryRun: dry})
			return err
		},
	}
	deadline := time.Now().Add(60 * time.Second)
	for name, probe := range probes {
		for {
			err := probe()
			if deniedBy(err, name) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("policy %s not in force after 60s (last probe answer: %v)", name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// deniedBy reports whether err is a denial by the named policy.
func deniedBy(err error, policy string) bool {
	return err != nil && apierrors.IsForbidden(err) &&
		strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'")
}

// as returns a clientset acting as user.
func (f *fixture) as(t testing.TB, user rest.ImpersonationConfig) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(f.c.Config)
	cfg.Impersonate = user
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

type nsOpts struct {
	enrolled, allowOptOut bool
	extraLabels           map[string]string
	// existing names a namespace created by install to set up (RBAC,
	// service account) instead of creating one.
	existing string
}

// namespace creates (as the admin, a platform member) a namespace where the
// team and break-glass users hold the built-in edit role, with service
// account "app".
func (f *fixture) namespace(t *testing.T, o nsOpts) string {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{}
	if o.enrolled {
		labels[labelEnrolled] = "true"
		labels[labelPSAEnforce] = "restricted"
	}
	if o.allowOptOut {
		labels[labelAllowOpt] = "true"
	}
	for k, v := range o.extraLabels {
		labels[k] = v
	}
	if o.existing != "" {
		return f.setUpNamespace(t, o.existing)
	}
	ns, err := f.c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kt-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = f.c.Client.CoreV1().Pods(ns.Name).DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = f.c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return f.setUpNamespace(t, ns.Name)
}

// setUpNamespace gives the team and break-glass users edit (and ephemeral
// containers) in ns and creates the service account "app".
func (f *fixture) setUpNamespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := f.c.Client.RbacV1().RoleBindings(ns.Name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: teamUser.UserName},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: breakGlassUser.UserName},
		},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The built-in edit role does not grant pods/ephemeralcontainers (a
	// fact of v1.36's bootstrap policy); clusters that let teams run
	// `kubectl debug` add a role like this one, so the tests do too.
	if _, err := f.c.Client.RbacV1().Roles(ns.Name).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update", "patch"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := f.c.Client.RbacV1().RoleBindings(ns.Name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "debug"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: teamUser.UserName},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: breakGlassUser.UserName},
		},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// RBAC reaches the authorizer through an informer: wait until it does.
	for _, u := range []rest.ImpersonationConfig{teamUser, breakGlassUser} {
		f.waitAllowed(t, u, &authorizationv1.ResourceAttributes{Namespace: ns.Name, Verb: "create", Resource: "pods"})
	}
	if _, err := f.c.Client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: appSA},
		AutomountServiceAccountToken: new(bool),
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return ns.Name
}

// waitAllowed waits until RBAC lets user do what attrs says.
func (f *fixture) waitAllowed(t *testing.T, user rest.ImpersonationConfig, attrs *authorizationv1.ResourceAttributes) {
	t.Helper()
	cs := f.as(t, user)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
			metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still may not %s %s in %q after 30s (%v)", user.UserName, attrs.Verb, attrs.Resource, attrs.Namespace, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func attrs(ns, verb, resource, sub string) *authorizationv1.ResourceAttributes {
	return &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource, Subresource: sub}
}

func ptr[T any](v T) *T { return &v }

// restrictedContext is a container securityContext Pod Security "restricted"
// accepts, running as uid.
func restrictedContext(uid int64) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                &uid,
		RunAsNonRoot:             ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// plainPod is an ordinary app pod (Pod Security restricted, uid 1000) with no
// sidecar.
func plainPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "chatbot"}},
		Spec: corev1.PodSpec{
			ServiceAccountName:           appSA,
			AutomountServiceAccountToken: ptr(false),
			NodeName:                     nodeName,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "app",
				Image:           "example.invalid/chatbot:1.4.2",
				SecurityContext: restrictedContext(1000),
				Env: []corev1.EnvVar{
					{Name: "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", Value: "http://127.0.0.1:8480"},
					{Name: "ANTHROPIC_BEDROCK_BASE_URL", Value: "http://127.0.0.1:8480"},
				},
			}},
		},
	}
}

// canonicalPod is the pod the injector would produce (hand-built to
// /work/notes/k8s-contract.md and the embedded parameters), in endpoint mode.
func (f *fixture) canonicalPod(ns, name string) *corev1.Pod {
	p := plainPod(ns, name)
	p.Annotations = map[string]string{"warden-egress.io/injected": "test"}
	p.Spec.SecurityContext.FSGroup = ptr(int64(65532))
	sc := restrictedContext(65532)
	sc.RunAsGroup = ptr(int64(65532))
	sc.ReadOnlyRootFilesystem = ptr(true)
	sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	p.Spec.InitContainers = []corev1.Container{{
		Name:          "warden",
		Image:         f.params.Images[0],
		Args:          f.params.Args,
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		Env: []corev1.EnvVar{
			{Name: "WARDEN_CONFIG", Value: "version: 1\n"},
			{Name: "POD_NAMESPACE", Value: ns},
			{Name: "POD_SERVICE_ACCOUNT", Value: appSA},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/warden"},
			{Name: "AWS_REGION", Value: "us-east-1"},
			{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/warden/token"},
			{Name: "AWS_EC2_METADATA_DISABLED", Value: "true"},
		},
		Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9480}},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("admin")}},
			PeriodSeconds:    1,
			FailureThreshold: 30,
		},
		SecurityContext: sc,
		VolumeMounts: []corev1.VolumeMount{
			{Name: "warden-token", MountPath: "/var/run/secrets/warden", ReadOnly: true},
			{Name: "warden-spool", MountPath: "/var/lib/warden"},
			{Name: "warden-podinfo", MountPath: "/etc/podinfo", ReadOnly: true},
		},
	}}
	p.Spec.Volumes = []corev1.Volume{
		{Name: "warden-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: testAudience, ExpirationSeconds: ptr(int64(3600)), Path: "token",
			}}},
		}}},
		{Name: "warden-spool", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "warden-podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			},
		}}},
	}
	return p
}

func tokenRequest(audience string, pod *corev1.Pod) *authenticationv1.TokenRequest {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: ptr(int64(3600)),
	}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	return tr
}

func debugContainer() corev1.EphemeralContainer {
	return corev1.EphemeralContainer{
		TargetContainerName: "app",
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name:            "debugger",
			Image:           "example.invalid/busybox:1",
			SecurityContext: restrictedContext(1000),
		},
	}
}

// execInto issues the exec (or attach) request kubectl would, without the
// stream upgrade: admission answers before the API server looks for the
// node's kubelet.
func execInto(ctx context.Context, cs kubernetes.Interface, ns, pod, sub, container string) error {
	return streamRequest(ctx, cs.CoreV1().RESTClient().Post(), ns, pod, sub, container)
}

// streamRequest sends an exec or attach request with verb's method: POST
// (SPDY clients) or GET (kubectl's WebSocket client since v1.30).
func streamRequest(ctx context.Context, req *rest.Request, ns, pod, sub, container string) error {
	req = req.Namespace(ns).Resource("pods").Name(pod).SubResource(sub)
	switch sub {
	case "exec":
		req = req.VersionedParams(&corev1.PodExecOptions{Container: container, Command: []string{"sh"}, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	case "attach":
		req = req.VersionedParams(&corev1.PodAttachOptions{Container: container, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	}
	return req.Do(ctx).Error()
}

// noKubelet reports whether err is what an exec that admission allowed gets
// from this cluster: the API server looks up the pod's node to reach its
// kubelet and finds no Node object (v1.36 reports the NotFound under the
// request's resource: pods "node-1" not found).
func noKubelet(err error) bool {
	return err != nil && apierrors.IsNotFound(err) && strings.Contains(err.Error(), `"`+nodeName+`" not found`) &&
		!strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
}

// withoutWardenToken is p without Warden's token volume and its mount.
func withoutWardenToken(p *corev1.Pod) *corev1.Pod {
	p.Spec.Volumes = slices.DeleteFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "warden-token" })
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "warden-token" })
	}
	return p
}
