package helm_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/ignore"
)

// TestChartFiles: .helmignore means what it says to Helm's own parser and
// loader. The chart the loader builds holds exactly the files on disk that
// .helmignore does not name (nothing the chart needs is dropped, nothing
// else is packaged), and editor leftovers in any directory are ignored.
func TestChartFiles(t *testing.T) {
	rules, err := ignore.ParseFile(filepath.Join(chartDir, ".helmignore"))
	if err != nil {
		t.Fatalf(".helmignore: %v", err)
	}
	var onDisk []string
	err = filepath.WalkDir(chartDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, fi) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			onDisk = append(onDisk, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, f := range loadChart(t).Raw {
		loaded = append(loaded, f.Name)
	}
	slices.Sort(onDisk)
	slices.Sort(loaded)
	if !slices.Equal(onDisk, loaded) {
		t.Fatalf("the chart's files on disk (less .helmignore) %q, the loaded chart %q", onDisk, loaded)
	}
	for _, f := range []string{"Chart.yaml", "values.yaml", "values.schema.json", "templates/_helpers.tpl", "templates/NOTES.txt", "files/admission/10-pods.yaml"} {
		if !slices.Contains(loaded, f) {
			t.Errorf("the loaded chart lacks %s", f)
		}
	}
	// Editor leftovers are ignored wherever they are.
	dir := t.TempDir()
	for _, junk := range []string{"templates/deployment.yaml~", "templates/injector/.deployment.yaml.swp", "values.yaml.bak", ".DS_Store"} {
		p := filepath.Join(dir, filepath.Base(junk))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if !rules.Ignore(junk, fi) {
			t.Errorf(".helmignore does not ignore %s", junk)
		}
	}
}

// TestEveryTemplateRenders: each template file produces objects in at
// least one of the modes TestRenderModes and TestServerSideDryRun render
// (so each is rendered, parsed and dry-run applied); _helpers.tpl is
// included by them and NOTES.txt is checked by TestRenderModes.
func TestEveryTemplateRenders(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range modes {
		for src := range mustRender(t, m).sources {
			seen[src] = true
		}
	}
	err := filepath.WalkDir(filepath.Join(chartDir, "templates"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), "_") || d.Name() == "NOTES.txt" {
			return nil
		}
		if !seen[rel] {
			t.Errorf("%s renders nothing in any mode (modes: default, secret-tls, bundle, shared-proxy, all)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 10 {
		t.Fatalf("only %d templates seen: %v", len(seen), seen)
	}
}
