package proxyproto

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// proxyproto is a leaf under the listeners: the loader reads its Config, so
// it must not reach back up into the request path or the loader.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/proxy":        "proxy wraps its listeners with this package, not the other way",
			deptest.Module + "/config":       "the loader assembles this package's Config",
			deptest.Module + "/authz/policy": "reading a header decides nothing",
			deptest.Module + "/audit/...":    "proxyproto does not record",
			deptest.Module + "/guard/...":    "proxyproto does not read content",
			deptest.Module + "/cmd/...":      "proxyproto sits below the commands",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{deptest.Module + "/authz/identity"},
	}.Check(t)
}
