package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

func warden(p *corev1.Pod) *corev1.Container {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == "warden" {
			return &p.Spec.InitContainers[i]
		}
	}
	panic("no warden container")
}

func app(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }

// TestPodsRejected: each way a team holding `edit` could write a pod that
// goes around the sidecar, refused at CREATE by warden-pods (or, where Pod
// Security "restricted" answers first, by PodSecurity).
func TestPodsRejected(t *testing.T) {
	f := installed(t)
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	plain := f.namespace(t, nsOpts{})
	optOut := f.namespace(t, nsOpts{enrolled: true, allowOptOut: true})
	team := f.as(t, teamUser)
	const (
		tokenMsg = "mounts a service-account token with Warden's audience (warden.bedrock); only the warden sidecar may"
		volMsg   = "mounts one of Warden's volumes"
		// Outside enrolled namespaces.
		plainTokenMsg = "volume warden-token projects a service-account token with Warden's audience (warden.bedrock), which only pods of enrolled namespaces may hold"
		// the same in an opted-out pod of an enrolled namespace
		optOutTokenMsg = "volume warden-token projects a service-account token with Warden's audience (warden.bedrock), but the pod opts out of Warden"
	)
	ownToken := func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "mine", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: testAudience, Path: "t"}}},
		}}})
		app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "mine", MountPath: "/var/run/aws"})
	}
	multiSource := func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kube-api-access-extra", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: testAudience, Path: "token"}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			},
		}}})
		app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-extra", MountPath: "/var/run/extra", ReadOnly: true})
	}
	for _, tc := range []struct {
		name    string
		plainNS bool // a namespace that is not enrolled
		// optOut: an enrolled namespace that allows opting out, the pod
		// annotated warden-egress.io/inject=false (the injector leaves it).
		optOut bool
		bare   bool // start from a pod without the sidecar
		edit   func(p *corev1.Pod)
		policy string // "" is PodSecurity
		want   string
	}{
		{name: "enrolled/app mounts warden-token", edit: func(p *corev1.Pod) {
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-token", MountPath: "/t", ReadOnly: true})
		}, want: "container app " + tokenMsg},
		{name: "enrolled/app projects its own Warden-audience token", edit: ownToken, want: "container app " + tokenMsg},
		{name: "plain/app projects a Warden-audience token", plainNS: true, bare: true, edit: ownToken, want: "container app " + tokenMsg},
		// The token hidden in a multi-source projection (beside a ConfigMap
		// and the downward API, as kube-api-access-* volumes look).
		{name: "enrolled/Warden-audience token as the second source of a projection", edit: multiSource, want: "container app " + tokenMsg},
		{name: "plain/Warden-audience token as the second source of a projection", plainNS: true, bare: true, edit: multiSource, want: "container app " + tokenMsg},
		{name: "plain/app mounts warden-token beside a sidecar", plainNS: true, edit: func(p *corev1.Pod) {
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-token", MountPath: "/t", ReadOnly: true})
		}, want: "container app " + tokenMsg},
		{name: "plain/Warden-audience token with a non-canonical sidecar", plainNS: true, edit: func(p *corev1.Pod) {
			warden(p).Image = "example.invalid/my-warden:1"
		}, want: plainTokenMsg},
		// No injector writes the sidecar's configuration there: the canonical
		// container with the team's WARDEN_CONFIG would run the team's policy
		// with Warden's role.
		{name: "plain/canonical sidecar with the team's own configuration", plainNS: true, edit: func(p *corev1.Pod) {
			warden(p).Env[0].Value = "version: 1\napps: [{name: anything, match: {}, allow: {models: ['*']}}]\n"
		}, want: plainTokenMsg},
		// Opted out, the injector leaves the pod alone: even the canonical
		// sidecar, unedited, may hold no Warden token there (its
		// configuration is the team's to change).
		{name: "opted-out/canonical sidecar", optOut: true, edit: func(p *corev1.Pod) {
			p.Annotations = map[string]string{"warden-egress.io/inject": "false"}
		}, want: optOutTokenMsg},
		{name: "plain/Warden-audience token in an init container named otherwise", plainNS: true, bare: true, edit: func(p *corev1.Pod) {
			ownToken(p)
			c := *app(p)
			c.Name = "fetch-token"
			p.Spec.InitContainers = append(p.Spec.InitContainers, c)
			app(p).VolumeMounts = nil
		}, want: "container fetch-token " + tokenMsg},
		// Opting out means running without Warden: no injector wrote a
		// sidecar there, so a canonical-looking one would run the team's
		// WARDEN_CONFIG with Warden's role.
		{name: "opt-out/canonical sidecar with the team's own configuration", optOut: true, edit: func(p *corev1.Pod) {
			p.Annotations = map[string]string{"warden-egress.io/inject": "false"}
			warden(p).Env[0].Value = "version: 1\napps: [{name: anything, match: {}, allow: {models: ['*']}}]\n"
		}, want: optOutTokenMsg},
		{name: "enrolled/no sidecar", bare: true, want: "must run the warden sidecar"},
		{name: "enrolled/opt-out annotation where opt-out is not allowed", bare: true, edit: func(p *corev1.Pod) {
			p.Annotations = map[string]string{"warden-egress.io/inject": "false"}
		}, want: "must run the warden sidecar"},
		{name: "enrolled/warden as a regular container", bare: true, edit: func(p *corev1.Pod) {
			c := *warden(f.canonicalPod(p.Namespace, p.Name))
			c.RestartPolicy = nil
			p.Spec.Containers = append(p.Spec.Containers, c)
			p.Spec.Volumes = f.canonicalPod(p.Namespace, p.Name).Spec.Volumes
		}, want: "container warden " + tokenMsg},
		{name: "enrolled/image not in the allowed set", edit: func(p *corev1.Pod) {
			warden(p).Image = "ghcr.io/warden-egress/warden:latest"
		}, want: "runs image ghcr.io/warden-egress/warden:latest, which is not one of the allowed Warden images"},
		{name: "enrolled/changed args", edit: func(p *corev1.Pod) {
			warden(p).Args = []string{"serve", "--config", "/tmp/mine.yaml"}
		}, want: "command or args differ"},
		{name: "enrolled/command override", edit: func(p *corev1.Pod) {
			warden(p).Command = []string{"/busybox/sh", "-c"}
		}, want: "command or args differ"},
		{name: "enrolled/extra volumeMount in warden", edit: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "team-config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			warden(p).VolumeMounts = append(warden(p).VolumeMounts, corev1.VolumeMount{Name: "team-config", MountPath: "/etc/warden"})
		}, want: "mounts a volume, path or subPath the injector does not write"},
		{name: "enrolled/warden mount moved", edit: func(p *corev1.Pod) {
			warden(p).VolumeMounts[2].MountPath = "/etc/other"
		}, want: "mounts a volume, path or subPath the injector does not write"},
		{name: "enrolled/extra env in warden", edit: func(p *corev1.Pod) {
			warden(p).Env = append(warden(p).Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://team-proxy:3128"})
		}, want: "environment differs"},
		{name: "enrolled/warden claims another namespace", edit: func(p *corev1.Pod) {
			warden(p).Env[1].Value = "payments"
		}, want: "environment differs"},
		{name: "enrolled/warden claims another service account", edit: func(p *corev1.Pod) {
			warden(p).Env[2].Value = "payments-prod"
		}, want: "environment differs"},
		{name: "enrolled/warden token file elsewhere", edit: func(p *corev1.Pod) {
			warden(p).Env[6].Value = "/tmp/token"
		}, want: "environment differs"},
		{name: "enrolled/warden may use the node's instance role", edit: func(p *corev1.Pod) {
			warden(p).Env[7].Value = "false"
		}, want: "environment differs"},
		{name: "enrolled/envFrom in warden", edit: func(p *corev1.Pod) {
			warden(p).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "team"}}}}
		}, want: "environment differs"},
		{name: "enrolled/postStart hook in warden", edit: func(p *corev1.Pod) {
			warden(p).Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "cat /var/run/secrets/warden/token"}}}}
		}, want: "lifecycle hooks or exec probes"},
		{name: "enrolled/exec probe in warden", edit: func(p *corev1.Pod) {
			warden(p).LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "true"}}}}
		}, want: "lifecycle hooks or exec probes"},
		{name: "enrolled/warden with a writable root filesystem", edit: func(p *corev1.Pod) {
			warden(p).SecurityContext.ReadOnlyRootFilesystem = ptr(false)
		}, want: "securityContext differs"},
		{name: "enrolled/warden not a native sidecar", edit: func(p *corev1.Pod) {
			warden(p).RestartPolicy = nil
			warden(p).StartupProbe = nil
		}, want: "must be a native sidecar"},
		{name: "enrolled/app mounts warden-spool", edit: func(p *corev1.Pod) {
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-spool", MountPath: "/spool"})
		}, want: "container app " + volMsg},
		{name: "enrolled/app mounts warden-podinfo", edit: func(p *corev1.Pod) {
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-podinfo", MountPath: "/podinfo", ReadOnly: true})
		}, want: "container app " + volMsg},
		{name: "enrolled/app mounts warden-ca writable", edit: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "warden-ca", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-ca", MountPath: "/etc/warden-ca"})
		}, want: "container app " + volMsg},
		{name: "enrolled/app without runAsUser", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.RunAsUser = nil
		}, want: "container app must set runAsUser (container or pod securityContext) to a uid other than Warden's 65532"},
		{name: "enrolled/app runs as 65532", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.RunAsUser = ptr(int64(65532))
		}, want: "container app must set runAsUser"},
		{name: "enrolled/pod-level runAsUser 65532 inherited by the app", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.RunAsUser = nil
			p.Spec.SecurityContext.RunAsUser = ptr(int64(65532))
		}, want: "container app must set runAsUser"},
		{name: "enrolled/app runs with gid 65532", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.RunAsGroup = ptr(int64(65532))
		}, want: "container app may not run with Warden's gid 65532"},
		{name: "enrolled/pod-level runAsGroup 65532 inherited by the app", edit: func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsGroup = ptr(int64(65532))
		}, want: "container app may not run with Warden's gid 65532"},
		{name: "enrolled/init container without runAsUser", edit: func(p *corev1.Pod) {
			c := *app(p)
			c.Name = "migrate"
			c.SecurityContext = restrictedContext(0)
			c.SecurityContext.RunAsUser = nil
			p.Spec.InitContainers = append(p.Spec.InitContainers, c)
		}, want: "container migrate must set runAsUser"},
		{name: "enrolled/shareProcessNamespace", edit: func(p *corev1.Pod) {
			p.Spec.ShareProcessNamespace = ptr(true)
		}, want: "may not share a process namespace"},
		{name: "enrolled/replaced downward-API volume", edit: func(p *corev1.Pod) {
			for i := range p.Spec.Volumes {
				if p.Spec.Volumes[i].Name == "warden-podinfo" {
					p.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "fake-labels"}}}
				}
			}
		}, want: "Warden's volumes must be what the injector makes them"},
		{name: "enrolled/downward-API volume with a chosen label file", edit: func(p *corev1.Pod) {
			for i := range p.Spec.Volumes {
				if p.Spec.Volumes[i].Name == "warden-podinfo" {
					p.Spec.Volumes[i].DownwardAPI.Items[0].FieldRef.FieldPath = "metadata.annotations"
				}
			}
		}, want: "Warden's volumes must be what the injector makes them"},
		{name: "enrolled/spool on a persistent volume", edit: func(p *corev1.Pod) {
			for i := range p.Spec.Volumes {
				if p.Spec.Volumes[i].Name == "warden-spool" {
					p.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "team-pvc"}}
				}
			}
		}, want: "Warden's volumes must be what the injector makes them"},
		// IRSA and EKS Pod Identity give their credentials to every
		// container of the pod, so neither may serve an enrolled pod: the
		// shapes the EKS pod identity webhook writes, each part alone.
		{name: "enrolled/IRSA token volume", edit: func(p *corev1.Pod) {
			irsaVolume(p, "aws-iam-token", "sts.amazonaws.com")
		}, want: "volume aws-iam-token projects a service-account token for AWS (sts.amazonaws.com)"},
		{name: "enrolled/IRSA env in the app", edit: func(p *corev1.Pod) {
			app(p).Env = append(app(p).Env, corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/app"},
				corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"})
		}, want: "container app has AWS_ROLE_ARN"},
		{name: "enrolled/EKS Pod Identity token volume", edit: func(p *corev1.Pod) {
			irsaVolume(p, "eks-pod-identity-token", "pods.eks.amazonaws.com")
		}, want: "volume eks-pod-identity-token projects a service-account token for AWS (pods.eks.amazonaws.com)"},
		{name: "enrolled/EKS Pod Identity env in an init container", edit: func(p *corev1.Pod) {
			c := *app(p)
			c.Name = "migrate"
			c.Env = []corev1.EnvVar{{Name: "AWS_CONTAINER_CREDENTIALS_FULL_URI", Value: "http://169.254.170.23/v1/credentials"},
				{Name: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Value: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"}}
			p.Spec.InitContainers = append(p.Spec.InitContainers, c)
		}, want: "container migrate has AWS_CONTAINER_CREDENTIALS_FULL_URI"},
		// Pod Security "restricted" (pinned on enrolled namespaces by
		// warden-namespaces) runs before the policies and answers these
		// first; warden-pods refuses them too where PodSecurity is off.
		{name: "enrolled/hostPath", policy: "", edit: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kubelet", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/kubelet/pods"}}})
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "kubelet", MountPath: "/pods", ReadOnly: true})
		}, want: `violates PodSecurity "restricted:latest": restricted volume types (volume "kubelet" uses restricted volume type "hostPath")`},
		{name: "enrolled/hostPID", policy: "", edit: func(p *corev1.Pod) {
			p.Spec.HostPID = true
		}, want: `violates PodSecurity "restricted:latest": host namespaces (hostPID=true)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := enrolled
			if tc.plainNS {
				ns = plain
			}
			if tc.optOut {
				ns = optOut
			}
			name := "p-" + strings.NewReplacer(" ", "-", "/", "-", "'", "").Replace(strings.ToLower(tc.name))
			if len(name) > 63 {
				name = name[:63]
			}
			name = strings.TrimRight(name, "-")
			p := f.canonicalPod(ns, name)
			if tc.bare {
				p = plainPod(ns, name)
			}
			if tc.edit != nil {
				tc.edit(p)
			}
			_, err := team.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
			if tc.policy == "" && (strings.HasPrefix(tc.want, "violates PodSecurity")) {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want PodSecurity's denial %q, got: %v", tc.want, err)
				}
				return
			}
			wantDenied(t, err, PolicyPods, tc.want)
		})
	}
}

// TestPodsAllowed: what the policies must let through, checked against the
// stored object.
func TestPodsAllowed(t *testing.T) {
	f := installed(t)
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	optOut := f.namespace(t, nsOpts{enrolled: true, allowOptOut: true})
	plain := f.namespace(t, nsOpts{})
	team := f.as(t, teamUser)
	for _, tc := range []struct {
		name string
		ns   string
		pod  func(ns string) *corev1.Pod
	}{
		{name: "canonical pod in an enrolled namespace", ns: enrolled, pod: func(ns string) *corev1.Pod { return f.canonicalPod(ns, "canonical") }},
		{name: "canonical pod on the previous image (N-1)", ns: enrolled, pod: func(ns string) *corev1.Pod {
			p := f.canonicalPod(ns, "previous")
			warden(p).Image = f.params.Images[1]
			return p
		}},
		{name: "canonical pod in proxy mode (warden-ca read-only in the app)", ns: enrolled, pod: func(ns string) *corev1.Pod {
			p := f.canonicalPod(ns, "proxy")
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "warden-ca", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			warden(p).VolumeMounts = append(warden(p).VolumeMounts, corev1.VolumeMount{Name: "warden-ca", MountPath: "/etc/warden-ca"})
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "warden-ca", MountPath: "/etc/warden-ca", ReadOnly: true})
			return p
		}},
		{name: "app uid from the pod securityContext", ns: enrolled, pod: func(ns string) *corev1.Pod {
			p := f.canonicalPod(ns, "pod-uid")
			app(p).SecurityContext.RunAsUser = nil
			p.Spec.SecurityContext.RunAsUser = ptr(int64(1000))
			return p
		}},
		{name: "opted-out pod where the namespace allows it", ns: optOut, pod: func(ns string) *corev1.Pod {
			p := plainPod(ns, "opted-out")
			p.Annotations = map[string]string{"warden-egress.io/inject": "false"}
			return p
		}},
		{name: "ordinary pod in a namespace that is not enrolled", ns: plain, pod: func(ns string) *corev1.Pod {
			p := plainPod(ns, "ordinary")
			app(p).SecurityContext = nil // no runAsUser: only enrolled namespaces require one
			p.Spec.ShareProcessNamespace = ptr(true)
			return p
		}},
		{name: "pod with a token for another audience in a namespace that is not enrolled", ns: plain, pod: func(ns string) *corev1.Pod {
			p := plainPod(ns, "vault")
			p.Spec.Volumes = []corev1.Volume{{Name: "vault", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "t"}}},
			}}}}
			app(p).VolumeMounts = []corev1.VolumeMount{{Name: "vault", MountPath: "/var/run/vault"}}
			return p
		}},
		{name: "IRSA in a namespace that is not enrolled", ns: plain, pod: func(ns string) *corev1.Pod {
			p := plainPod(ns, "irsa")
			irsaVolume(p, "aws-iam-token", "sts.amazonaws.com")
			app(p).Env = []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/app"},
				{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}}
			return p
		}},
		{name: "sidecar without Warden's token in a namespace that is not enrolled", ns: plain, pod: func(ns string) *corev1.Pod {
			return withoutWardenToken(f.canonicalPod(ns, "no-token"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pod(tc.ns)
			got, err := team.CoreV1().Pods(tc.ns).Create(context.Background(), want, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			stored, err := f.c.Client.CoreV1().Pods(tc.ns).Get(context.Background(), got.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(stored.Spec.InitContainers) != len(want.Spec.InitContainers) || len(stored.Spec.Volumes) != len(want.Spec.Volumes) {
				t.Fatalf("stored pod differs: %d init containers and %d volumes, want %d and %d",
					len(stored.Spec.InitContainers), len(stored.Spec.Volumes), len(want.Spec.InitContainers), len(want.Spec.Volumes))
			}
		})
	}
}

// TestInjectorNamespaceExempt: the injector's own namespace is outside the
// pod rules (it runs the injector, never enrolled).
func TestInjectorNamespaceExempt(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	if _, err := f.c.Client.CoreV1().ServiceAccounts(ParamsNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: appSA}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	p := plainPod(ParamsNamespace, "exempt")
	p.Spec.Volumes = []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: testAudience, Path: "t"}}},
	}}}}
	app(p).VolumeMounts = []corev1.VolumeMount{{Name: "tok", MountPath: "/t"}}
	if _, err := f.c.Client.CoreV1().Pods(ParamsNamespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a pod in the injector's namespace was refused: %v", err)
	}
	t.Cleanup(func() {
		_ = f.c.Client.CoreV1().Pods(ParamsNamespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	})
}

// TestHostRulesWithoutPodSecurity: where Pod Security does not answer first
// (a namespace enrolled before the policies, without the restricted label; a
// cluster without the PodSecurity plugin), warden-pods itself refuses host
// namespaces and hostPath.
func TestHostRulesWithoutPodSecurity(t *testing.T) {
	f := installed(t)
	ns := f.namespace(t, nsOpts{existing: legacyNamespace})
	t.Cleanup(func() {
		_ = f.c.Client.CoreV1().Pods(ns).DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}, metav1.ListOptions{})
	})
	team := f.as(t, teamUser)
	const hostMsg = "pods in enrolled namespaces may not share a process namespace or use the host's PID or network namespace"
	for _, tc := range []struct {
		name string
		edit func(p *corev1.Pod)
		want string // "" allowed
	}{
		{name: "hostPath into the kubelet's pod directories", edit: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kubelet", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/kubelet/pods"}}})
			app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "kubelet", MountPath: "/pods", ReadOnly: true})
		}, want: "volume kubelet is a hostPath: not allowed in enrolled namespaces"},
		{name: "hostPID", edit: func(p *corev1.Pod) { p.Spec.HostPID = true }, want: hostMsg},
		{name: "hostNetwork", edit: func(p *corev1.Pod) { p.Spec.HostNetwork = true }, want: hostMsg},
		// A privileged container, or one with SYS_ADMIN, can mount the
		// node's disk and read the pod's own warden-token from the kubelet's
		// directory, hostPath or not.
		{name: "privileged app container", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.Privileged = ptr(true)
			app(p).SecurityContext.AllowPrivilegeEscalation = nil
		}, want: "container app may not be privileged or add capabilities other than NET_BIND_SERVICE"},
		{name: "added capability in the app", edit: func(p *corev1.Pod) {
			app(p).SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		}, want: "container app may not be privileged or add capabilities other than NET_BIND_SERVICE"},
		// Transparent mode exempts Warden's uid from the redirect. Where
		// Pod Security is off and warden-transparent is not bound (no
		// allow-transparent label), an app running as root keeps
		// CAP_SETUID, switches to uid 65532 and its sockets leave the pod
		// unredirected (the same goes for a setuid-65532 binary without
		// allowPrivilegeEscalation=false).
		{name: "transparent pod whose app runs as root", edit: func(p *corev1.Pod) {
			transparent(f, p)
			app(p).SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(0))}
			p.Spec.SecurityContext.RunAsNonRoot = nil
		}, want: "warden-iptables (transparent mode) only in namespaces that allow transparent mode"},
		{name: "restricted transparent pod", edit: func(p *corev1.Pod) { transparent(f, p) },
			want: "warden-iptables (transparent mode) only in namespaces that allow transparent mode"},
		{name: "canonical pod", edit: func(*corev1.Pod) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.canonicalPod(ns, "h-"+strings.ReplaceAll(strings.ToLower(strings.Fields(tc.name)[0]), "'", ""))
			tc.edit(p)
			_, err := team.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantDenied(t, err, PolicyPods, tc.want)
		})
	}
}

// transparent makes a canonical pod a transparent-mode one: the injector's
// warden-iptables init container first.
func transparent(f *fixture, p *corev1.Pod) {
	p.Spec.InitContainers = append([]corev1.Container{{
		Name:  "warden-iptables",
		Image: f.params.Images[0],
		Args:  f.params.IptablesArgs,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}}, p.Spec.InitContainers...)
}

// irsaVolume adds a projected token volume for an AWS audience, mounted in
// the app container where the EKS pod identity webhook mounts it.
func irsaVolume(p *corev1.Pod, name, audience string) {
	exp := int64(86400)
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, ExpirationSeconds: &exp, Path: "token"}}},
	}}})
	dir := "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	if audience == "pods.eks.amazonaws.com" {
		dir = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
	}
	app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
}
