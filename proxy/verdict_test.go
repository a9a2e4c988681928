package proxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOneVerdictWriter: a record's decision, rule and reason are assigned in
// verdict.go only, so what a call's verdict can be is read in one file.
func TestOneVerdictWriter(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "verdict.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(af, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok {
				return true
			}
			for _, lhs := range as.Lhs {
				sel, ok := lhs.(*ast.SelectorExpr)
				if !ok {
					continue
				}
				switch sel.Sel.Name {
				case "Decision", "Rule", "Reason":
					if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "rec" {
						t.Errorf("%s: assigns rec.%s outside verdict.go; use call.record, failed, forwarding or dryRunBlocked", fset.Position(as.Pos()), sel.Sel.Name)
					}
				}
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files: the test is not looking at the package", checked)
	}
}
