package docs

import (
	"testing"

	"github.com/warden-egress/warden/internal/deptest"
)

// docs checks Markdown and the schema file as text: it links nothing of
// Warden's, so a broken package cannot hide a broken doc.
func TestDeps(t *testing.T) {
	deptest.DepChecker{BadDep: deptest.OutsideWarden(deptest.Module + "/internal/docs")}.Check(t)
}
