package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// TestBundleStagedRolloutProcesses is the staged roll-out of README.md's
// "Editing the policy" with every part a separate process: a `warden bundle
// serve`, and two `warden serve`, one in a canary namespace. A bundle signed
// with `warden policy sign --namespace 'canary-*'` reaches the canary and
// not the other Warden, which keeps its policy (its serial, its decision);
// the next serial, signed for every fleet, reaches both.
func TestBundleStagedRolloutProcesses(t *testing.T) {
	bin := buildWarden(t)
	dir := t.TempDir()
	sh := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("warden %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	sh("keys", "bundle-key", "--id", "sec-2026-12", "--out", filepath.Join(dir, "keys"))
	keyFile := filepath.Join(dir, "keys", "sec-2026-12.key")
	pubRaw, err := os.ReadFile(filepath.Join(dir, "keys", "sec-2026-12.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(string(pubRaw))

	caFile, certFile, keyPEMFile := writeServiceTLS(t, dir)
	store := filepath.Join(dir, "bundles")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	svcAddr := freeAddr(t)
	svcURL := "https://" + svcAddr
	startProc(t, "bundle-serve", bin, nil, "bundle", "serve", "--dir", store, "--listen", svcAddr,
		"--tls-cert", certFile, "--tls-key", keyPEMFile, "--trust", "sec-2026-12="+pub, "--scan-interval", "50ms")
	caPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	caPool.AppendCertsFromPEM(caPEM)
	svcClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	waitUntil(t, "the bundle service", func() bool {
		resp, err := svcClient.Get(svcURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// signPublish signs the policy allowing models for the scope flags, and
	// publishes it, as the README's commands do.
	signPublish := func(serial int, models string, scope ...string) {
		t.Helper()
		pol := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", serial))
		if err := os.WriteFile(pol, []byte(fmt.Sprintf(fleetPolicy, models)), 0o644); err != nil {
			t.Fatal(err)
		}
		b := filepath.Join(dir, fmt.Sprintf("b%d.json", serial))
		args := append([]string{"policy", "sign", "--policy", pol, "--key", keyFile, "--key-id", "sec-2026-12",
			"--serial", strconv.Itoa(serial), "--expires", "1h", "--out", b}, scope...)
		sh(args...)
		sh("policy", "publish", "--bundle", b, "--to", svcURL, "--ca-file", caFile)
	}
	signPublish(1, `"amazon.nova-*"`, "--fleet", "eks-*")

	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENFLEET00001": "fleet-secret"}})
	t.Cleanup(emu.Close)
	env := []string{"AWS_ACCESS_KEY_ID=AKIAWARDENFLEET00001", "AWS_SECRET_ACCESS_KEY=fleet-secret", "AWS_SESSION_TOKEN=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	start := func(ns string) *fleetWarden {
		w := &fleetWarden{ns: ns, endpoint: freeAddr(t), admin: freeAddr(t), audit: filepath.Join(dir, ns+"-audit.jsonl")}
		cfg := strings.NewReplacer("${EP}", w.endpoint, "${ADMIN}", w.admin, "${UPSTREAM}", emu.URL, "${SPOOL}", filepath.Join(dir, ns+"-spool"),
			"${AUDIT}", w.audit, "${URL}", svcURL, "${CA}", caFile, "${PUB}", pub, "${NS}", ns, "${CACHE}", filepath.Join(dir, ns+"-cache")).Replace(fleetConfig)
		cfgPath := filepath.Join(dir, ns+".yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		w.proc = startProc(t, "warden-"+ns, bin, env, "serve", "--config", cfgPath)
		return w
	}
	canary, shop := start("canary-shop"), start("shop")
	onSerial := func(w *fleetWarden, serial float64) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%s on serial %v", w.ns, serial), func() bool { return w.metric("warden_policy_serial") == serial })
	}
	for _, w := range []*fleetWarden{canary, shop} {
		onSerial(w, 1)
		if err := w.converse(claudeModel); !isAccessDenied(err) {
			t.Fatalf("%s: claude under serial 1: %v, want AccessDenied", w.ns, err)
		}
	}

	// The canaries first.
	fetched := shop.metric(`warden_policy_bundle_fetches_total{result="ok"}`)
	signPublish(2, `"amazon.nova-*", "anthropic.*"`, "--namespace", "canary-*")
	onSerial(canary, 2)
	if err := canary.converse(claudeModel); err != nil {
		t.Fatalf("canary: claude under serial 2: %v", err)
	}
	// The other Warden asks again after the publish (its long-poll answered
	// at the latest at its wait's end), and the service gives it its own
	// scope's newest, still serial 1: it keeps serial 1 and decides by it.
	waitUntil(t, "shop's next answer from the service after the canary publish", func() bool {
		return shop.metric(`warden_policy_bundle_fetches_total{result="ok"}`) > fetched
	})
	if s := shop.metric("warden_policy_serial"); s != 1 {
		t.Fatalf("shop took the canary bundle: serial %v", s)
	}
	if err := shop.converse(claudeModel); !isAccessDenied(err) {
		t.Fatalf("shop: claude during the canary stage: %v, want AccessDenied", err)
	}

	// Then everyone, with a higher serial.
	signPublish(3, `"amazon.nova-*", "anthropic.*"`, "--fleet", "*")
	for _, w := range []*fleetWarden{canary, shop} {
		onSerial(w, 3)
		if err := w.converse(claudeModel); err != nil {
			t.Fatalf("%s: claude under serial 3: %v", w.ns, err)
		}
		// /readyz reads the follower's record of the bundle, made a moment
		// after the policy (and warden_policy_serial) took effect.
		waitUntil(t, w.ns+" /readyz on serial 3", func() bool {
			code, body := w.get("/readyz")
			return code == 200 && strings.Contains(body, "serial 3")
		})
	}
}
