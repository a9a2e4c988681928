package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bundle"
)

// BundleConfig makes Warden take its policy from signed policy bundles
// (package bundle) fetched from a bundle service, instead of from this
// file's apps. The section itself is a restart key.
type BundleConfig struct {
	// URL is the bundle service's base URL (https only), or the S3 prefix
	// the bundles are published under (s3://BUCKET/PREFIX), read directly
	// with Warden's AWS credentials and polled every Retry.
	URL string `yaml:"url"`
	// S3 reaches an s3:// URL's bucket.
	S3 *BundleS3Config `yaml:"s3"`
	// CAFile holds the PEM roots the service's certificate must chain to
	// ("": the system roots).
	CAFile string `yaml:"ca_file"`
	// CAPEM is the same roots inline (an injected sidecar's: its
	// configuration is all it gets from the injector).
	CAPEM string `yaml:"ca_pem"`
	// TrustedKeys are the Ed25519 public keys bundles may be signed with,
	// by key id (several during a rotation).
	TrustedKeys []BundleKey `yaml:"trusted_keys"`
	// Fleet and Namespace are this Warden's place, matched against each
	// bundle's scope. An empty namespace is read from $POD_NAMESPACE.
	Fleet     string `yaml:"fleet"`
	Namespace string `yaml:"namespace"`
	// CacheDir keeps the last good bundle across restarts.
	CacheDir string `yaml:"cache_dir"`
	// Wait is the long-poll wait; 0 polls every Retry instead.
	Wait time.Duration `yaml:"wait"`
	// Retry is the pause after a failed fetch (and between short polls).
	Retry time.Duration `yaml:"retry"`
}

// CertPool is CAPEM's certificates (nil when it holds none).
func (b *BundleConfig) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(b.CAPEM)) {
		return nil
	}
	return pool
}

// TrustRoots are the section's keys that decide which bundles are
// accepted (see bundle.TrustRoots.Pin).
func (b *BundleConfig) TrustRoots() bundle.TrustRoots {
	r := bundle.TrustRoots{URL: b.URL, CAFile: b.CAFile, CAPEM: b.CAPEM, Keys: map[string]string{}, Fleet: b.Fleet, Namespace: b.Namespace}
	for _, k := range b.TrustedKeys {
		r.Keys[k.ID] = k.PublicKey
	}
	if b.S3 != nil {
		r.S3Endpoint = b.S3.Endpoint
	}
	return r
}

// BundleS3Config is how Warden reaches an s3:// bundle URL.
type BundleS3Config struct {
	Region string `yaml:"region"`
	// Endpoint is a VPC endpoint or S3-compatible store: https (http only
	// to a loopback address).
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
}

// BundleKey is one trusted public key.
type BundleKey struct {
	ID        string `yaml:"id"`
	PublicKey string `yaml:"public_key"` // base64 Ed25519
}

// Bundle defaults.
const (
	DefaultBundleCacheDir = "/var/lib/warden/bundle"
	DefaultBundleWait     = 30 * time.Second
	DefaultBundleRetry    = 5 * time.Second
)

// WithDefaults returns b with its defaults filled.
func (b BundleConfig) WithDefaults() BundleConfig {
	if b.CacheDir == "" {
		b.CacheDir = DefaultBundleCacheDir
	}
	if b.Wait == 0 {
		b.Wait = DefaultBundleWait
	}
	if b.Retry == 0 {
		b.Retry = DefaultBundleRetry
	}
	return b
}

func (b *BundleConfig) validate(c *Config) []error {
	if b == nil {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "https" && u.Scheme != "s3") || u.Host == "" {
		add("bundle.url: %q: want the bundle service's https:// URL or an s3://BUCKET/PREFIX", b.URL)
	} else if u.Scheme == "s3" {
		if b.CAFile != "" {
			add("bundle.ca_file: only for an https:// bundle.url (S3 is reached with the system roots)")
		}
	}
	if b.CAFile != "" && b.CAPEM != "" {
		add("bundle.ca_pem: give ca_file or ca_pem, not both")
	}
	if b.CAPEM != "" {
		if b.CertPool() == nil {
			add("bundle.ca_pem: no PEM certificate")
		}
		if strings.HasPrefix(b.URL, "s3://") {
			add("bundle.ca_pem: only for an https:// bundle.url (S3 is reached with the system roots)")
		}
	}
	if b.S3 != nil {
		if !strings.HasPrefix(b.URL, "s3://") {
			add("bundle.s3: only for an s3:// bundle.url")
		}
		if err := bundle.CheckS3Endpoint(b.S3.Endpoint); err != nil {
			add("bundle.s3.endpoint: %v", err)
		}
	}
	if len(b.TrustedKeys) == 0 {
		add("bundle.trusted_keys: at least one key is required")
	}
	seen := map[string]bool{}
	for i, k := range b.TrustedKeys {
		if err := bundle.ValidKeyID(k.ID); err != nil {
			add("bundle.trusted_keys[%d].id: %v", i, err)
		}
		if seen[k.ID] {
			add("bundle.trusted_keys[%d].id: %q listed twice", i, k.ID)
		}
		seen[k.ID] = true
		if err := checkEd25519Pub(k.PublicKey); err != nil {
			add("bundle.trusted_keys[%d].public_key: %v", i, err)
		}
	}
	if b.Wait < 0 || b.Wait > 5*time.Minute {
		add("bundle.wait: %s: want 0 (short polling) to 5m", b.Wait)
	}
	if b.Retry < 0 {
		add("bundle.retry: must not be negative")
	}
	return errs
}

// fileValidate is what a file with a bundle section may not hold: its
// policy comes from the bundle (a merged config, the file's other keys and
// a bundle's policy, has both and is valid).
func (b *BundleConfig) fileValidate(c *Config) error {
	if b != nil && (len(c.Apps) > 0 || len(c.Deny) > 0 || len(c.Guards) > 0 || c.Mode != "") {
		return errors.New("bundle: the policy (apps, deny, guards, mode) comes from the signed bundle; remove it from this file")
	}
	return nil
}

// WithPolicy returns a copy of base whose policy sections (apps, deny,
// mode, guards) are those of data, a policy file; any other key in data is
// an error. The result is validated as a whole, as a reload would.
func WithPolicy(base *Config, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("policy: want a YAML mapping of apps, deny, mode, guards")
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i].Value
		if k != "version" && !isReloadable(k) {
			return nil, &ConfigError{Problems: []ConfigProblem{{Line: m.Content[i].Line, Column: m.Content[i].Column,
				Msg: fmt.Sprintf("%s: a policy bundle holds only apps, deny, mode, guards (and version)", k)}}}
		}
	}
	var p Config
	if err := DecodeStrict(data, &p); err != nil {
		return nil, err
	}
	policy.RecordLines(&root, p.Apps, p.Deny)
	cfg := *base
	cfg.Bundle = nil // validated as a full policy, not as a bundle-fed file
	cfg.Apps, cfg.Deny, cfg.Mode, cfg.Guards = p.Apps, p.Deny, p.Mode, p.Guards
	if err := cfg.Validate(); err != nil {
		return nil, &ConfigError{Problems: positionProblems(&root, err)}
	}
	cfg.Bundle = base.Bundle
	return &cfg, nil
}

func checkEd25519Pub(s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return fmt.Errorf("%d bytes, want %d (an Ed25519 public key, as `warden keys bundle-key` prints it)", len(b), ed25519.PublicKeySize)
	}
	return nil
}
