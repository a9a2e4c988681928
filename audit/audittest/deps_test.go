package audittest

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// audittest holds audit sinks for tests: it sees the record (audit, and the
// bedrock types a record names) and nothing above it, so any package's tests
// can use it without an import cycle.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDep:   deptest.OutsideWarden(deptest.Module+"/audit", deptest.Module+"/bedrock"),
		WantDeps: []string{deptest.Module + "/audit"},
	}.Check(t)
}
