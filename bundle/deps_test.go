package bundle

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// bundle is a leaf: the policy is opaque bytes here, so it imports nothing
// of Warden's (the request path, the config loader and the commands use it).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/...": "bundle imports nothing of Warden's",
		},
		BadDep: deptest.TestPackage,
	}.Check(t)
}
