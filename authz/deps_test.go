package authz

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// authz answers who is calling and whether they may: it imports neither
// proxy, audit nor guard (DESIGN: the middle layer's packages do not import
// each other), only bedrock below it.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...": "authz sits below proxy; proxy asks it",
			deptest.Module + "/audit/...": "authz does not record; proxy turns its decision into a record",
			deptest.Module + "/guard/...": "authz does not depend on guard; the shared PII type list is checked by a test, not an import",
			deptest.Module + "/cmd/...":   "authz sits below the commands",
		},
		BadDep: deptest.TestPackage,
	}.Check(t)
}
