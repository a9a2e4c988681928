package admission

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/admission, the Helm chart's copies and the golden files from the embedded manifests")

// deployDir holds the copies users apply; the embedded manifests are the
// source (edit manifests/, then run go test ./inject/admission -update).
const deployDir = "../../deploy/kubernetes/admission"

// chartDir holds the Helm chart's copies of the policies (-update writes them).
const chartDir = "../../deploy/helm/warden/files/admission"

func TestDeployCopies(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(deployDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(deployDir, f.Name), f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			// The Helm chart's copy: the policies and bindings (it generates the
			// parameters from its values). tools/helm's TestAdmissionFilesVerbatim
			// checks it.
			if !strings.HasPrefix(f.Name, "00-params") {
				if err := os.WriteFile(filepath.Join(chartDir, f.Name), f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	entries, err := os.ReadDir(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%s has %d files, the embedded manifests %d (run go test ./inject/admission -update)", deployDir, len(entries), len(files))
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(deployDir, f.Name))
		if err != nil {
			t.Errorf("%v (run go test ./inject/admission -update)", err)
			continue
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s/%s differs from inject/admission/manifests/%s (run go test ./inject/admission -update)", deployDir, f.Name, f.Name)
		}
	}
}

func TestLoad(t *testing.T) {
	set, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Policies {
		names = append(names, p.Name)
		if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != "Fail" {
			t.Errorf("policy %s does not fail closed", p.Name)
		}
		if p.Spec.ParamKind == nil || p.Spec.ParamKind.Kind != "ConfigMap" {
			t.Errorf("policy %s takes no ConfigMap parameters", p.Name)
		}
	}
	want := []string{PolicyPods, PolicyNamespaces, PolicyTokenRequests, PolicyExec, PolicyEphemeralContainer, PolicyTransparent}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("policies %v, want %v", names, want)
	}
	if len(set.Bindings) != len(set.Policies) {
		t.Fatalf("%d bindings for %d policies", len(set.Bindings), len(set.Policies))
	}
	for _, b := range set.Bindings {
		if b.Spec.ParamRef.ParameterNotFoundAction == nil || *b.Spec.ParamRef.ParameterNotFoundAction != "Deny" {
			t.Errorf("binding %s does not deny without parameters", b.Name)
		}
		if len(b.Spec.ValidationActions) != 1 || b.Spec.ValidationActions[0] != "Deny" {
			t.Errorf("binding %s validation actions %v, want [Deny]", b.Name, b.Spec.ValidationActions)
		}
	}
}

// TestWriteManifests: the stream `warden inject --print-policies` will print,
// with parameters generated from Go values (golden file).
func TestWriteManifests(t *testing.T) {
	p := exampleParams(t)
	p.Images = []string{"registry.example/warden@sha256:" + strings.Repeat("a", 64)}
	p.Audience = "warden.example"
	p.InjectorNamespace = "warden"
	var buf bytes.Buffer
	if err := WriteManifests(&buf, p); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "manifests.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./inject/admission -run TestWriteManifests -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteManifests output differs from %s (run with -update and review the diff)", golden)
	}
	// The stream decodes back, with the generated parameters.
	docs, err := splitDocuments(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	for _, d := range docs {
		if err := s.add(d); err != nil {
			t.Fatal(err)
		}
	}
	back, err := ParseParams(s.Params)
	if err != nil {
		t.Fatal(err)
	}
	if back.Audience != "warden.example" || len(back.Images) != 1 {
		t.Fatalf("generated parameters not in the stream: %+v", back)
	}
	if len(s.Policies) != 6 || len(s.Bindings) != 6 {
		t.Fatalf("%d policies, %d bindings in the stream", len(s.Policies), len(s.Bindings))
	}
	if s.Params.Namespace != "warden" {
		t.Fatalf("parameters in namespace %q, want the injector's", s.Params.Namespace)
	}
	for _, b := range s.Bindings {
		if b.Spec.ParamRef.Namespace != "warden" {
			t.Errorf("binding %s reads parameters from namespace %q, want the injector's", b.Name, b.Spec.ParamRef.Namespace)
		}
	}
}
