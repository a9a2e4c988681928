package admission

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// controller is the identity a workload controller of kube-controller-manager
// creates pods with (its service account in kube-system; the API server's
// bootstrap RBAC lets it create pods everywhere).
func controller(name string) rest.ImpersonationConfig {
	return rest.ImpersonationConfig{UserName: "system:serviceaccount:kube-system:" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}
}

// TestControllerCreatedPods: a team cannot go around the sidecar through a
// Deployment, StatefulSet, Job or CronJob template. The policies judge pods,
// not templates, and the pods a controller makes from a template pass
// admission like any other, with the controller as the requester (there is
// no kube-controller-manager here, so the test creates each template's pod
// as the controller would: same spec, the controller's identity, an owner
// reference). The team's workload object itself is stored, its pods refused.
func TestControllerCreatedPods(t *testing.T) {
	f := installed(t)
	enrolled := f.namespace(t, nsOpts{enrolled: true})
	plain := f.namespace(t, nsOpts{})
	team := f.as(t, teamUser)
	ctx := context.Background()
	tmpl := func(ns, name string, edit func(*corev1.Pod)) corev1.PodTemplateSpec {
		p := plainPod(ns, name)
		if edit != nil {
			edit(p)
		}
		p.Spec.NodeName = ""
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: p.Labels, Annotations: p.Annotations}, Spec: p.Spec}
	}
	stealToken := func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "mine", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: testAudience, Path: "t"}}},
		}}})
		app(p).VolumeMounts = append(app(p).VolumeMounts, corev1.VolumeMount{Name: "mine", MountPath: "/var/run/aws"})
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "chatbot"}}
	for _, tc := range []struct {
		name       string
		ns         string
		controller string // the kube-controller-manager controller that makes the pods
		kind       string
		create     func(ns string, tpl corev1.PodTemplateSpec) (metav1.Object, error)
		edit       func(*corev1.Pod)
		want       string
	}{
		{name: "Deployment without the sidecar", ns: enrolled, controller: "replicaset-controller", kind: "ReplicaSet",
			create: func(ns string, tpl corev1.PodTemplateSpec) (metav1.Object, error) {
				return team.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chatbot"},
					Spec: appsv1.DeploymentSpec{Selector: sel, Template: tpl}}, metav1.CreateOptions{})
			}, want: "must run the warden sidecar"},
		{name: "StatefulSet without the sidecar", ns: enrolled, controller: "statefulset-controller", kind: "StatefulSet",
			create: func(ns string, tpl corev1.PodTemplateSpec) (metav1.Object, error) {
				return team.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "chatbot"},
					Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tpl}}, metav1.CreateOptions{})
			}, want: "must run the warden sidecar"},
		{name: "Job with the opt-out annotation where opt-out is not allowed", ns: enrolled, controller: "job-controller", kind: "Job",
			create: func(ns string, tpl corev1.PodTemplateSpec) (metav1.Object, error) {
				tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
				return team.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report"},
					Spec: batchv1.JobSpec{Template: tpl}}, metav1.CreateOptions{})
			}, edit: func(p *corev1.Pod) { p.Annotations = map[string]string{"warden-egress.io/inject": "false"} },
			want: "must run the warden sidecar"},
		{name: "CronJob's Job's pod projecting Warden's token, not enrolled", ns: plain, controller: "job-controller", kind: "Job",
			create: func(ns string, tpl corev1.PodTemplateSpec) (metav1.Object, error) {
				tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
				cj, err := team.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
					Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tpl}}}},
					metav1.CreateOptions{})
				if err != nil {
					return nil, err
				}
				// The cronjob-controller makes the Job, the job-controller its pod.
				return f.as(t, controller("cronjob-controller")).BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
					ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1",
						Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: ptr(true)}}},
					Spec: cj.Spec.JobTemplate.Spec}, metav1.CreateOptions{})
			}, edit: stealToken, want: "mounts a service-account token with Warden's audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner, err := tc.create(tc.ns, tmpl(tc.ns, "x", tc.edit))
			if err != nil {
				t.Fatalf("the workload object itself (a template, not a pod) is stored: %v", err)
			}
			var spec corev1.PodTemplateSpec
			switch o := owner.(type) {
			case *appsv1.Deployment:
				spec = o.Spec.Template
			case *appsv1.StatefulSet:
				spec = o.Spec.Template
			case *batchv1.Job:
				spec = o.Spec.Template
			default:
				t.Fatalf("unexpected owner %T", owner)
			}
			p := &corev1.Pod{ObjectMeta: spec.ObjectMeta, Spec: spec.Spec}
			p.GenerateName = owner.GetName() + "-"
			p.Spec.NodeName = nodeName
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: tc.kind, Name: owner.GetName(),
				UID: owner.GetUID(), Controller: ptr(true)}}
			if tc.kind == "Job" {
				p.OwnerReferences[0].APIVersion = "batch/v1"
			}
			_, err = f.as(t, controller(tc.controller)).CoreV1().Pods(tc.ns).Create(ctx, p, metav1.CreateOptions{})
			wantDenied(t, err, PolicyPods, tc.want)
		})
	}
}
