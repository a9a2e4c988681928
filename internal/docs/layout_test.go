package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README is what Warden is, the two commands, one quick start per way
// of running it, and links (issue 12); the reference lives in docs/ by
// reader. A section added to the README beside those fails here: put it in
// the doc for its reader and link it from the Documentation table.
func TestREADMELayout(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	d := parseDoc(string(b))
	var h1, h2 []string
	quick := map[string]bool{} // ### headings under Quick start
	under := ""
	for _, line := range d.lines { // fenced lines are blank: a # comment in a code block is no heading
		switch {
		case strings.HasPrefix(line, "# "):
			h1 = append(h1, strings.TrimPrefix(line, "# "))
		case strings.HasPrefix(line, "## "):
			under = strings.TrimPrefix(line, "## ")
			h2 = append(h2, under)
		case strings.HasPrefix(line, "### "):
			if under != "Quick start" {
				t.Errorf("README.md: %q is a subsection of %q; only Quick start has subsections (one per way of running Warden)", line, under)
			}
			quick[strings.TrimPrefix(line, "### ")] = true
		}
	}
	if want := []string{"Warden"}; !slices.Equal(h1, want) {
		t.Errorf("README.md: top-level headings %q, want %q", h1, want)
	}
	// Editing the policy is the security team's quick start (issue 15 asks
	// for it in the README, and cmd/warden's TestReadmeEditingThePolicy runs
	// it as written).
	// Performance keeps the latest bench table (issue 19 asks for it there).
	if want := []string{"Two commands", "Quick start", "Editing the policy", "Performance", "Documentation"}; !slices.Equal(h2, want) {
		t.Errorf("README.md: sections %q, want %q (what Warden is comes before the first)", h2, want)
	}
	for _, way := range []string{"Sidecar, endpoint mode (the default)", "Shared proxy", "Forward proxy", "Transparent", "Kubernetes", "ECS"} {
		if !quick[way] {
			t.Errorf("README.md: Quick start has no %q", way)
		}
	}
	// The 55 KB README this replaced mixed every reader's reference. What
	// stays: the quick starts, the Kubernetes threat model row by row (issue
	// 14 asks for it there; inject/admission's TestReadmeThreatModel checks
	// it), the security team's steps and the latest performance table.
	if len(b) > 22*1024 {
		t.Errorf("README.md is %d bytes; keep it under 22 KB: move reference into docs/", len(b))
	}
	// The Documentation table links every doc written for a reader.
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, line := range d.lines {
		for _, l := range links(line) {
			linked[strings.SplitN(l, "#", 2)[0]] = true
		}
	}
	for _, f := range docs {
		rel, _ := filepath.Rel(root, f)
		if !linked[filepath.ToSlash(rel)] {
			t.Errorf("README.md links no %s: add it to the Documentation table", filepath.ToSlash(rel))
		}
	}
}

// ARCHITECTURE.md's Layout table matches the tree: every Go package of the
// module is listed (its own row, or by name in the row of its parent
// directory, as internal/'s helpers are), and every path a row names exists.
func TestArchitectureLayoutMatchesTree(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "## Layout")
	if start < 0 {
		t.Fatal("ARCHITECTURE.md has no ## Layout section")
	}
	end := strings.Index(text[start+1:], "\n## ")
	if end < 0 {
		t.Fatal("ARCHITECTURE.md: the Layout section does not end")
	}
	rowRe := regexp.MustCompile("(?m)^\\| `([^`]+)/` \\| (.*) \\|$")
	rows := map[string]string{} // directory → what the row says
	for _, m := range rowRe.FindAllStringSubmatch(text[start:start+1+end], -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) < 20 {
		t.Fatalf("ARCHITECTURE.md: read only %d Layout rows: the table's format changed?", len(rows))
	}
	for dir := range rows {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir))); err != nil || !fi.IsDir() {
			t.Errorf("ARCHITECTURE.md Layout lists %s/, which is not a directory of the tree", dir)
		}
	}
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 20 {
		t.Fatalf("go list ./... listed %d packages: not the module", len(pkgs))
	}
	for _, dir := range pkgs {
		rel, err := filepath.Rel(root, dir)
		if err != nil || rel == "." {
			continue
		}
		rel = filepath.ToSlash(rel)
		if _, ok := rows[rel]; ok {
			continue
		}
		parent, name := filepath.ToSlash(filepath.Dir(rel)), filepath.Base(rel)
		if row, ok := rows[parent]; ok && strings.Contains(row, "`"+name+"`") {
			continue
		}
		t.Errorf("package %s is not in ARCHITECTURE.md's Layout: add a row `%s/` (or name it in its parent's row)", rel, rel)
	}
}
