package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/proxy/mitm"

	"github.com/warden-egress/warden/internal/testenv"
)

func selfSignedPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func certsIn(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestCABundle(t *testing.T) {
	dir := t.TempDir()
	ca, err := mitm.New(mitm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "warden-ca.pem")
	os.WriteFile(caFile, ca.CertPEM(), 0o644)
	roots := append(selfSignedPEM(t, "Root One"), selfSignedPEM(t, "Root Two")...)
	rootsFile := filepath.Join(dir, "roots.pem")
	os.WriteFile(rootsFile, roots, 0o644)
	out := filepath.Join(dir, "bundle.pem")

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ca", "bundle", "--out", out, "--ca-cert", caFile, "--system-roots", rootsFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("bundle mode %#o, want 0644", st.Mode().Perm())
	}
	data, _ := os.ReadFile(out)
	if !bytes.HasPrefix(data, roots) {
		t.Error("bundle does not start with the system roots")
	}
	certs := certsIn(t, data)
	if len(certs) != 3 || certs[0].Subject.CommonName != "Root One" || certs[1].Subject.CommonName != "Root Two" ||
		!certs[2].Equal(ca.Certificate()) {
		t.Fatalf("bundle holds %d certificates, want the 2 roots then Warden's CA", len(certs))
	}
	if !strings.Contains(stdout.String(), "AWS_CA_BUNDLE="+out) {
		t.Errorf("stdout %q does not name AWS_CA_BUNDLE", stdout.String())
	}

	// The just-the-certificate form for NODE_EXTRA_CA_CERTS.
	certOut := filepath.Join(dir, "cert.pem")
	stdout.Reset()
	if code := run(context.Background(), []string{"ca", "cert", "--out", certOut, "--ca-cert", caFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, _ = os.ReadFile(certOut)
	if c := certsIn(t, data); len(c) != 1 || !c[0].Equal(ca.Certificate()) {
		t.Error("ca cert output is not exactly Warden's certificate")
	}
	if !strings.Contains(stdout.String(), "NODE_EXTRA_CA_CERTS") {
		t.Errorf("stdout %q does not name NODE_EXTRA_CA_CERTS", stdout.String())
	}
}

func TestCABundleDefaultSystemRoots(t *testing.T) {
	var found string
	for _, f := range systemRootFiles {
		if _, err := os.Stat(f); err == nil {
			found = f
			break
		}
	}
	if found == "" {
		testenv.Missing(t, "no standard system root bundle on this machine")
	}
	t.Setenv("SSL_CERT_FILE", "")
	dir := t.TempDir()
	ca, _ := mitm.New(mitm.Options{})
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.CertPEM(), 0o644)
	out := filepath.Join(dir, "bundle.pem")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ca", "bundle", "--out", out, "--ca-cert", caFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	system, _ := os.ReadFile(found)
	data, _ := os.ReadFile(out)
	if !bytes.HasPrefix(data, system) {
		t.Errorf("bundle does not start with %s", found)
	}
	certs := certsIn(t, data)
	if len(certs) < 2 || !certs[len(certs)-1].Equal(ca.Certificate()) {
		t.Error("bundle does not end with Warden's CA")
	}
}

func TestCABundleRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	unconstrained := filepath.Join(dir, "careless.pem")
	os.WriteFile(unconstrained, selfSignedPEM(t, "careless"), 0o644)
	withKey := filepath.Join(dir, "withkey.pem")
	ca, _ := mitm.New(mitm.Options{})
	os.WriteFile(withKey, append(ca.CertPEM(), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")...), 0o600)
	roots := filepath.Join(dir, "roots.pem")
	os.WriteFile(roots, selfSignedPEM(t, "root"), 0o644)
	for name, args := range map[string][]string{
		"unconstrained": {"ca", "bundle", "--out", filepath.Join(dir, "o1"), "--ca-cert", unconstrained, "--system-roots", roots},
		"key in file":   {"ca", "cert", "--out", filepath.Join(dir, "o2"), "--ca-cert", withKey},
		"no ca-cert":    {"ca", "bundle", "--out", filepath.Join(dir, "o3")},
		"empty roots":   {"ca", "bundle", "--out", filepath.Join(dir, "o4"), "--ca-cert", withKey, "--system-roots", filepath.Join(dir, "missing")},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%s: exit 0", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "o") {
			t.Errorf("%s written despite the error", e.Name())
		}
	}
}

func TestCAHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ca", "help"}, &stdout, &stderr); code != 0 {
		t.Fatal(stderr.String())
	}
	for _, want := range []string{"AWS_CA_BUNDLE", "REPLACES the system roots", "NODE_EXTRA_CA_CERTS", "warden ca cert"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
