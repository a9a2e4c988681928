package admission

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	if cited := checkCitations(t, "docs/kubernetes-admission.md", string(doc), testSources(t)); cited < 50 {
		t.Fatalf("only %d tests cited: is the pattern still matching the doc?", cited)
	}
}

// TestReadmeThreatModel: the README's Kubernetes section carries the threat
// model row by row (issue 14's acceptance): a table of ways around Warden,
// each row naming what stops it and at least one test that exists.
func TestReadmeThreatModel(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Kubernetes\n")
	if !ok {
		t.Fatal("README.md has no \"### Kubernetes\" section")
	}
	// The section ends at the next heading of its level or above.
	for _, h := range []string{"\n### ", "\n## "} {
		if i := strings.Index(section, h); i >= 0 {
			section = section[:i]
		}
	}
	var rows []string
	header := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "| way around Warden | what stops it | test |"):
			header = true
		case header && strings.HasPrefix(line, "|---"):
		case header && strings.HasPrefix(line, "| "):
			rows = append(rows, line)
		case header && line == "":
			header = len(rows) == 0
		}
	}
	// The ways around Warden issue 14 lists, each in a row of its own.
	for _, way := range []string{"token", "kubectl create token", "exec", "ephemeral container", "without the sidecar",
		"fake `warden`", "spool", "uid", "identity", "IRSA", "enrolment label", "mutating webhook", "transparent mode", "instance role"} {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(strings.SplitN(r, " | ", 2)[0], way) }) {
			t.Errorf("README.md's Kubernetes threat model has no row for %q", way)
		}
	}
	code := testSources(t)
	for i, r := range rows {
		cells := strings.Split(strings.Trim(r, "| "), " | ")
		if len(cells) != 3 || strings.TrimSpace(cells[1]) == "" || !strings.Contains(cells[2], "`Test") {
			t.Errorf("README.md threat-model row %d: want way | what stops it | a `TestName` cited: %s", i+1, r)
		}
	}
	if cited := checkCitations(t, "README.md", section, code); cited < len(rows) {
		t.Errorf("README.md's Kubernetes section cites %d tests for %d threat-model rows", cited, len(rows))
	}
}

// testSources is the source of every test a doc may cite: this package's,
// the injector's (TestInjectorWithPolicies) and cmd/warden's (the
// transparent-mode redirect's netns test).
func testSources(t *testing.T) string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*_test.go", filepath.Join("..", "*_test.go"), filepath.Join("..", "..", "cmd", "warden", "*_test.go")} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	return src.String()
}

// checkCitations checks every test doc cites in a code span (`TestX/sub`,
// `…/sub` continuing the previous one) against code, and returns how many
// it cites.
func checkCitations(t *testing.T, name, doc, code string) int {
	t.Helper()
	var top string
	cited := 0
	// Code spans, line by line, outside fenced blocks.
	var spans [][]string
	fenced := false
	spanRe := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(doc, "\n") {
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
				t.Errorf("%s cites %s, which is not a test here", name, top)
			}
		case strings.HasPrefix(span, "…/"):
			if top == "" {
				t.Errorf("%s cites %s before naming a test", name, span)
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
				t.Errorf("%s cites %s/%s, but no test here is named %q", name, top, sub, strings.ReplaceAll(level, "_", " "))
			}
		}
	}
	return cited
}

// TestReadmeKubernetesSteps: the README's copy-paste steps name files that
// exist, create the namespace they enrol, and enrol it with Pod Security
// restricted (warden-namespaces refuses the label otherwise).
func TestReadmeKubernetesSteps(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Kubernetes\n")
	if !ok {
		t.Fatal("README.md has no \"### Kubernetes\" section")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("README.md's Kubernetes section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	paths := regexp.MustCompile(`deploy/[\w./-]+\.yaml`).FindAllString(block, -1)
	if len(paths) < 5 {
		t.Fatalf("the steps name %d manifests: %v", len(paths), paths)
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("..", "..", p)); err != nil {
			t.Errorf("README.md's Kubernetes steps name %s: %v", p, err)
		}
	}
	create := strings.Index(block, "kubectl create namespace shop")
	label := strings.Index(block, "kubectl label namespace shop warden-egress.io/enrolled=true pod-security.kubernetes.io/enforce=restricted")
	if create < 0 || label < 0 || create > label {
		t.Errorf("the steps must create namespace shop, then label it enrolled with Pod Security restricted:\n%s", block)
	}
}
