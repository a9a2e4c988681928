package admission

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocCitesRealTests: every test the threat model in
// docs/kubernetes-admission.md cites (`TestX/sub`, `…/sub` continuing the
// previous one) is a test function here, in package inject or in cmd/warden, and each subtest name appears in
// the tests' source (go test writes spaces in subtest names as '_').
func TestDocCitesRealTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubernetes-admission.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	// TestInjectorWithPolicies lives with the injector (package inject).
	injectorTests, err := filepath.Glob(filepath.Join("..", "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, injectorTests...)
	// The transparent-mode redirect's netns test lives with the command.
	cmdTests, err := filepath.Glob(filepath.Join("..", "..", "cmd", "warden", "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, cmdTests...)
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	code := src.String()
	var top string
	cited := 0
	// Code spans, line by line, outside fenced blocks.
	var spans [][]string
	fenced := false
	spanRe := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			spans = append(spans, spanRe.FindAllStringSubmatch(line, -1)...)
		}
	}
	for _, m := range spans {
		span := m[1]
		var sub string
		switch {
		case strings.HasPrefix(span, "TestName/"):
			continue // the naming pattern itself
		case strings.HasPrefix(span, "Test"):
			top, sub, _ = strings.Cut(span, "/")
			if !strings.Contains(code, "func "+top+"(") {
				t.Errorf("the doc cites %s, which is not a test here", top)
			}
		case strings.HasPrefix(span, "…/"):
			if top == "" {
				t.Errorf("the doc cites %s before naming a test", span)
				continue
			}
			sub = strings.TrimPrefix(span, "…/")
		default:
			continue
		}
		cited++
		if sub == "" {
			continue
		}
		// A subtest name may be nested (enrolled/no sidecar is one name
		// with a slash in it) or be split across t.Run levels: look for
		// each level.
		for _, level := range strings.Split(sub, "/") {
			if !strings.Contains(code, strings.ReplaceAll(level, "_", " ")) {
				t.Errorf("the doc cites %s/%s, but no test here is named %q", top, sub, strings.ReplaceAll(level, "_", " "))
			}
		}
	}
	if cited < 50 {
		t.Fatalf("only %d tests cited: is the pattern still matching the doc?", cited)
	}
}
