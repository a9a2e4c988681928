package config

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// The loader assembles the file from the sections the packages below it own
// (identity, policy, models, and the guard and audit sections); nothing of
// the request path.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			// proxy's leaf packages (proxyproto, mitm) own their sections'
			// types, which the loader assembles; proxy itself is above it.
			deptest.Module + "/proxy":   "the loader sits below proxy; proxy reads the config it returns",
			deptest.Module + "/cmd/...": "the loader sits below the commands",
		},
		BadDep: deptest.TestPackage,
		WantDeps: []string{
			deptest.Module + "/authz/identity",
			deptest.Module + "/authz/policy",
			deptest.Module + "/authz/models",
		},
	}.Check(t)
}
