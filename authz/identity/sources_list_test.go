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

// The registry table is the one list of identity sources: outside this
// package nothing lists them by hand (the schema's enum reads SourceNames),
// so a new source is one row in registry. A composite
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
			if rel, _ := filepath.Rel("../..", path); rel == filepath.Join("authz", "identity") {
				return filepath.SkipDir // the registry itself
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
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
