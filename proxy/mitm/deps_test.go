package mitm

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// mitm is a leaf under the listeners: the loader reads its Config, proxy
// uses its CA; it reaches into neither.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy":     "proxy uses the CA, not the other way",
			deptest.Module + "/authz/...": "the CA signs for hosts; it knows no callers, policy or loader",
			deptest.Module + "/audit/...": "the CA does not record",
			deptest.Module + "/guard/...": "the CA does not read content",
			deptest.Module + "/cmd/...":   "the CA sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/bedrock"},
	}.Check(t)
}
