package testenv

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// testenv is a test and tooling helper that imports nothing of Warden's.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.OutsideWarden(deptest.Module + "/internal/testenv")}.Check(t)
}
