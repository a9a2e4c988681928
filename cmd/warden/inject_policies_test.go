package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-egress/warden/config"
)

// `warden inject --print-policies` prints the admission policies with
// parameters generated from the injector's configuration (golden file,
// refreshed with -update); a configuration the policies cannot pin (an
// image not pinned by digest) is refused with the reason.
func TestInjectPrintPolicies(t *testing.T) {
	cfgPath := filepath.Join("..", "..", "deploy", "kubernetes", "injector", "config.yaml")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"inject", "--print-policies", "--config", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("inject --print-policies: exit %d: %s", code, errb.String())
	}
	golden := filepath.Join("testdata", "inject", "print-policies.golden.yaml")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/warden -run TestInjectPrintPolicies -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("--print-policies output differs from %s (run with -update and review the diff)", golden)
	}
	for _, want := range []string{
		"ghcr.io/warden-egress/warden@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"AWS_ROLE_ARN=value:arn:aws:iam::111122223333:role/warden/warden-sidecar",
		"AWS_REGION=value:us-east-1",
		"kind: ValidatingAdmissionPolicy",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Bundle mode: the parameters pin the sidecar's --bundle-pin, the digest
	// of the trust roots its configuration carries (what serve checks).
	t.Run("bundle mode", func(t *testing.T) {
		bcfg := filepath.Join("..", "..", "deploy", "kubernetes", "injector", "config-bundle.yaml")
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"inject", "--print-policies", "--config", bcfg}, &out, &errb); code != 0 {
			t.Fatalf("inject --print-policies: exit %d: %s", code, errb.String())
		}
		var sidecar bytes.Buffer
		if code := run(context.Background(), []string{"inject", "--print-config", "proxy", "--config", bcfg}, &sidecar, &errb); code != 0 {
			t.Fatalf("inject --print-config: exit %d: %s", code, errb.String())
		}
		sc, err := config.ParseConfig(sidecar.Bytes())
		if err != nil || sc.Bundle == nil {
			t.Fatalf("the sidecar config: %v (bundle %v)", err, sc != nil && sc.Bundle != nil)
		}
		want := "--config-env\n    WARDEN_CONFIG\n    --bundle-pin\n    " + sc.Bundle.TrustRoots().Pin() + "\n"
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the parameters' args do not end in the sidecar's pin %s:\n%s", sc.Bundle.TrustRoots().Pin(), grepLines(out.String(), "args"))
		}
		if sc.Bundle.URL != "https://warden-bundles.warden-system.svc:8443" || len(sc.Apps) != 0 {
			t.Errorf("sidecar bundle url %q, %d apps", sc.Bundle.URL, len(sc.Apps))
		}
	})

	t.Run("image by tag", func(t *testing.T) {
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(data),
			"ghcr.io/warden-egress/warden@sha256:0000000000000000000000000000000000000000000000000000000000000000",
			"ghcr.io/warden-egress/warden:latest", 1)
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"inject", "--print-policies", "--config", file}, &out, &errb); code == 0 {
			t.Fatalf("exit 0 for an image by tag:\n%s", out.String())
		}
		if !strings.Contains(errb.String(), "not pinned by digest") || out.Len() != 0 {
			t.Fatalf("stderr %q, stdout %d bytes", errb.String(), out.Len())
		}
	})
}
