package bedrock

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// bedrock is the bottom layer (DESIGN: cmd → proxy → authz | guard | audit →
// bedrock): it imports no other Warden package. It may use net/http for
// header and error shapes; it does no I/O of its own.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.Rules(deptest.OutsideWarden(deptest.Module+"/bedrock"), deptest.TestPackage)}.Check(t)
}
