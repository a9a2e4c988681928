package bedrocktest

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// bedrocktest emulates AWS for the tests, the demo and the benchmarks: it
// checks SigV4 with bedrock/sigv4 and knows nothing else of Warden's, so it
// cannot grow a dependency on the code it is used to test.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDep:   deptest.OutsideWarden(deptest.Module + "/bedrock/sigv4"),
		WantDeps: []string{deptest.Module + "/bedrock/sigv4"},
	}.Check(t)
}
