package deptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deptest is a test helper that imports nothing of Warden's (it reads the
// build graph through `go list`, never by linking the packages it checks).
func TestDeps(t *testing.T) {
	DepChecker{BadDep: OutsideWarden(Module + "/internal/deptest")}.Check(t)
}

// Every package of the module states its rules in a deps_test.go with a
// TestDeps, so a new package cannot skip the layering. Commands are main
// packages, which nothing can import: cmd/warden's linkage_test.go holds the
// rule that matters for them (the production binary links no test package),
// and the demo, bench and soak commands link the emulator on purpose.
func TestEveryPackageHasDepsTest(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := goList(nil, "-f", "{{.Dir}} {{.Name}}", Module+"/...")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		dir, name, _ := strings.Cut(line, " ")
		n++
		if name == "main" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "deps_test.go"))
		rel, _ := filepath.Rel(root, dir)
		if err != nil || !strings.Contains(string(b), "func TestDeps(") {
			t.Errorf("%s has no deps_test.go with a TestDeps: state what it may not import (see internal/deptest)", filepath.ToSlash(rel))
		}
	}
	if n < 20 {
		t.Fatalf("go list %s/... listed %d packages: not the module", Module, n)
	}
}
