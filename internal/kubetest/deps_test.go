package kubetest

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// kubetest is a test and tooling helper that imports nothing of Warden's.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.OutsideWarden(deptest.Module + "/internal/kubetest")}.Check(t)
}
