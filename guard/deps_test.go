package guard

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// guard applies the detectors to a call described by plain values: it sits
// above guard/detect and bedrock and below proxy, which relays the HTTP and
// fills the audit record from the typed Outcome. It imports no proxy, no
// authz (whose config file refers to guard.Config, not the reverse) and no
// audit (its Finding is its own; proxy converts).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...": "guard sits below proxy; proxy relays the HTTP and calls guard",
			deptest.Module + "/authz/...": "authz's config refers to guard.Config; guard must not reach back",
			deptest.Module + "/audit/...": "guard returns its own Finding; proxy turns the outcome into the record",
			deptest.Module + "/cmd/...":   "guard sits below the commands",
		},
		BadDep: deptest.TestPackage,
		WantDeps: []string{
			deptest.Module + "/guard/detect",
			deptest.Module + "/bedrock",
			"github.com/aws/aws-sdk-go-v2/service/bedrockruntime",
		},
	}.Check(t)
}
