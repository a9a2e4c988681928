package inject

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/warden-egress/warden/config"
)

// TestBundleInjection: with a bundle section the injector writes the trust
// roots into every sidecar's configuration and their digest onto its
// command line (which the admission parameters pin), and the configuration
// a sidecar gets parses to exactly those roots.
func TestBundleInjection(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "injector-bundle.yaml"))
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
	pin := cfg.Bundle.TrustRoots().Pin()
	for _, mode := range []string{ModeEndpoint, ModeProxy, ModeTransparent} {
		pod := readPod(t, filepath.Join("testdata", "golden", "bare-pod.yaml"))
		pod.Annotations = map[string]string{AnnotationMode: mode}
		out, outcome, err := in.Mutate(pod, shop)
		if err != nil || outcome != OutcomeInjected {
			t.Fatalf("%s: Mutate: %v %v", mode, outcome, err)
		}
		i := slices.IndexFunc(out.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == ContainerName })
		w := out.Spec.InitContainers[i]
		if want := []string{"serve", "--config-env", ConfigEnv, "--bundle-pin", pin}; !slices.Equal(w.Args, want) {
			t.Fatalf("%s: args %q, want %q", mode, w.Args, want)
		}
		// What the sidecar will parse: its bundle section, and its pin.
		sc, err := config.ParseConfig(in.SidecarConfig(mode))
		if err != nil {
			t.Fatalf("%s: the sidecar config does not parse: %v\n%s", mode, err, in.SidecarConfig(mode))
		}
		if sc.Bundle == nil || sc.Bundle.TrustRoots().Pin() != pin || sc.Bundle.CacheDir != BundleCacheDir || len(sc.Apps) != 0 {
			t.Fatalf("%s: sidecar bundle section %+v", mode, sc.Bundle)
		}
	}
	p, err := in.AdmissionParams()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Args, pin) {
		t.Fatalf("the admission parameters do not pin the bundle pin: args %q", p.Args)
	}

	// Each trust root changes the pin.
	for name, edit := range map[string]func(*BundleConfig){
		"url": func(b *BundleConfig) { b.URL = "https://evil.example" },
		"key": func(b *BundleConfig) { b.TrustedKeys[0].PublicKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
		"extra": func(b *BundleConfig) {
			b.TrustedKeys = append(b.TrustedKeys, BundleKeyConfig{ID: "x", PublicKey: b.TrustedKeys[0].PublicKey})
		},
		"ca":    func(b *BundleConfig) { b.CA = "" },
		"fleet": func(b *BundleConfig) { b.Fleet = "ecs-prod" },
	} {
		b := *cfg.Bundle
		b.TrustedKeys = slices.Clone(b.TrustedKeys)
		edit(&b)
		if b.TrustRoots().Pin() == pin {
			t.Errorf("changing the %s keeps the pin", name)
		}
	}

	for _, c := range []struct{ name, from, to, want string }{
		{"apps beside bundle", "  audit:\n", "  apps: []\n  audit:\n", "policy.apps: with bundle set"},
		{"policy.bundle", "  audit:\n", "  bundle: {}\n  audit:\n", "policy.bundle is written by the injector"},
		{"http url", "url: https://", "url: http://", "bundle.url"},
		{"bad key", "UvKwXnqyPZWFe7vCHNhqm4tl+PvLXLO1Vw6v6DJP6q4=", "AAAA", "bundle.trusted_keys[1].public_key"},
		{"bad ca", "-----BEGIN CERTIFICATE-----", "-----BEGIN NOTHING-----", "bundle.ca: no PEM"},
		{"bad wait", "  fleet: eks-prod\n", "  fleet: eks-prod\n  wait: soon\n", "bundle.wait"},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := strings.Replace(string(data), c.from, c.to, 1)
			if y == string(data) {
				t.Fatalf("edit %q not applied", c.from)
			}
			if _, err := ParseConfig([]byte(y)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseConfig: %v, want %q", err, c.want)
			}
		})
	}
}
