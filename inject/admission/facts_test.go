package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAPIServerFacts records what kube-apiserver's admission shows a
// ValidatingAdmissionPolicy for the requests the Warden policies judge, on the
// version tools/kube builds: a policy that denies everything in one namespace
// and writes the attributes into its message. The Warden policies rely on
// these facts (CONNECT is evaluated; the exec/attach object names the
// container; a token request's object is the TokenRequest).
func TestAPIServerFacts(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	admin := f.c.Client
	ns := f.namespace(t, nsOpts{enrolled: true, extraLabels: map[string]string{"kt-facts": "true"}})
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "facts"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	const name = "kt-facts"
	describe := `'op=' + request.operation +
		' kind=' + request.kind.group + '/' + request.kind.version + '/' + request.kind.kind +
		' resource=' + request.resource.resource + ' sub=' + request.subResource + ' name=' + request.name +
		' user=' + request.userInfo.username +
		' object=' + object.?apiVersion.orValue('<none>') + '/' + object.?kind.orValue('<none>') +
		(request.subResource == 'token'
			? ' audiences=' + object.spec.audiences.join(',') + ' bound=' + object.spec.?boundObjectRef.?kind.orValue('<none>')
			: ' container=' + object.?container.orValue('<none>'))`
	fail := admissionregistrationv1.Fail
	forbidden := metav1.StatusReasonForbidden
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
				{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/exec", "pods/attach"}},
				}},
				{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"serviceaccounts/token"}},
				}},
			}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", MessageExpression: describe, Reason: &forbidden}},
		},
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kt-facts": "true"},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	node := f.as(t, nodeUser)
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{{
		name: "exec is CONNECT on pods-exec, object PodExecOptions",
		do:   func() error { return execInto(ctx, f.as(t, breakGlassUser), ns, pod.Name, "exec", "app") },
		want: "op=CONNECT kind=/v1/PodExecOptions resource=pods sub=exec name=facts user=bob object=v1/PodExecOptions container=app",
	}, {
		name: "attach is CONNECT on pods-attach, object PodAttachOptions",
		do:   func() error { return execInto(ctx, f.as(t, breakGlassUser), ns, pod.Name, "attach", "warden") },
		want: "op=CONNECT kind=/v1/PodAttachOptions resource=pods sub=attach name=facts user=bob object=v1/PodAttachOptions container=warden",
	}, {
		name: "token request is CREATE on serviceaccounts-token, object TokenRequest",
		do: func() error {
			_, err := node.CoreV1().ServiceAccounts(ns).CreateToken(ctx, appSA, tokenRequest(testAudience, pod), metav1.CreateOptions{})
			return err
		},
		want: "op=CREATE kind=authentication.k8s.io/v1/TokenRequest resource=serviceaccounts sub=token name=app user=system:node:node-1 object=authentication.k8s.io/v1/TokenRequest audiences=warden.bedrock bound=Pod",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			// The facts policy reaches admission a moment after it is stored.
			deadline := time.Now().Add(30 * time.Second)
			for {
				err := tc.do()
				if deniedBy(err, name) {
					if !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("admission saw something else:\n got: %v\nwant: %s", err, tc.want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("facts policy never answered; last: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
