package guard

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// guard decides whether text is acceptable: it imports no other Warden package
// (it shares nothing with authz, audit or proxy) and no net/http (the
// detectors see text, never a request; proxy keeps the HTTP relay).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			"net/http": "the detectors see text, not requests; HTTP belongs to proxy",
		},
		BadDep: deptest.Rules(deptest.OutsideWarden(deptest.Module+"/guard"), deptest.TestPackage),
	}.Check(t)
}
