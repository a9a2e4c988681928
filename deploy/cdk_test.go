package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestCDKProjectFiles: the CDK app's project files agree with each other
// and with how CI builds it (cmd/warden's TestCDKSynth compiles and
// synthesises it). cdk.json runs what tsconfig.json compiles (its outDir)
// and writes where .gitignore ignores, as does package.json's synth
// script; the lock file npm ci installs from is the one package.json asks
// for, with every package pinned to a version and an integrity hash; and
// deploy/cdk is a Go module of its own, so Warden's ./... never walks
// its node_modules (the CDK CLI ships Go templates that do not compile).
func TestCDKProjectFiles(t *testing.T) {
	var tsconfig struct {
		CompilerOptions struct {
			OutDir  string `json:"outDir"`
			RootDir string `json:"rootDir"`
			Strict  bool   `json:"strict"`
		} `json:"compilerOptions"`
		Include []string `json:"include"`
	}
	readJSON(t, "cdk/tsconfig.json", &tsconfig)
	var cdkJSON struct {
		App    string `json:"app"`
		Output string `json:"output"`
	}
	readJSON(t, "cdk/cdk.json", &cdkJSON)
	var pkg struct {
		Name            string            `json:"name"`
		Private         bool              `json:"private"`
		Scripts         map[string]string `json:"scripts"`
		DevDependencies map[string]string `json:"devDependencies"`
		Dependencies    map[string]string `json:"dependencies"`
	}
	readJSON(t, "cdk/package.json", &pkg)

	out, root := tsconfig.CompilerOptions.OutDir, tsconfig.CompilerOptions.RootDir
	if out == "" || !tsconfig.CompilerOptions.Strict || root != "." {
		t.Fatalf("tsconfig.json: outDir %q rootDir %q strict %v", out, root, tsconfig.CompilerOptions.Strict)
	}
	// bin/warden.ts compiles to OUTDIR/bin/warden.js (rootDir "."): what
	// cdk.json and the synth script run.
	if _, err := os.Stat("cdk/bin/warden.ts"); err != nil || !slices.Contains(tsconfig.Include, "bin/**/*.ts") {
		t.Fatalf("tsconfig.json does not compile bin/warden.ts (include %v): %v", tsconfig.Include, err)
	}
	app := "node " + out + "/bin/warden.js"
	if cdkJSON.App != app || cdkJSON.Output == "" {
		t.Errorf("cdk.json: app %q output %q, want app %q (tsconfig's outDir) and an output", cdkJSON.App, cdkJSON.Output, app)
	}
	if s := pkg.Scripts["synth"]; !strings.Contains(s, "cdk synth") || !strings.Contains(s, "'"+app+"'") || !strings.Contains(s, "--output "+cdkJSON.Output) {
		t.Errorf("package.json scripts.synth %q does not run %q into %s as cdk.json does", s, app, cdkJSON.Output)
	}
	if pkg.Scripts["build"] != "tsc" || !pkg.Private {
		t.Errorf("package.json: build %q private %v", pkg.Scripts["build"], pkg.Private)
	}
	ignored := gitignoreLines(t, "cdk/.gitignore")
	for _, dir := range []string{out, cdkJSON.Output} {
		if !slices.Contains(ignored, "/"+dir+"/") {
			t.Errorf(".gitignore %q does not ignore /%s/ (compiled or synthesised output)", ignored, dir)
		}
	}

	// package-lock.json: what npm ci installs.
	var lock struct {
		Name            string `json:"name"`
		LockfileVersion int    `json:"lockfileVersion"`
		Packages        map[string]struct {
			Name            string            `json:"name"`
			Version         string            `json:"version"`
			Integrity       string            `json:"integrity"`
			Resolved        string            `json:"resolved"`
			Link            bool              `json:"link"`
			InBundle        bool              `json:"inBundle"` // shipped in its parent's tarball, which the parent's integrity covers
			DevDependencies map[string]string `json:"devDependencies"`
			Dependencies    map[string]string `json:"dependencies"`
		} `json:"packages"`
	}
	readJSON(t, "cdk/package-lock.json", &lock)
	if lock.Name != pkg.Name || lock.LockfileVersion < 2 {
		t.Fatalf("package-lock.json: name %q (package.json %q), lockfileVersion %d", lock.Name, pkg.Name, lock.LockfileVersion)
	}
	rootPkg, ok := lock.Packages[""]
	if !ok || !reflect.DeepEqual(rootPkg.DevDependencies, pkg.DevDependencies) || len(rootPkg.Dependencies) != len(pkg.Dependencies) {
		t.Fatalf("package-lock.json was not written for this package.json (run npm install in deploy/cdk): lock %v, package.json %v",
			rootPkg.DevDependencies, pkg.DevDependencies)
	}
	for name := range pkg.DevDependencies {
		if p, ok := lock.Packages["node_modules/"+name]; !ok || p.Version == "" {
			t.Errorf("package-lock.json does not pin %s", name)
		}
	}
	for path, p := range lock.Packages {
		if path == "" || p.Link || p.InBundle {
			continue
		}
		if p.Version == "" || !strings.HasPrefix(p.Integrity, "sha512-") && !strings.HasPrefix(p.Integrity, "sha1-") {
			t.Errorf("package-lock.json %s: version %q integrity %q: not pinned", path, p.Version, p.Integrity)
		}
	}

	// go.mod: the module go resolves in deploy/cdk is its own.
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = "cdk"
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	mod, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m in deploy/cdk: %v\n%s", err, mod)
	}
	if got := strings.TrimSpace(string(mod)); got != "github.com/warden-egress/warden/deploy/cdk" {
		t.Errorf("go list -m in deploy/cdk: %q, want its own module", got)
	}
	cmd = exec.Command("go", "list", "./...")
	cmd.Dir = ".."
	pkgs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, pkgs)
	}
	if strings.Contains(string(pkgs), "/deploy/cdk") {
		t.Errorf("Warden's ./... includes packages under deploy/cdk:\n%s", pkgs)
	}
	if _, err := os.Stat(filepath.Join("cdk", "go.sum")); err == nil {
		t.Error("deploy/cdk/go.sum exists: the module has no dependencies")
	}
}
