package detect

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// detect decides whether text is acceptable: it imports no other Warden
// package (not even guard, which applies it) and no net/http (the detectors
// see text, never a request; proxy keeps the HTTP relay).
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		BadDeps: map[string]string{
			"net/http": "the detectors see text, not requests; HTTP belongs to proxy",
		},
		BadDep: deptest.Rules(deptest.OutsideWarden(deptest.Module+"/guard/detect"), deptest.TestPackage),
	}.Check(t)
}
