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
// verdict.go only (no assignment, no audit.Record literal elsewhere), the
// decision values are named there only, and proxy builds no policy.Decision
// of its own, so what a call's verdict can be is read in one file.
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
			switch n := n.(type) {
			case *ast.SelectorExpr:
				// The decision values are named in verdict.go only:
				// elsewhere a stage asks for deny through call.denied.
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "audit" && strings.HasPrefix(n.Sel.Name, "Decision") {
					t.Errorf("%s: names audit.%s outside verdict.go; use call.starts, denied, forwarding or dryRunBlocked", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.CompositeLit:
				typ := ""
				switch ty := n.Type.(type) {
				case *ast.SelectorExpr:
					if x, ok := ty.X.(*ast.Ident); ok {
						typ = x.Name + "." + ty.Sel.Name
					}
				case *ast.Ident:
					typ = ty.Name
				}
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key, _ := kv.Key.(*ast.Ident)
					switch {
					case key == nil:
					case typ == "audit.Record" && (key.Name == "Decision" || key.Name == "Rule" || key.Name == "Reason"):
						t.Errorf("%s: an audit.Record literal sets %s outside verdict.go", fset.Position(kv.Pos()), key.Name)
					case typ == "verdict" && key.Name == "decision":
						t.Errorf("%s: a verdict's decision is chosen outside verdict.go; use call.denied", fset.Position(kv.Pos()))
					}
				}
				// The policy decides; proxy only asks it.
				if typ == "policy.Decision" {
					t.Errorf("%s: proxy builds a policy.Decision itself; the policy package takes every decision", fset.Position(n.Pos()))
				}
			}
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
				// Nor does proxy edit a decision the policy returned
				// (d.Reason += …): what it needs goes into policy.Call.
				switch sel.Sel.Name {
				case "Allow", "DryRun", "Rule", "Reason", "App":
					if _, ok := sel.X.(*ast.Ident); ok {
						t.Errorf("%s: assigns %s of a decision outside the policy package", fset.Position(as.Pos()), sel.Sel.Name)
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
