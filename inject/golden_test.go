package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	evjsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/golden/*.patch.json, *.injected.yaml)")

const testVersion = "v1.2.3-test"

func testInjector(t testing.TB) *Injector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "injector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, testVersion)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

var shop = Namespace{Name: "shop", Labels: map[string]string{LabelEnrolled: "true"}}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &pod
}

// Input pods (testdata/golden/*.yaml) → the JSON patch the webhook answers
// (*.patch.json) and the pod it yields (*.injected.yaml). Refresh with
// go test ./inject -run TestGolden -update, and review the diff.
func TestGolden(t *testing.T) {
	in := testInjector(t)
	inputs, err := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, path := range inputs {
		if strings.HasSuffix(path, ".injected.yaml") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			pod := readPod(t, path)
			out, outcome, err := in.Mutate(pod, shop)
			if err != nil || outcome != OutcomeInjected {
				t.Fatalf("Mutate: %v, %v", outcome, err)
			}
			ops, err := Patch(pod, out)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := json.MarshalIndent(ops, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			injected, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			goldenPatch(t, strings.TrimSuffix(path, ".yaml")+".patch.json", append(patch, '\n'))
			// The patch, applied to the input as the API server would,
			// yields the mutated pod.
			orig, _ := json.Marshal(pod)
			p, err := evjsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatal(err)
			}
			applied, err := p.Apply(orig)
			if err != nil {
				t.Fatalf("apply patch: %v", err)
			}
			var got corev1.Pod
			if err := json.Unmarshal(applied, &got); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(&got, out) {
				t.Errorf("patched input differs from the mutated pod")
			}
			golden(t, strings.TrimSuffix(path, ".yaml")+".injected.yaml", injected)

			// Idempotent: the injected pod admitted again is unchanged.
			again, _, err := in.Mutate(out, shop)
			if err != nil {
				t.Fatal(err)
			}
			if ops, _ := Patch(out, again); len(ops) != 0 {
				t.Errorf("second admission patches %d ops: %v", len(ops), ops)
			}
			checkInjected(t, in, out)
		})
	}
	if n < 6 {
		t.Fatalf("%d golden inputs, want at least 6", n)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff):\n%s", path, got)
	}
}

// goldenPatch compares patches as sets of operations: the diff library
// walks maps, so the order of independent operations varies from run to
// run (each order applies to the same result, checked by the caller).
func goldenPatch(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		golden(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	canon := func(b []byte) []string {
		var ops []json.RawMessage
		if err := json.Unmarshal(b, &ops); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out := make([]string, len(ops))
		for i, o := range ops {
			var v any
			_ = json.Unmarshal(o, &v)
			c, _ := json.Marshal(v)
			out[i] = string(c)
		}
		slices.Sort(out)
		return out
	}
	if g, w := canon(got), canon(want); !slices.Equal(g, w) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff):\n%s", path, got)
	}
}

// checkInjected asserts the invariants of an injected pod.
func checkInjected(t *testing.T, in *Injector, p *corev1.Pod) {
	t.Helper()
	mode := modeOf(p)
	var wardens int
	for i, c := range p.Spec.InitContainers {
		if c.Name == ContainerName {
			wardens++
			if c.Image != in.cfg.Image || c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("warden container: image %s restartPolicy %v", c.Image, c.RestartPolicy)
			}
			want := 0
			if mode == ModeTransparent {
				want = 1
				if p.Spec.InitContainers[0].Name != IptablesContainerName {
					t.Errorf("transparent: initContainers[0] is %s", p.Spec.InitContainers[0].Name)
				}
			}
			if i != want {
				t.Errorf("warden is initContainers[%d], want %d", i, want)
			}
			if c.StartupProbe == nil || c.StartupProbe.HTTPGet == nil || c.StartupProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("warden startupProbe: %+v", c.StartupProbe)
			}
			sc := c.SecurityContext
			if *sc.RunAsUser != UID || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
				t.Errorf("warden securityContext: %+v", sc)
			}
			if !hasMount(c, VolumeToken) || !hasMount(c, VolumeSpool) || !hasMount(c, VolumePodInfo) {
				t.Errorf("warden mounts: %+v", c.VolumeMounts)
			}
			if env(c, "POD_NAMESPACE") != p.Namespace || env(c, "AWS_WEB_IDENTITY_TOKEN_FILE") != TokenFile {
				t.Errorf("warden env: %+v", c.Env)
			}
		}
	}
	if wardens != 1 {
		t.Errorf("%d warden init containers", wardens)
	}
	apps := append([]corev1.Container{}, p.Spec.Containers...)
	for _, c := range p.Spec.InitContainers {
		if c.Name != ContainerName && c.Name != IptablesContainerName {
			apps = append(apps, c)
		}
	}
	for _, c := range apps {
		if c.Name == ContainerName {
			t.Errorf("a container named warden is left among the apps")
		}
		for _, e := range appEnv(mode) {
			if got := env(c, e.Name); got != e.Value {
				t.Errorf("%s: env %s=%q, want %q", c.Name, e.Name, got, e.Value)
			}
		}
		for _, m := range c.VolumeMounts {
			if isReservedVolume(m.Name) && (m.Name != VolumeCA || !m.ReadOnly) {
				t.Errorf("%s mounts %s (readOnly %v)", c.Name, m.Name, m.ReadOnly)
			}
		}
	}
	if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.FSGroup == nil {
		t.Errorf("no fsGroup")
	}
	if p.Annotations[AnnotationInjected] != in.version || p.Annotations[AnnotationConfig] != Digest(in.rendered[mode]) {
		t.Errorf("annotations: %v", p.Annotations)
	}
}

func hasMount(c corev1.Container, vol string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			return true
		}
	}
	return false
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
