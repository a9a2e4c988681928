package budget

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// budget answers "may they, this much?": it enforces the apps' budgets on
// plain numbers the proxy measured, and records nothing itself.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...":    "budget sits below proxy; proxy asks it",
			deptest.Module + "/audit/...":    "budget does not record or price; proxy prices the call and records the answer",
			deptest.Module + "/guard/...":    "budget counts, it does not read content",
			deptest.Module + "/authz/models": "proxy resolves model ids before it asks",
			deptest.Module + "/config":       "the loader assembles the budgets section; budget does not read the file",
			deptest.Module + "/cmd/...":      "budget sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/authz/policy", deptest.Module + "/bedrock", "github.com/redis/go-redis/v9"},
	}.Check(t)
}
