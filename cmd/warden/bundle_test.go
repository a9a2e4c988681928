package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warden-egress/warden/bundle"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/miniotest"
)

// runOK runs the warden command and returns its stdout, failing on an
// error exit.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("warden %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

// runErr runs the warden command, which must fail, and returns stderr.
func runErr(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb); code == 0 {
		t.Fatalf("warden %s succeeded: %s", strings.Join(args, " "), out.String())
	}
	return errb.String()
}

const cliPolicy = `apps:
  - name: shop
    match: {tags: {k8s.namespace: shop}}
    allow: {models: ["anthropic.*"], operations: [Converse]}
`

// The security team's path: a key, a policy, sign, verify, publish to a
// directory the service reads (and to S3: TestPolicyPublishS3); a bundle
// that does not validate is never signed, and a serial is published once.
func TestPolicySignVerifyPublish(t *testing.T) {
	dir := t.TempDir()
	out := runOK(t, "keys", "bundle-key", "--id", "sec-2026-12", "--out", dir)
	if !strings.Contains(out, "public_key: ") {
		t.Fatalf("bundle-key printed %q", out)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(cliPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(dir, "sec-2026-12.key"), "sec-2026-12=@"+filepath.Join(dir, "sec-2026-12.pub")
	b := filepath.Join(dir, "b7.json")
	out = runOK(t, "policy", "sign", "--policy", pol, "--key", key, "--key-id", "sec-2026-12", "--serial", "7",
		"--fleet", "eks-*", "--out", b)
	if !strings.Contains(out, "signed bundle 7") || !strings.Contains(out, "policy hash ") {
		t.Fatalf("sign printed %q", out)
	}
	if out := runOK(t, "policy", "verify", "--bundle", b, "--trust", pub, "--fleet", "eks-prod", "--namespace", "shop"); !strings.Contains(out, "OK serial 7") {
		t.Fatalf("verify printed %q", out)
	}
	if e := runErr(t, "policy", "verify", "--bundle", b, "--trust", pub, "--fleet", "ecs-prod"); !strings.Contains(e, "REFUSED (out_of_scope)") {
		t.Fatalf("verify out of scope: %q", e)
	}
	// The hash sign prints is the one audit records carry.
	base, err := config.ParseConfig([]byte(minimalBase))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := config.WithPolicy(base, []byte(cliPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, config.PolicyHash(merged)) {
		t.Errorf("sign printed %q, not the policy hash %s", out, config.PolicyHash(merged))
	}

	// policy test and explain take the policy file alone (--policy), over a
	// Warden's own config when given (its bundle section included).
	cases := filepath.Join(dir, "cases.yaml")
	_ = os.WriteFile(cases, []byte("cases:\n  - name: shop\n    strong_tags: {k8s.namespace: shop}\n    operation: Converse\n"+
		"    model: anthropic.claude-3-haiku-20240307-v1:0\n    expect: allow\n"), 0o644)
	wardenCfg := filepath.Join(dir, "warden.yaml")
	_ = os.WriteFile(wardenCfg, []byte("version: 1\nupstream: {region: us-east-1}\nidentity: {sources: [static], static: {k8s.namespace: shop}}\nbundle:\n"+
		"  url: https://warden-bundles.warden-system.svc:8443\n  trusted_keys: [{id: sec-2026-12, public_key: \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}]\n"), 0o644)
	for _, args := range [][]string{
		{"policy", "test", "--policy", pol, "--cases", cases},
		{"policy", "test", "--policy", pol, "--config", wardenCfg, "--cases", cases},
	} {
		if out := runOK(t, args...); !strings.Contains(out, "PASS: 1/1") {
			t.Errorf("warden %s printed %q", strings.Join(args, " "), out)
		}
	}
	if out := runOK(t, "policy", "explain", "--policy", pol, "--tag", "k8s.namespace=shop:strong", "--op", "Converse",
		"--model", "anthropic.claude-3-haiku-20240307-v1:0"); !strings.Contains(out, "SELECTED") {
		t.Errorf("explain --policy printed %q", out)
	}
	if e := runErr(t, "policy", "test", "--policy", wardenCfg, "--cases", cases); !strings.Contains(e, "warden.yaml:2:1") || !strings.Contains(e, "a policy bundle holds only") {
		t.Errorf("policy test --policy of a whole config: %q", e)
	}

	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("apps:\n  - name: x\n    colour: red\n"), 0o644)
	if e := runErr(t, "policy", "sign", "--policy", bad, "--key", key, "--key-id", "sec-2026-12", "--fleet", "*", "--out", filepath.Join(dir, "x.json")); !strings.Contains(e, "bad.yaml:3:5") {
		t.Fatalf("signing an invalid policy: %q", e)
	}

	pubDir := t.TempDir()
	if out := runOK(t, "policy", "publish", "--bundle", b, "--to", pubDir, "--trust", pub); !strings.Contains(out, "published bundle 7") {
		t.Fatalf("publish printed %q", out)
	}
	if e := runErr(t, "policy", "publish", "--bundle", b, "--to", pubDir); !strings.Contains(e, "already published") {
		t.Fatalf("publishing serial 7 twice: %q", e)
	}
	if _, err := os.Stat(filepath.Join(pubDir, bundle.FileName(7))); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	runOK(t, "keys", "bundle-key", "--id", "other", "--out", other)
	if e := runErr(t, "policy", "publish", "--bundle", b, "--to", t.TempDir(), "--trust", "other=@"+filepath.Join(other, "other.pub")); !strings.Contains(e, "not published (unsigned)") {
		t.Fatalf("publish checked against the wrong key: %q", e)
	}
}

// TestPolicyPublishS3: `warden policy publish --to s3://…` on a real MinIO,
// credentials from the environment as in a CI job.
func TestPolicyPublishS3(t *testing.T) {
	m := miniotest.Start(t)
	if m == nil {
		return
	}
	m.MakeBucket(t, "policy")
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	runOK(t, "keys", "bundle-key", "--id", "k", "--out", dir)
	pol := filepath.Join(dir, "policy.yaml")
	_ = os.WriteFile(pol, []byte(cliPolicy), 0o644)
	b := filepath.Join(dir, "b.json")
	runOK(t, "policy", "sign", "--policy", pol, "--key", filepath.Join(dir, "k.key"), "--key-id", "k", "--serial", "3", "--fleet", "*", "--out", b)
	s3 := []string{"--s3-endpoint", m.Endpoint, "--s3-region", m.Region, "--s3-path-style"}
	out := runOK(t, append([]string{"policy", "publish", "--bundle", b, "--to", "s3://policy/eks/"}, s3...)...)
	if !strings.Contains(out, "s3://policy/eks/"+bundle.FileName(3)) {
		t.Fatalf("publish printed %q", out)
	}
	if e := runErr(t, append([]string{"policy", "publish", "--bundle", b, "--to", "s3://policy/eks/"}, s3...)...); !strings.Contains(e, "already published") {
		t.Fatalf("publishing serial 3 twice to S3: %q", e)
	}
}

// An injected sidecar whose configuration's trust roots do not match the
// pin on its (admission-pinned) command line refuses to start.
func TestServeBundlePin(t *testing.T) {
	cfg := `version: 1
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: x}}
bundle:
  url: https://warden-bundles.warden-system.svc:8443
  trusted_keys: [{id: sec-2026-12, public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]
`
	t.Setenv("WARDEN_TEST_CONFIG", cfg)
	if e := runErr(t, "serve", "--config-env", "WARDEN_TEST_CONFIG", "--bundle-pin", "sha256:00"); !strings.Contains(e, "refusing to start") {
		t.Fatalf("a wrong pin: %q", e)
	}
	t.Setenv("WARDEN_TEST_CONFIG", "version: 1\nupstream: {region: us-east-1}\nidentity: {sources: [static], static: {app: x}}\napps: []\n")
	if e := runErr(t, "serve", "--config-env", "WARDEN_TEST_CONFIG", "--bundle-pin", "sha256:00"); !strings.Contains(e, "no bundle section") {
		t.Fatalf("a pin and no bundle section: %q", e)
	}
}

// TestPolicyPublishRedirectToHTTP: `warden policy publish` to https://
// refuses a redirect to plain http; the bundle never reaches it.
func TestPolicyPublishRedirectToHTTP(t *testing.T) {
	dir := t.TempDir()
	runOK(t, "keys", "bundle-key", "--id", "k", "--out", dir)
	pol := filepath.Join(dir, "policy.yaml")
	_ = os.WriteFile(pol, []byte(cliPolicy), 0o644)
	b := filepath.Join(dir, "b.json")
	runOK(t, "policy", "sign", "--policy", pol, "--key", filepath.Join(dir, "k.key"), "--key-id", "k", "--serial", "3", "--fleet", "*", "--out", b)
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(plain.Close)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(ts.Close)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if e := runErr(t, "policy", "publish", "--bundle", b, "--to", ts.URL, "--ca-file", ca); !strings.Contains(e, "refused, want https") {
		t.Fatalf("publish redirected to http: %q", e)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the plain-http server got %d requests", n)
	}
}

// TestPolicySignKeyMistakes: a signing key readable by others is refused
// before anything is signed; a key signed under another key's id is caught
// by verify and by publish --trust (bad_signature), and nothing is stored.
func TestPolicySignKeyMistakes(t *testing.T) {
	dir := t.TempDir()
	runOK(t, "keys", "bundle-key", "--id", "a", "--out", dir)
	runOK(t, "keys", "bundle-key", "--id", "b", "--out", dir)
	pol := filepath.Join(dir, "policy.yaml")
	_ = os.WriteFile(pol, []byte(cliPolicy), 0o644)
	open := filepath.Join(dir, "open.key")
	raw, err := os.ReadFile(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "open.json")
	if e := runErr(t, "policy", "sign", "--policy", pol, "--key", open, "--key-id", "a", "--fleet", "*", "--out", out); !strings.Contains(e, "readable by others") {
		t.Fatalf("sign with a 0644 key: %q", e)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a bundle was written with a key readable by others")
	}

	wrong := filepath.Join(dir, "wrong.json")
	runOK(t, "policy", "sign", "--policy", pol, "--key", filepath.Join(dir, "a.key"), "--key-id", "b", "--serial", "4", "--fleet", "*", "--out", wrong)
	trustB := "b=@" + filepath.Join(dir, "b.pub")
	if e := runErr(t, "policy", "verify", "--bundle", wrong, "--trust", trustB); !strings.Contains(e, "bad_signature") {
		t.Fatalf("verify of key a's signature under id b: %q", e)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if e := runErr(t, "policy", "publish", "--bundle", wrong, "--to", store, "--trust", trustB); !strings.Contains(e, "bad_signature") || !strings.Contains(e, "not published") {
		t.Fatalf("publish --trust of key a's signature under id b: %q", e)
	}
	if entries, _ := os.ReadDir(store); len(entries) != 0 {
		t.Fatalf("the store holds %d files after a refused publish", len(entries))
	}
}
