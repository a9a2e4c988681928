package inject

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// The injector speaks only Kubernetes and writes Warden's configuration as
// YAML: it links none of Warden's request path (proxy, authz, guard,
// audit), no test emulator, and sits under the commands.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/cmd/...":   "inject sits below the commands",
			deptest.Module + "/proxy/...": "the injector is not on the request path",
			deptest.Module + "/authz/...": "the sidecar config is checked by `warden policy validate` in cmd, not linked here",
			deptest.Module + "/guard/...": "the injector is not on the request path",
			deptest.Module + "/audit/...": "the injector is not on the request path",
		},
		BadDep: deptest.TestPackage,
	}.Check(t)
}
