package redirect

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// redirect is a leaf the init step uses: netlink and nftables, nothing of
// Warden's request path, so the transparent-mode setup cannot drag policy or
// proxy code (or their dependencies) in, and they cannot reach netlink.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			deptest.Module + "/cmd/...":     "redirect sits below the commands",
			deptest.Module + "/proxy":       "the rule set knows nothing of the request path",
			deptest.Module + "/authz/...":   "the rule set knows nothing of policy",
			deptest.Module + "/audit/...":   "the rule set knows nothing of audit",
			deptest.Module + "/guard/...":   "the rule set knows nothing of guards",
			deptest.Module + "/bedrock/...": "the rule set knows nothing of Bedrock",
			"os/exec":                       "the redirect is programmed over netlink; it runs no binary (the distroless image has none)",
		},
		BadDep:   deptest.TestPackage,
		WantDeps: []string{"github.com/google/nftables", "github.com/mdlayher/netlink"},
	}.Check(t)
}
