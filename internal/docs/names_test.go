package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goNames are the names a module's Go code declares (tests excluded):
// per package (the directory's name) its top-level funcs, types, vars and
// consts, and per type name its methods and struct fields.
type goNames struct {
	pkgs    map[string]map[string]bool // package name → top-level names
	members map[string]map[string]bool // type name → methods and fields
}

func loadGoNames(t *testing.T, root string) goNames {
	t.Helper()
	n := goNames{pkgs: map[string]map[string]bool{}, members: map[string]map[string]bool{}}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "testdata", ".git", "tools":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := f.Name.Name
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil || len(decl.Recv.List) == 0 {
					add(n.pkgs, pkg, decl.Name.Name)
					continue
				}
				typ := decl.Recv.List[0].Type
				if s, ok := typ.(*ast.StarExpr); ok {
					typ = s.X
				}
				if ix, ok := typ.(*ast.IndexExpr); ok {
					typ = ix.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					add(n.members, id.Name, decl.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						add(n.pkgs, pkg, spec.Name.Name)
						switch st := spec.Type.(type) {
						case *ast.StructType:
							for _, fl := range st.Fields.List {
								for _, name := range fl.Names {
									add(n.members, spec.Name.Name, name.Name)
								}
							}
						case *ast.InterfaceType:
							for _, fl := range st.Methods.List {
								for _, name := range fl.Names {
									add(n.members, spec.Name.Name, name.Name)
								}
							}
						}
					case *ast.ValueSpec:
						for _, name := range spec.Names {
							add(n.pkgs, pkg, name.Name)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every Go name ARCHITECTURE.md gives in a code span — `pkg.Name`,
// `pkg.Type.Method`, `Type.Method`, `s.method` (the proxy's Server) — is
// declared in the tree: the contributors' map names code that exists.
func TestArchitectureNamesExist(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := loadGoNames(t, root)
	span := regexp.MustCompile("`([A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)+)`")
	exported := func(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }
	checked := 0
	for _, m := range span.FindAllStringSubmatch(string(b), -1) {
		parts := strings.Split(m[1], ".")
		first, rest := parts[0], parts[1:]
		var ok bool
		switch {
		case first == "s" && len(rest) == 1: // the proxy's Server
			ok = names.members["Server"][rest[0]]
		case names.pkgs[first] != nil && exported(rest[0]): // pkg.Name[.Member]
			ok = names.pkgs[first][rest[0]]
			if ok && len(rest) == 2 {
				ok = names.members[rest[0]][rest[1]]
			}
		case exported(first) && len(rest) == 1: // Type.Member
			ok = names.members[first][rest[0]]
		default:
			continue // a file name, a config key, a variable
		}
		checked++
		if !ok {
			t.Errorf("ARCHITECTURE.md names `%s`, which the tree does not declare", m[1])
		}
	}
	if checked < 40 {
		t.Fatalf("checked only %d names: did the spans' format change?", checked)
	}
}
