package sigv4

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// sigv4 verifies and signs AWS Signature Version 4: it imports nothing of
// Warden's (not even bedrock, whose routes it knows nothing of), so identity,
// proxy and the emulator can all use it, and no test package.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.Rules(deptest.OutsideWarden(deptest.Module+"/bedrock/sigv4"), deptest.TestPackage)}.Check(t)
}
