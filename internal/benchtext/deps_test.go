package benchtext

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// benchtext is benchmark data that imports nothing of Warden's.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.OutsideWarden(deptest.Module + "/internal/benchtext")}.Check(t)
}
