package main

import (
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/warden-egress/warden"

// testPackageIn says why dep — a package in `go list -deps` output,
// standard or not — is a test package the production binary must not link,
// or "" when it is not one. Emulators and fakes (bedrocktest, audittest)
// belong to tests, cmd/warden-demo and cmd/warden-bench.
func testPackageIn(dep string, standard bool) string {
	name := path.Base(dep)
	switch {
	case strings.HasPrefix(dep, module+"/") && strings.HasSuffix(name, "test"):
		return "a Warden test package"
	case standard && (dep == "testing" || strings.HasPrefix(dep, "testing/")):
		return "the standard testing package"
	case standard && strings.HasSuffix(name, "test") && !strings.HasPrefix(dep, "internal/"):
		// Not the runtime's own internal/synctest and internal/testlog,
		// which sync and os link in every binary.
		return "a standard test helper"
	case !standard && strings.HasSuffix(name, "test") && name != "latest" &&
		dep != "github.com/mdlayher/netlink/nltest":
		return "a third-party test helper"
	}
	// k8s.io/client-go/testing is linked by client-go's own typed clients
	// (gentype), and github.com/mdlayher/netlink/nltest by google/nftables'
	// Conn (the type of its TestDial field; it links no "testing"), so
	// neither is a choice Warden makes.
	return ""
}

// testPackagesLinked lists the test packages pkg links, with the reason.
func testPackagesLinked(t *testing.T, pkg string) (deps int, bad []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, msg)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dep, std, _ := strings.Cut(line, " ")
		deps++
		if why := testPackageIn(dep, std == "true"); why != "" {
			bad = append(bad, dep+" ("+why+")")
		}
	}
	return deps, bad
}

// The production binary links no test package: no emulator, fake or
// test helper ships in it.
func TestProductionBinaryLinksNoTestPackage(t *testing.T) {
	n, bad := testPackagesLinked(t, ".")
	if n < 100 {
		t.Fatalf("go list -deps . listed only %d packages: not the real build graph", n)
	}
	for _, b := range bad {
		t.Errorf("cmd/warden links %s; move what needs it to cmd/warden-demo, cmd/warden-bench or a _test.go file", b)
	}
}

// The check sees a test package where one is linked: the demo links the
// Bedrock emulator.
func TestLinkageCheckFindsEmulatorInDemo(t *testing.T) {
	_, bad := testPackagesLinked(t, "../warden-demo")
	want := module + "/bedrock/bedrocktest (a Warden test package)"
	found := false
	for _, b := range bad {
		found = found || b == want
	}
	if !found {
		t.Errorf("the check did not find %s among cmd/warden-demo's dependencies; it found %q", want, bad)
	}
	for dep, std := range map[string]bool{
		"net/http/httptest": true, "testing": true, "testing/fstest": true, "go.uber.org/zap/zaptest": false,
		module + "/audit/audittest": false, module + "/internal/deptest": false,
	} {
		if testPackageIn(dep, std) == "" {
			t.Errorf("%s is not judged a test package", dep)
		}
	}
	for dep, std := range map[string]bool{
		"internal/synctest": true, "internal/testlog": true, "sync": true,
		"k8s.io/client-go/tools/clientcmd/api/latest": false, module + "/proxy": false,
	} {
		if why := testPackageIn(dep, std); why != "" {
			t.Errorf("%s is judged %s", dep, why)
		}
	}
}
