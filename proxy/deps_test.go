package proxy

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// proxy owns the request's life and sits under the commands only; it links no
// test emulator (bedrocktest and kin are for tests, benchmarks and demos).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/cmd/...": "proxy sits below the commands",
		},
		BadDep: deptest.TestPackage,
		WantDeps: []string{
			deptest.Module + "/config",
			deptest.Module + "/guard",
			deptest.Module + "/audit",
			deptest.Module + "/bedrock",
		},
	}.Check(t)
}
