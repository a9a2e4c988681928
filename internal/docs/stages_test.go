package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestStagesMatchServe: ARCHITECTURE.md's table of a call's stages lists,
// in order, the stages proxy.Server.serve runs (its methods, in the order
// serve calls them) and the trace regions it opens, and operations.md names
// the same regions, so the description of a call's path cannot drift from
// the code.
func TestStagesMatchServe(t *testing.T) {
	root := repoRoot(t)
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	src := read("proxy/pipeline.go")
	start := strings.Index(src, "func (s *Server) serve(")
	if start < 0 {
		t.Fatal("proxy/pipeline.go: no serve")
	}
	body, _, ok := strings.Cut(src[start:], "\n}\n")
	if !ok {
		t.Fatal("proxy/pipeline.go: serve does not end")
	}
	var regions []string
	for _, m := range regexp.MustCompile(`trace\.StartRegion\([^,]+, "([a-z ]+)"\)`).FindAllStringSubmatch(src, -1) {
		regions = append(regions, m[1])
	}
	var methods []string
	for _, m := range regexp.MustCompile(`\bs\.(parse|identify|authorize|recordIntent|inspect|reserveBudget|forward|end)\(`).FindAllStringSubmatch(body, -1) {
		methods = append(methods, m[1])
	}
	// end (finish, the record, then the body's release) is deferred: it
	// runs last, once, whichever of the deferred branches calls it.
	if slices.Contains(methods, "end") {
		methods = append(slices.DeleteFunc(methods, func(m string) bool { return m == "end" }), "end")
	}

	arch := read("ARCHITECTURE.md")
	var tableStages, tableMethods []string
	_, table, ok := strings.Cut(arch, "| stage | where | what |")
	if !ok {
		t.Fatal("ARCHITECTURE.md: no stage table")
	}
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		cells := strings.Split(line, " | ")
		stage := strings.TrimPrefix(cells[0], "| ")
		tableStages = append(tableStages, stage)
		if stage == "accept" { // the listener's, before serve
			continue
		}
		if m := regexp.MustCompile("^`s\\.([A-Za-z]+)`").FindStringSubmatch(cells[1]); m != nil {
			tableMethods = append(tableMethods, m[1])
		}
	}
	want := []string{"parse", "identify", "authorize", "recordIntent", "inspect", "reserveBudget", "forward", "end"}
	if !slices.Equal(methods, want) {
		t.Fatalf("serve calls %v; this test knows %v: update it and ARCHITECTURE.md together", methods, want)
	}
	if !slices.Equal(tableMethods, want) {
		t.Errorf("ARCHITECTURE.md's stage table names %v in its where column; serve calls %v", tableMethods, want)
	}
	if !isSubsequence(regions, tableStages) {
		t.Errorf("serve's trace regions %v are not, in order, among ARCHITECTURE.md's stages %v", regions, tableStages)
	}
	regionList := "`" + strings.Join(regions, "`, `") + "`"
	if !strings.Contains(strings.Join(strings.Fields(arch), " "), regionList) {
		t.Errorf("ARCHITECTURE.md does not list the trace regions as %s", regionList)
	}
	if !strings.Contains(strings.Join(strings.Fields(read("docs/operations.md")), " "), regionList) {
		t.Errorf("docs/operations.md does not list the trace regions as %s", regionList)
	}
}

func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}
