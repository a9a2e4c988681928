// Package mitm is the name-constrained certificate authority the forward-proxy
// and transparent listeners present to clients: it signs leaf certificates
// for Bedrock runtime host names only.
package mitm

// The forward proxy's MITM certificate authority (issue 4; DESIGN.md threat model item 4: "the MITM CA as a
// skeleton key").
//
// A CA that apps trust is dangerous only for the names it can sign. This one is made so that, even if its private
// key leaks, nothing it signs verifies for any name other than a Bedrock runtime host:
//
//   - It is created in memory at start (ECDSA P-256); its key is never written anywhere. An operator who wants a
//     stable certificate across restarts supplies key and certificate files (Load), and Load refuses a key file
//     readable by group or others and a certificate without Warden's constraints.
//   - Its certificate carries critical X.509 Name Constraints. RFC 5280 dNSName constraints cannot express
//     wildcards in the middle of a name ("bedrock-runtime.*.amazonaws.com" is impossible); a constraint is a
//     label-wise suffix: "x.example.com" permits x.example.com and every name under it. A constraint such as
//     "amazonaws.com" or "vpce.amazonaws.com" would therefore let a leaked key sign for S3, STS, IAM, or every
//     VPC endpoint of every service. So the permitted subtrees are enumerated, one per region and naming scheme:
//       bedrock-runtime.REGION.amazonaws.com          (commercial and GovCloud)
//       bedrock-runtime-fips.REGION.amazonaws.com     (FIPS)
//       bedrock-runtime.REGION.amazonaws.com.cn       (China)
//       bedrock-runtime.REGION.api.aws, bedrock-runtime-fips.REGION.api.aws  (dual-stack)
//       bedrock-runtime.REGION.vpce.amazonaws.com     (interface endpoint names: vpce-ID[-AZ].bedrock-runtime.…)
//       bedrock-mantle.REGION.api.aws                 (bedrock-mantle: the OpenAI-compatible and Anthropic Messages APIs)
//     bedrock.REGION.amazonaws.com (the control plane, where Anthropic's Bedrock-only APIs also live) is never
//     permitted: a leaked key must not let anyone answer for the control plane.
//     The VPC-endpoint subtree is per region and per service: interface endpoint DNS names for bedrock-runtime all
//     sit under bedrock-runtime.REGION.vpce.amazonaws.com, so the broad vpce.amazonaws.com is never permitted.
//     The cost of enumeration: a region AWS opens after this build is not covered until Warden is updated or the
//     operator adds it (Options.Regions / ExtraRegions), and the certificate is a few kilobytes larger.
//     Leaf refuses any host outside these subtrees before signing, so such a host fails closed (the forward
//     proxy refuses the CONNECT) instead of producing a certificate clients would reject.
//   - Excluded IP ranges 0.0.0.0/0 and ::/0: it can never sign for an IP address.
//   - Path length 0 and extended key usage serverAuth only: no intermediate CAs, no client or code signing.
//   - Leaf certificates live 24 hours and carry exactly one DNS name.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"github.com/warden-egress/warden/bedrock"
)

// BedrockRegions lists the regions whose Bedrock runtime names the CA may sign for by default. Names in the
// China partition (cn-*) are permitted under amazonaws.com.cn; every other region under amazonaws.com and api.aws.
var BedrockRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
	"eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
	"eu-north-1", "eu-south-1", "eu-south-2",
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
	"ap-east-1", "ap-east-2",
	"me-central-1", "me-south-1", "il-central-1", "af-south-1",
	"us-gov-west-1", "us-gov-east-1",
	"cn-north-1", "cn-northwest-1",
}

// Options configure New. Zero values take the defaults noted.
type Options struct {
	// Regions replaces BedrockRegions; ExtraRegions adds to whichever list applies.
	Regions      []string
	ExtraRegions []string
	// Validity of the CA certificate (default 1 year; the CA lives only as long as the process unless loaded).
	Validity time.Duration
	// LeafTTL is the lifetime of leaf certificates (default 24h, at most 7 days).
	LeafTTL time.Duration
	// CacheSize bounds the leaf cache (default 1024 hosts).
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CA is Warden's name-constrained MITM certificate authority.
type CA struct {
	cert      *x509.Certificate
	certPEM   []byte
	key       crypto.Signer
	permitted map[string]bool // the name-constraint subtrees, lower case
	leafTTL   time.Duration
	now       func() time.Time
	cache     *expirable.LRU[string, *tls.Certificate]
	group     singleflight.Group
}

const (
	defaultCAValidity = 365 * 24 * time.Hour
	defaultLeafTTL    = 24 * time.Hour
	maxLeafTTL        = 7 * 24 * time.Hour
)

// PermittedDomains returns the dNSName subtrees a CA with these regions permits.
func PermittedDomains(regions []string) []string {
	var out []string
	for _, r := range regions {
		r = strings.ToLower(strings.TrimSpace(r))
		if r == "" {
			continue
		}
		// The runtime and the agent runtime (InvokeAgent, Retrieve, …): the
		// same name forms, both intercepted; bedrock-mantle (not in China).
		for _, svc := range []string{"bedrock-runtime", "bedrock-agent-runtime"} {
			if strings.HasPrefix(r, "cn-") {
				out = append(out, svc+"."+r+".amazonaws.com.cn")
				continue
			}
			out = append(out,
				svc+"."+r+".amazonaws.com",
				svc+"-fips."+r+".amazonaws.com",
				svc+"."+r+".api.aws",
				svc+"-fips."+r+".api.aws",
				svc+"."+r+".vpce.amazonaws.com",
			)
		}
		if !strings.HasPrefix(r, "cn-") {
			out = append(out, "bedrock-mantle."+r+".api.aws")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// New generates a fresh in-memory CA.
func New(opts Options) (*CA, error) {
	opts = opts.withDefaults()
	regions := opts.Regions
	if len(regions) == 0 {
		regions = BedrockRegions
	}
	regions = append(slices.Clone(regions), opts.ExtraRegions...)
	for _, r := range regions {
		if !bedrock.ValidRegion(r) {
			return nil, fmt.Errorf("ca: %q is not a region name", r)
		}
	}
	permitted := PermittedDomains(regions)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"Warden egress proxy"},
			CommonName:   "Warden Bedrock MITM CA " + now.UTC().Format("2006-01-02T15:04:05Z"),
		},
		NotBefore:                   now.Add(-5 * time.Minute),
		NotAfter:                    now.Add(opts.Validity),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         permitted,
		ExcludedIPRanges:            allIPs(),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return newCA(cert, key, opts)
}

// Load loads an operator-supplied CA. The key file must not be readable or writable by group or others, and
// the certificate must carry Warden's constraints (see CheckCert).
func Load(certFile, keyFile string, opts Options) (*CA, error) {
	st, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ca key %s has mode %#o: it must not be accessible by group or others (chmod 600)", keyFile, st.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("ca cert: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM) // also checks that the key matches the certificate
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("ca: the key cannot sign")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("ca cert: %w", err)
	}
	if err := CheckCert(cert); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if now := opts.Now(); now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("ca cert %s is not valid now (valid %s to %s)", certFile, cert.NotBefore.UTC(), cert.NotAfter.UTC())
	}
	return newCA(cert, signer, opts)
}

// CheckCert refuses a CA certificate that could sign for anything other than Bedrock runtime names: it must be
// a CA with path length 0, critical permitted dNSName constraints that are all Bedrock runtime names, no other
// kind of permitted subtree, and every IPv4 and IPv6 address excluded.
func CheckCert(cert *x509.Certificate) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return errors.New("ca cert: not a CA certificate")
	case cert.MaxPathLen != 0 || !cert.MaxPathLenZero:
		return errors.New("ca cert: path length must be 0")
	case !cert.PermittedDNSDomainsCritical:
		return errors.New("ca cert: name constraints missing or not critical")
	case len(cert.PermittedDNSDomains) == 0:
		return errors.New("ca cert: no permitted DNS name constraints")
	}
	for _, d := range cert.PermittedDNSDomains {
		// A constraint is a runtime host, or the domain under which VPC
		// endpoint names (vpce-ID.DOMAIN) live.
		if d := strings.TrimPrefix(d, "."); !interceptable(d) && !interceptable("vpce-0."+d) {
			return fmt.Errorf("ca cert: permitted name %q is not a Bedrock runtime name", d)
		}
	}
	if !excludesAllIPs(cert.ExcludedIPRanges) {
		return errors.New("ca cert: must exclude all IP addresses (0.0.0.0/0 and ::/0)")
	}
	if len(cert.PermittedURIDomains) > 0 || len(cert.PermittedEmailAddresses) > 0 || len(cert.PermittedIPRanges) > 0 {
		return errors.New("ca cert: only DNS name constraints may be permitted")
	}
	return nil
}

func newCA(cert *x509.Certificate, key crypto.Signer, opts Options) (*CA, error) {
	permitted := make(map[string]bool, len(cert.PermittedDNSDomains))
	for _, d := range cert.PermittedDNSDomains {
		permitted[strings.ToLower(strings.TrimPrefix(d, "."))] = true
	}
	// Cached leaves are dropped at half their lifetime, so a served leaf always has hours left.
	return &CA{
		cert:      cert,
		certPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:       key,
		permitted: permitted,
		leafTTL:   opts.LeafTTL,
		now:       opts.Now,
		cache:     expirable.NewLRU[string, *tls.Certificate](opts.CacheSize, nil, opts.LeafTTL/2),
	}, nil
}

func (o Options) withDefaults() Options {
	if o.Validity <= 0 {
		o.Validity = defaultCAValidity
	}
	if o.LeafTTL <= 0 {
		o.LeafTTL = defaultLeafTTL
	}
	if o.LeafTTL > maxLeafTTL {
		o.LeafTTL = maxLeafTTL
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the CA certificate in PEM form (public; safe to hand to apps).
func (c *CA) CertPEM() []byte { return slices.Clone(c.certPEM) }

// Allowed reports whether the CA signs for host: a Bedrock runtime name inside the certificate's constraints.
func (c *CA) Allowed(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" || net.ParseIP(h) != nil || strings.ContainsAny(h, "*/: ") || !interceptable(h) {
		return false
	}
	// h itself or any parent domain of it is a permitted subtree: one map
	// lookup per label instead of one string build per constraint.
	for d := h; ; {
		if c.permitted[d] {
			return true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
	}
}

// ErrHostNotAllowed is returned by Leaf for a host the CA does not sign for.
var ErrHostNotAllowed = errors.New("ca: not a Bedrock runtime host this CA may sign for")

// Leaf returns a certificate for host, signed by the CA, from the cache when possible. Concurrent calls for one
// host share one signature. Hosts outside the constraints are refused before anything is signed.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	if !c.Allowed(host) {
		return nil, fmt.Errorf("%w: %q", ErrHostNotAllowed, host)
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if leaf, ok := c.cache.Get(h); ok && c.now().Before(leaf.Leaf.NotAfter.Add(-time.Minute)) {
		return leaf, nil
	}
	v, err, _ := c.group.Do(h, func() (any, error) {
		if leaf, ok := c.cache.Get(h); ok && c.now().Before(leaf.Leaf.NotAfter.Add(-time.Minute)) {
			return leaf, nil
		}
		leaf, err := c.sign(h)
		if err != nil {
			return nil, err
		}
		c.cache.Add(h, leaf)
		return leaf, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// GetCertificate is a tls.Config.GetCertificate for intercepted connections (SNI names the host).
func (c *CA) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Leaf(hello.ServerName)
}

func (c *CA) sign(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := c.now()
	notAfter := now.Add(c.leafTTL)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: signing %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func allIPs() []*net.IPNet {
	return []*net.IPNet{
		{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
	}
}

func excludesAllIPs(ranges []*net.IPNet) bool {
	var v4, v6 bool
	for _, r := range ranges {
		ones, bits := r.Mask.Size()
		if ones == 0 && bits == 32 {
			v4 = true
		}
		if ones == 0 && bits == 128 {
			v6 = true
		}
	}
	return v4 && v6
}

// Config (the ca section) configures the MITM certificate authority. By default a fresh
// name-constrained CA is created in memory at start and its key is never
// written; CertFile and KeyFile load an operator's CA instead (the key file
// must be 0600).
type Config struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CertOut is where serve writes the CA certificate (public) for
	// `warden ca bundle` and for apps' NODE_EXTRA_CA_CERTS.
	CertOut string `yaml:"cert_out"`
	// BundleOut is where serve writes the system roots plus the CA
	// certificate, for the Go SDK's and the CLI's AWS_CA_BUNDLE (which
	// replaces the system roots, so the certificate alone would break every
	// other AWS call).
	BundleOut string `yaml:"bundle_out"`
	// ExtraRegions adds regions to the built-in list the CA may sign for.
	ExtraRegions []string `yaml:"extra_regions"`
}

// Validate checks the ca section; errors name config keys.
func (c *Config) Validate() []error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("ca: cert_file and key_file go together"))
	}
	for i, r := range c.ExtraRegions {
		if !bedrock.ValidRegion(r) {
			errs = append(errs, fmt.Errorf("ca.extra_regions[%d]: %q is not a region name", i, r))
		}
	}
	return errs
}

// interceptable reports a Bedrock runtime, agent runtime or bedrock-mantle
// host name.
func interceptable(h string) bool {
	return bedrock.IsRuntimeHost(h) || bedrock.IsAgentRuntimeHost(h) || isMantleHost(h)
}

// isMantleHost reports a bedrock-mantle host name (bedrock-mantle.REGION.api.aws).
func isMantleHost(h string) bool {
	if strings.Contains(h, ":") {
		return false
	}
	sh, err := bedrock.ParseServiceHost(h)
	return err == nil && sh.Service == bedrock.ServiceMantle
}
