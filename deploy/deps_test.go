package deploy_test

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// The deploy package is documentation and tests: it imports nothing.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/...": "package deploy holds deployment files and their tests, and builds into nothing",
		},
	}.Check(t)
}
