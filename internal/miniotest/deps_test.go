package miniotest

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// miniotest is a test helper: it imports only the other helpers it builds on
// (proctest, testenv), nothing of the code under test.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.OutsideWarden(deptest.Module+"/internal/miniotest", deptest.Module+"/internal/proctest", deptest.Module+"/internal/testenv")}.Check(t)
}
