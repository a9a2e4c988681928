package calltrace

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// calltrace reads traces of Warden; it is a tool of warden-bench and the
// tests, never of the request path, and knows nothing of Warden's packages
// (the task and region names are its only contract with proxy).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/cmd/...":     "calltrace sits below the commands",
			deptest.Module + "/proxy/...":   "the task and region names are the contract, not proxy's code",
			deptest.Module + "/authz/...":   "a trace reader knows nothing of policy",
			deptest.Module + "/audit/...":   "a trace reader knows nothing of audit",
			deptest.Module + "/guard/...":   "a trace reader knows nothing of guards",
			deptest.Module + "/bedrock/...": "a trace reader knows nothing of Bedrock",
			"net/http":                      "it reads a file; fetching a trace is the bench's job",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{"golang.org/x/exp/trace"},
	}.Check(t)
}
