package identity

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// identity answers "who is calling?" from the connection alone: it knows
// nothing of the policy that uses its answer, the records, the guards or the
// file that configures it.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...":    "identity sits below proxy; proxy asks it",
			deptest.Module + "/audit/...":    "identity does not record; proxy puts its answer in the record",
			deptest.Module + "/guard/...":    "identity does not read content",
			deptest.Module + "/authz/policy": "policy uses identity's answer, not the other way",
			deptest.Module + "/authz/models": "model resolution is not about the caller",
			deptest.Module + "/config":       "the loader assembles identity's section; identity does not read the file",
			deptest.Module + "/cmd/...":      "identity sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/bedrock/sigv4"},
	}.Check(t)
}
