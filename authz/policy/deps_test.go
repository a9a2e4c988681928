package policy

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// policy answers "may they?" from an identity and a call: the only place a
// call is allowed or denied. It reads identity's answer and bedrock's call
// vocabulary, and nothing of the request path, the records or the guards.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...":    "policy sits below proxy; proxy asks it",
			deptest.Module + "/audit/...":    "policy does not record; proxy turns its decision into a record",
			deptest.Module + "/guard/...":    "policy decides on the caller and the call, not the content",
			deptest.Module + "/authz/models": "proxy resolves model ids before it asks the policy",
			deptest.Module + "/config":       "the loader assembles the policy's section; policy does not read the file",
			deptest.Module + "/cmd/...":      "policy sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/authz/identity", deptest.Module + "/bedrock"},
	}.Check(t)
}
