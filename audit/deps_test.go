package audit

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// audit records what happened; it imports neither authz, guard nor proxy
// (DESIGN: they do not import each other; proxy fills the record). It may use
// net/http: its HTTP, S3 and CloudWatch sinks send over it.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/authz/...": "audit does not depend on authz; proxy converts decisions into records",
			deptest.Module + "/guard/...": "audit does not depend on guard; findings reach it as plain record fields",
			deptest.Module + "/proxy/...": "audit sits below proxy",
			deptest.Module + "/cmd/...":   "audit sits below the commands",
		},
		BadDep: deptest.TestPackage,
	}.Check(t)
}
