package mitm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func caPool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Certificate())
	return p
}

func TestCANameConstraintsPresentAndCritical(t *testing.T) {
	ca := newTestCA(t)
	block, _ := pem.Decode(ca.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	oidNameConstraints := asn1.ObjectIdentifier{2, 5, 29, 30}
	found := false
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidNameConstraints) {
			found = true
			if !ext.Critical {
				t.Error("name constraints extension is not critical")
			}
		}
	}
	if !found {
		t.Fatal("no name constraints extension")
	}
	if !cert.PermittedDNSDomainsCritical || len(cert.PermittedDNSDomains) == 0 {
		t.Fatal("no critical permitted DNS domains")
	}
	for _, want := range []string{
		"bedrock-runtime.us-east-1.amazonaws.com",
		"bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
		"bedrock-runtime.cn-north-1.amazonaws.com.cn",
		"bedrock-runtime.eu-west-1.api.aws",
		"bedrock-runtime.us-west-2.vpce.amazonaws.com",
	} {
		if !slices.Contains(cert.PermittedDNSDomains, want) {
			t.Errorf("permitted domains lack %s", want)
		}
	}
	for _, d := range cert.PermittedDNSDomains {
		switch d {
		case "amazonaws.com", "vpce.amazonaws.com", "api.aws", "amazonaws.com.cn", "":
			t.Errorf("permitted domain %q is too broad", d)
		}
	}
	if !excludesAllIPs(cert.ExcludedIPRanges) {
		t.Errorf("excluded IP ranges %v do not cover all addresses", cert.ExcludedIPRanges)
	}
	if !cert.IsCA || !cert.MaxPathLenZero || cert.MaxPathLen != 0 {
		t.Error("CA must be a CA with path length 0")
	}
	if err := CheckCert(cert); err != nil {
		t.Error(err)
	}
}

func TestCALeafVerifies(t *testing.T) {
	ca := newTestCA(t)
	for _, host := range []string{
		"bedrock-runtime.us-east-1.amazonaws.com",
		"BEDROCK-RUNTIME.us-east-1.amazonaws.com.",
		"bedrock-runtime-fips.us-east-1.amazonaws.com",
		"bedrock-runtime.cn-northwest-1.amazonaws.com.cn",
		"bedrock-runtime.ap-southeast-2.api.aws",
		"vpce-0123456789abcdef0-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com",
		"vpce-0123456789abcdef0-abcdefgh-us-east-1a.bedrock-runtime.us-east-1.vpce.amazonaws.com",
		// The agent runtime (InvokeAgent, Retrieve, …), intercepted too.
		"bedrock-agent-runtime.us-east-1.amazonaws.com",
		"bedrock-agent-runtime.cn-northwest-1.amazonaws.com.cn",
		"vpce-0123456789abcdef0-abcdefgh.bedrock-agent-runtime.us-east-1.vpce.amazonaws.com",
	} {
		leaf, err := ca.Leaf(host)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		name := strings.ToLower(strings.TrimSuffix(host, "."))
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: caPool(ca)}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
		if got := leaf.Leaf.NotAfter.Sub(leaf.Leaf.NotBefore); got > 25*time.Hour {
			t.Errorf("%s: leaf lives %s", host, got)
		}
	}
}

func TestCALeafRefusesOtherHosts(t *testing.T) {
	ca := newTestCA(t)
	for _, host := range []string{
		"example.com", "sts.us-east-1.amazonaws.com", "amazonaws.com", "bedrock.us-east-1.amazonaws.com",
		"vpce-0123-abcd.s3.us-east-1.vpce.amazonaws.com", // a VPC endpoint of another service
		"bedrock-runtime.us-east-1.amazonaws.com.evil.com",
		"*.bedrock-runtime.us-east-1.amazonaws.com", "127.0.0.1", "::1", "",
		"bedrock-runtime.xx-nowhere-9.amazonaws.com", // not an enumerated region: outside the constraints
		"bedrock-agent.us-east-1.amazonaws.com",      // the agents' control plane
		"bedrock-agent-runtime.us-east-1.amazonaws.com.evil.com",
	} {
		if _, err := ca.Leaf(host); !errors.Is(err, ErrHostNotAllowed) {
			t.Errorf("Leaf(%q) = %v, want ErrHostNotAllowed", host, err)
		}
	}
	if ca.cache.Len() != 0 {
		t.Errorf("refused hosts reached the cache: %v", ca.cache.Keys())
	}
}

// forge signs a leaf with the CA key directly, bypassing Leaf's checks, as someone holding a leaked key would.
func forge(t *testing.T, ca *CA, dns []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "forged"},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// The key acceptance point: even with the CA key, a certificate for another name does not verify.
func TestCAForgedLeafFailsNameConstraints(t *testing.T) {
	ca := newTestCA(t)
	roots := caPool(ca)
	// Sanity: a forged leaf for an allowed name does verify, so the failures below are the constraints' doing.
	ok := forge(t, ca, []string{"bedrock-runtime.us-east-1.amazonaws.com"}, nil)
	if _, err := ok.Verify(x509.VerifyOptions{DNSName: "bedrock-runtime.us-east-1.amazonaws.com", Roots: roots}); err != nil {
		t.Fatalf("control leaf: %v", err)
	}
	for _, name := range []string{"example.com", "sts.amazonaws.com", "s3.us-east-1.amazonaws.com",
		"vpce-1.s3.us-east-1.vpce.amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com.evil.com"} {
		cert := forge(t, ca, []string{name}, nil)
		_, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots})
		var ci x509.CertificateInvalidError
		if !errors.As(err, &ci) || ci.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("forged leaf for %s: err = %v, want CANotAuthorizedForThisName", name, err)
		}
	}
	// A leaf naming an allowed host and another one fails too: every SAN is checked.
	mixed := forge(t, ca, []string{"bedrock-runtime.us-east-1.amazonaws.com", "example.com"}, nil)
	if _, err := mixed.Verify(x509.VerifyOptions{DNSName: "bedrock-runtime.us-east-1.amazonaws.com", Roots: roots}); err == nil {
		t.Error("leaf with an extra non-Bedrock SAN verified")
	}
}

func TestCAForgedIPLeafFails(t *testing.T) {
	ca := newTestCA(t)
	roots := caPool(ca)
	for _, ip := range []string{"10.0.0.1", "52.94.0.1", "127.0.0.1", "::1", "2600:1f18::1"} {
		cert := forge(t, ca, nil, []net.IP{net.ParseIP(ip)})
		_, err := cert.Verify(x509.VerifyOptions{DNSName: ip, Roots: roots})
		var ci x509.CertificateInvalidError
		if !errors.As(err, &ci) || ci.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("forged leaf for IP %s: err = %v, want CANotAuthorizedForThisName", ip, err)
		}
	}
}

func TestCALeafCacheSingleflight(t *testing.T) {
	ca := newTestCA(t)
	const n = 64
	host := "bedrock-runtime.us-west-2.amazonaws.com"
	serials := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			leaf, err := ca.Leaf(host)
			if err != nil {
				t.Error(err)
				return
			}
			serials[i] = leaf.Leaf.SerialNumber.String()
		}()
	}
	close(start)
	wg.Wait()
	for i := 1; i < n; i++ {
		if serials[i] != serials[0] {
			t.Fatalf("call %d got serial %s, call 0 got %s: more than one signature", i, serials[i], serials[0])
		}
	}
	if ca.cache.Len() != 1 {
		t.Errorf("cache holds %d entries", ca.cache.Len())
	}
	other, err := ca.Leaf("bedrock-runtime.us-east-1.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.String() == serials[0] {
		t.Error("two hosts share a leaf")
	}
}

func writeCAFiles(t *testing.T, ca *CA, keyMode os.FileMode) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), keyMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, keyMode); err != nil { // umask
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestLoadCA(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := writeCAFiles(t, ca, 0o600)
	loaded, err := Load(certFile, keyFile, Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := loaded.Leaf("bedrock-runtime.eu-central-1.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "bedrock-runtime.eu-central-1.amazonaws.com", Roots: caPool(ca)}); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		c, k := writeCAFiles(t, ca, mode)
		if _, err := Load(c, k, Options{}); err == nil || !strings.Contains(err.Error(), "mode") {
			t.Errorf("key mode %#o: err = %v, want a refusal", mode, err)
		}
	}
}

func TestLoadCARefusesUnconstrainedCert(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "careless"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}
	broad := *tmpl
	broad.PermittedDNSDomainsCritical = true
	broad.PermittedDNSDomains = []string{"amazonaws.com"}
	broad.ExcludedIPRanges = allIPs()
	for name, tm := range map[string]*x509.Certificate{"unconstrained": tmpl, "broad": &broad} {
		der, err := x509.CreateCertificate(rand.Reader, tm, tm, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		dir := t.TempDir()
		c, k := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		if _, err := Load(c, k, Options{}); err == nil {
			t.Errorf("%s CA loaded", name)
		}
	}
}
