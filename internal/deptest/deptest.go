// Package deptest checks which packages a Warden package links, so the layering
// in DESIGN.md (cmd → proxy → authz | guard | audit → bedrock) is enforced by a
// test rather than by review. It follows tailscale's tstest/deptest: each package
// states its forbidden dependencies in a deps_test.go, and the check asks
// `go list -deps` (the non-test build graph, the one that ships) for the truth.
package deptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Module is Warden's module path; rules name packages under it.
const Module = "github.com/warden-egress/warden"

// DepChecker lists what one package may not (and must) depend on.
type DepChecker struct {
	// Pkg is the package to check: an import path or a directory pattern
	// relative to the test's working directory. Empty means "." (the package
	// whose test is running).
	Pkg string
	// GOOS and GOARCH, when set, check another platform's build graph.
	GOOS, GOARCH string
	// BadDeps maps a forbidden import path to the reason. A key ending in
	// "/..." forbids that package and every package under it. Keys inside
	// Warden's module must name a directory that exists, so a rule cannot
	// silently go stale when a package moves.
	BadDeps map[string]string
	// BadDep, when set, judges each dependency that BadDeps does not name: it
	// returns why the dependency is forbidden, or "" to allow it. For rules a
	// path list cannot state ("no package whose name ends in test").
	BadDep func(dep string) (why string)
	// WantDeps must be dependencies; it proves the check sees the real graph.
	WantDeps []string
}

// Check runs `go list -deps` and reports each forbidden dependency, with the
// import chain that brings it in, as a test error.
func (c DepChecker) Check(t testing.TB) {
	t.Helper()
	deps, env, err := c.list()
	if err != nil {
		t.Fatal(err)
	}
	self := deps[len(deps)-1] // go list -deps prints the package itself last
	var bad []string
	for _, dep := range deps[:len(deps)-1] {
		if why := c.why(dep); why != "" {
			bad = append(bad, dep)
			t.Errorf("%s depends on %s%s, which it must not: %s", self, dep, envNote(env), why)
		}
	}
	if len(bad) > 0 {
		c.explain(t, bad, env)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for key := range c.BadDeps {
		rel, ok := strings.CutPrefix(strings.TrimSuffix(key, "/..."), Module+"/")
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
			t.Errorf("BadDeps names %s, which no longer exists (moved? update the rule): %v", key, err)
		}
	}
	for _, want := range c.WantDeps {
		if !slices.Contains(deps, want) {
			t.Errorf("%s does not depend on %s%s, which it should", self, want, envNote(env))
		}
	}
}

// why says why dep is forbidden, or "" when it is allowed.
func (c DepChecker) why(dep string) string {
	if why, ok := c.BadDeps[dep]; ok {
		return why
	}
	for key, why := range c.BadDeps {
		if prefix, ok := strings.CutSuffix(key, "/..."); ok && (dep == prefix || strings.HasPrefix(dep, prefix+"/")) {
			return why
		}
	}
	if c.BadDep != nil {
		return c.BadDep(dep)
	}
	return ""
}

func (c DepChecker) env() []string {
	var env []string
	if c.GOOS != "" {
		env = append(env, "GOOS="+c.GOOS)
	}
	if c.GOARCH != "" {
		env = append(env, "GOARCH="+c.GOARCH)
	}
	return env
}

func envNote(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return " (with " + strings.Join(env, " ") + ")"
}

func (c DepChecker) pkg() string {
	if c.Pkg == "" {
		return "."
	}
	return c.Pkg
}

// list returns the import paths of c.Pkg's dependencies, the package last.
func (c DepChecker) list() ([]string, []string, error) {
	env := c.env()
	out, err := goList(env, "-deps", "-f", "{{.ImportPath}}", c.pkg())
	if err != nil {
		return nil, env, err
	}
	deps := strings.Fields(out)
	if len(deps) == 0 {
		return nil, env, fmt.Errorf("go list -deps %s printed no packages", c.pkg())
	}
	return deps, env, nil
}

// explain logs, for each forbidden dependency, one import chain from the
// package to it, so the failure says which import to remove.
func (c DepChecker) explain(t testing.TB, bad []string, env []string) {
	t.Helper()
	out, err := goList(env, "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, c.pkg())
	if err != nil {
		t.Logf("cannot explain the import chain: %v", err)
		return
	}
	imports := map[string][]string{}
	var self string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 0 {
			imports[f[0]] = f[1:]
			self = f[0]
		}
	}
	for _, dep := range bad {
		if chain := path(imports, self, dep); chain != nil {
			t.Logf("import chain: %s", strings.Join(chain, " → "))
		}
	}
}

// path finds a shortest import chain from -> to by breadth-first search.
func path(imports map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range imports[p] {
			if _, seen := prev[next]; !seen {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return nil
}

func moduleRoot() (string, error) {
	gomod, err := goList(nil, "-m", "-f", "{{.GoMod}}")
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(gomod)), nil
}

func goList(env []string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s (env %q): %v: %s", strings.Join(args, " "), env, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// OutsideWarden forbids every Warden package but those under the given
// subtrees (import paths; each allows itself and everything beneath it).
func OutsideWarden(allowed ...string) func(string) string {
	return func(dep string) string {
		if dep != Module && !strings.HasPrefix(dep, Module+"/") {
			return ""
		}
		for _, a := range allowed {
			if dep == a || strings.HasPrefix(dep, a+"/") {
				return ""
			}
		}
		return "it may import no Warden package outside " + strings.Join(allowed, ", ")
	}
}

// TestPackage forbids test packages: Warden's own (bedrocktest, kubetest,
// miniotest, testenv), the standard library's testing and its helpers
// (net/http/httptest, testing/fstest) and other modules' (zaptest).
// Emulators and fixtures do not ship in production code. The runtime's
// internal/synctest, client-go's k8s.io/client-go/testing (linked by its
// typed clients) and github.com/mdlayher/netlink/nltest (linked by
// google/nftables' Conn, whose TestDial field has its type; it links no
// "testing") are not Warden's choice and pass. cmd/warden's
// linkage_test.go applies the same rule to the production binary.
func TestPackage(dep string) string {
	const why = "production code links no test package (emulators and fixtures live in tests, cmd/warden-bench and cmd/warden-demo)"
	name := dep[strings.LastIndexByte(dep, '/')+1:]
	first, _, _ := strings.Cut(dep, "/")
	standard := !strings.Contains(first, ".")
	switch {
	case strings.HasPrefix(dep, Module+"/"):
		if strings.HasSuffix(name, "test") || name == "testenv" {
			return why
		}
	case standard && (dep == "testing" || strings.HasPrefix(dep, "testing/")):
		return why
	case standard && strings.HasSuffix(name, "test") && first != "internal":
		return why
	case !standard && strings.HasSuffix(name, "test") && name != "latest" && dep != netlinkTest:
		return why
	}
	return ""
}

// netlinkTest is linked by github.com/google/nftables in every build.
const netlinkTest = "github.com/mdlayher/netlink/nltest"

// Rules joins rules for BadDep: a dependency is forbidden by the first rule
// that gives a reason.
func Rules(rules ...func(string) string) func(string) string {
	return func(dep string) string {
		for _, r := range rules {
			if why := r(dep); why != "" {
				return why
			}
		}
		return ""
	}
}
