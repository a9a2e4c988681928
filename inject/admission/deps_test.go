package admission

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// admission is data plus a parameters codec: the injector imports it (to
// print the policies), so it must not import the injector, and it links
// neither the proxy nor any test package.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/cmd/...": "admission sits below the commands",
			deptest.Module + "/proxy":   "the policies have nothing to do with serving requests",
			deptest.Module + "/config":  "the policies are independent of Warden's own authorization",
		},
		BadDep: func(dep string) string {
			if dep == deptest.Module+"/inject" {
				return "the injector imports admission, not the other way round"
			}
			return deptest.TestPackage(dep)
		},
		WantDeps: []string{"k8s.io/api/admissionregistration/v1", "sigs.k8s.io/yaml"},
	}.Check(t)
}
