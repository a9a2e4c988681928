package models

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// models resolves indirect model ids through the Bedrock control plane; it
// knows nothing of callers, decisions, records or guards.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy/...":      "models sits below proxy",
			deptest.Module + "/audit/...":      "models does not record",
			deptest.Module + "/guard/...":      "models does not read content",
			deptest.Module + "/authz/identity": "resolution does not depend on the caller",
			deptest.Module + "/authz/policy":   "the policy judges the resolved model; resolution does not judge",
			deptest.Module + "/config":         "the loader assembles the models section",
			deptest.Module + "/cmd/...":        "models sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/bedrock"},
	}.Check(t)
}
