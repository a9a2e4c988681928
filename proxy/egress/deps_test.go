package egress

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// egress is a leaf of the request path: its rules know Bedrock's host names
// (bedrock), so no rule can cover one, and nothing else of Warden's; the
// loader imports it for the egress section, proxy for the rules.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDep:   deptest.Rules(deptest.OutsideWarden(deptest.Module+"/proxy/egress", deptest.Module+"/bedrock"), deptest.TestPackage),
		WantDeps: []string{deptest.Module + "/bedrock"},
	}.Check(t)
}
