package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/proxy/mitm"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// serve with listen.proxy writes the CA certificate and the AWS_CA_BUNDLE
// file it was asked for, and an SDK trusting that bundle works through the
// proxy.
func TestServeForwardProxyWritesCAFiles(t *testing.T) {
	emu := serveEmulator(t)
	dir := t.TempDir()
	// A stand-in system root bundle, so the test does not depend on the host's.
	other, err := mitm.New(mitm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", roots)

	px, admin := freeAddr(t), freeAddr(t)
	certOut, bundleOut := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "bundle.pem")
	cfg := fmt.Sprintf(`version: 1
listen: {proxy: %q, admin: %q}
upstream: {region: us-east-1, url: %q, insecure: true}
ca: {cert_out: %q, bundle_out: %q}
identity: {static: {app: svc}}
apps:
  - name: svc
    allow_weak_identity: true
    match: {tags: {app: svc}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
audit: {spool: {dir: %q}}
`, px, admin, emu.URL, certOut, bundleOut, filepath.Join(dir, "spool"))
	cfgPath := filepath.Join(dir, "warden.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	var stdout, stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"serve", "--config", cfgPath}, &stdout, &stderr) }()
	waitHTTP(t, "http://"+admin+"/healthz")

	certPEM, err := os.ReadFile(certOut)
	if err != nil {
		t.Fatalf("ca.cert_out: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || strings.Contains(string(certPEM), "PRIVATE") {
		t.Fatalf("ca.cert_out holds %q", certPEM)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA || !ca.PermittedDNSDomainsCritical || len(ca.PermittedDNSDomains) == 0 {
		t.Fatalf("ca.cert_out is not a name-constrained CA: %v", err)
	}
	bundle, err := os.ReadFile(bundleOut)
	if err != nil {
		t.Fatalf("ca.bundle_out: %v", err)
	}
	if !bytes.HasPrefix(bundle, other.CertPEM()) || !bytes.Contains(bundle, certPEM) {
		t.Errorf("ca.bundle_out is not the system roots followed by Warden's CA")
	}
	for _, f := range []string{certOut, bundleOut} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644 (public, read by apps)", f, st.Mode().Perm(), err)
		}
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle does not parse")
	}
	pu, _ := url.Parse("http://" + px)
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", RetryMaxAttempts: 1,
		HTTPClient: bedrocktest.BufferedClient(&http.Client{Transport: &http.Transport{
			Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	if _, err := client.Converse(cctx, &bedrockruntime.ConverseInput{ModelId: aws.String("amazon.nova-lite-v1:0"), Messages: msgs}); err != nil {
		t.Fatalf("Converse through serve's forward proxy: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	if !strings.Contains(stdout.String(), `"decision":"allow"`) {
		t.Errorf("no audit record on stdout: %s", stdout.String())
	}
}
