package identity

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// The registry table is the one list of identity sources: nothing else
// lists them by hand (the schema's enum reads SourceNames, the same-host and
// by-address lists read each row's reach), so a new source is one row in
// registry. A composite
// literal naming two or more identity.Source* constants is such a list.
func TestNoHandWrittenSourceList(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "testdata", "tools", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if rel, _ := filepath.Rel("../..", path); rel == filepath.Join("authz", "identity", "sources.go") {
			return nil // the registry itself
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			named := 0
			for _, e := range lit.Elts {
				sel, ok := e.(*ast.SelectorExpr)
				if !ok {
					continue
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "identity" && strings.HasPrefix(sel.Sel.Name, "Source") {
					named++
				}
			}
			for _, e := range lit.Elts { // inside this package, unqualified
				if id, ok := e.(*ast.Ident); ok && f.Name.Name == "identity" && strings.HasPrefix(id.Name, "Source") && id.Name != "Source" {
					named++
				}
			}
			if named >= 2 {
				t.Errorf("%s: a hand-written list of %d identity sources; use identity.SourceNames() (the registry table)", fset.Position(lit.Pos()), named)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d files: is the walk rooted at the module?", checked)
	}
}
