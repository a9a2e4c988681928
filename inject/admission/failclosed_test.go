package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMissingParamsDeny: without the parameters the bindings deny what they
// match (parameterNotFoundAction: Deny), rather than letting pods through
// unchecked. The test removes the shared parameters and puts them back.
func TestMissingParamsDeny(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	ns := f.namespace(t, nsOpts{enrolled: true})
	cms := f.c.Client.CoreV1().ConfigMaps(ParamsNamespace)
	saved, err := cms.Get(ctx, ParamsName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, ParamsName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		saved.ResourceVersion = ""
		if _, err := cms.Create(context.Background(), saved, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Errorf("restore parameters: %v", err)
		}
	}
	t.Cleanup(restore)

	create := func() error {
		_, err := f.as(t, teamUser).CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "no-params"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	// The deletion reaches admission through an informer.
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for last = create(); !deniedWithoutParams(last); last = create() {
		if time.Now().After(deadline) {
			t.Fatalf("the canonical pod is still admitted 30s after the parameters were deleted: %v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("without parameters: %v", last)

	restore()
	deadline = time.Now().Add(30 * time.Second)
	for last = create(); last != nil; last = create() {
		if time.Now().After(deadline) {
			t.Fatalf("the canonical pod is still refused 30s after the parameters came back: %v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deniedWithoutParams: the binding cannot find its parameters. The API server
// answers with reason Invalid (422) here: the denial is not one of the
// policy's validations, whose reason the policy sets.
func deniedWithoutParams(err error) bool {
	return err != nil && apierrors.IsInvalid(err) &&
		strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+PolicyPods+"'") &&
		strings.Contains(err.Error(), "no params found for policy binding with `Deny` parameterNotFoundAction")
}
