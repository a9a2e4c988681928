package inject

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/warden-egress/warden/bundle"
)

// Config is the injector's configuration (the file `warden inject --config`
// reads), owned by the platform team in the injector's namespace.
type Config struct {
	// Image is Warden's image, pinned by digest in production.
	Image           string `yaml:"image"`
	ImagePullPolicy string `yaml:"image_pull_policy"`
	// Namespace is the injector's own namespace: never injected.
	Namespace string `yaml:"namespace"`
	// Audience of Warden's projected service-account token (the IAM OIDC
	// provider's client id); TokenExpirationSeconds its lifetime (>= 600).
	Audience               string `yaml:"audience"`
	TokenExpirationSeconds int64  `yaml:"token_expiration_seconds"`
	// RoleARN is the role Warden assumes with that token
	// (AWS_ROLE_ARN); Region its AWS_REGION.
	RoleARN string `yaml:"role_arn"`
	Region  string `yaml:"region"`
	// Resources of Warden's container.
	Resources ResourcesConfig `yaml:"resources"`
	// SpoolSizeLimit bounds the warden-spool emptyDir (default 2Gi).
	SpoolSizeLimit string `yaml:"spool_size_limit"`
	// Admission completes the admission policies' parameters that
	// `warden inject --print-policies` generates from this configuration.
	Admission AdmissionConfig `yaml:"admission"`
	// Policy is the Warden configuration every sidecar runs (upstream,
	// apps, guards, audit sinks…). listen, identity and ca are the
	// injector's: it writes them per mode, so they must not appear here.
	Policy map[string]any `yaml:"policy"`
	// Bundle makes every sidecar take its policy from signed bundles. The
	// trust roots (service URL, CA, keys, fleet) reach sidecars only this
	// way: written into the sidecar's configuration, and their digest on
	// its command line (`serve --bundle-pin`), which the admission policy
	// pins; nothing an app team can edit.
	Bundle *BundleConfig `yaml:"bundle"`
}

// BundleConfig is the bundle section every sidecar gets (the Warden
// config's bundle section; see docs/bundles.md). The sidecar's namespace
// is its POD_NAMESPACE and its cache lives in warden-spool.
type BundleConfig struct {
	URL string `yaml:"url"`
	// CA is the PEM roots the bundle service's certificate chains to.
	CA          string            `yaml:"ca"`
	TrustedKeys []BundleKeyConfig `yaml:"trusted_keys"`
	Fleet       string            `yaml:"fleet"`
	Wait        string            `yaml:"wait"`
	Retry       string            `yaml:"retry"`
	S3          *BundleS3Config   `yaml:"s3"`
}

// BundleKeyConfig is one trusted bundle-signing public key.
type BundleKeyConfig struct {
	ID        string `yaml:"id"`
	PublicKey string `yaml:"public_key"`
}

// BundleS3Config reaches an s3:// bundle URL.
type BundleS3Config struct {
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
}

// BundleCacheDir is where a sidecar keeps its last good bundle.
const BundleCacheDir = SpoolDir + "/bundle"

// policyKeys are the Warden config keys a bundle supplies instead.
var policyKeys = []string{"apps", "deny", "guards", "mode"}

func (b *BundleConfig) validate(policy map[string]any) []error {
	var errs []error
	add := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("injector config: bundle."+format, a...))
	}
	if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "https" && u.Scheme != "s3") || u.Host == "" {
		add("url %q: want the bundle service's https:// URL or s3://BUCKET/PREFIX", b.URL)
	}
	if b.CA != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(b.CA)) {
			add("ca: no PEM certificate")
		}
		if strings.HasPrefix(b.URL, "s3://") {
			add("ca: only for an https:// url")
		}
	}
	if len(b.TrustedKeys) == 0 {
		add("trusted_keys: at least one key is required")
	}
	seen := map[string]bool{}
	for i, k := range b.TrustedKeys {
		if err := bundle.ValidKeyID(k.ID); err != nil {
			add("trusted_keys[%d].id: %v", i, err)
		}
		if seen[k.ID] {
			add("trusted_keys[%d].id: %q listed twice", i, k.ID)
		}
		seen[k.ID] = true
		if _, err := bundle.ParsePublicKey(k.PublicKey); err != nil {
			add("trusted_keys[%d].public_key: %v", i, err)
		}
	}
	for _, d := range []struct{ key, v string }{{"wait", b.Wait}, {"retry", b.Retry}} {
		if _, err := time.ParseDuration(d.v); d.v != "" && err != nil {
			add("%s %q: %v", d.key, d.v, err)
		}
	}
	if b.S3 != nil {
		if !strings.HasPrefix(b.URL, "s3://") {
			add("s3: only for an s3:// url")
		}
		if err := bundle.CheckS3Endpoint(b.S3.Endpoint); err != nil {
			add("s3.endpoint: %v", err)
		}
	}
	for _, k := range policyKeys {
		if _, ok := policy[k]; ok {
			errs = append(errs, fmt.Errorf("injector config: policy.%s: with bundle set the policy comes from signed bundles; remove it", k))
		}
	}
	return errs
}

// TrustRoots are the sidecar's bundle trust roots, whose Pin its command
// line carries.
func (b *BundleConfig) TrustRoots() bundle.TrustRoots {
	r := bundle.TrustRoots{URL: b.URL, CAPEM: b.CA, Keys: map[string]string{}, Fleet: b.Fleet}
	for _, k := range b.TrustedKeys {
		r.Keys[k.ID] = k.PublicKey
	}
	if b.S3 != nil {
		r.S3Endpoint = b.S3.Endpoint
	}
	return r
}

// section is the sidecar config's bundle section.
func (b *BundleConfig) section() map[string]any {
	keys := make([]any, 0, len(b.TrustedKeys))
	for _, k := range b.TrustedKeys {
		keys = append(keys, map[string]any{"id": k.ID, "public_key": k.PublicKey})
	}
	m := map[string]any{"url": b.URL, "trusted_keys": keys, "cache_dir": BundleCacheDir}
	if b.CA != "" {
		m["ca_pem"] = b.CA
	}
	if b.Fleet != "" {
		m["fleet"] = b.Fleet
	}
	if b.Wait != "" {
		m["wait"] = b.Wait
	}
	if b.Retry != "" {
		m["retry"] = b.Retry
	}
	if b.S3 != nil {
		m["s3"] = map[string]any{"region": b.S3.Region, "endpoint": b.S3.Endpoint, "path_style": b.S3.PathStyle}
	}
	return m
}

// AdmissionConfig is what the admission policies need beyond the sidecar
// the injector writes (which they pin from the injector's own values).
type AdmissionConfig struct {
	// PreviousImages are earlier Warden images (N-1, pinned by digest) the
	// policies still admit while pods roll to Image.
	PreviousImages []string `yaml:"previous_images"`
	// BreakGlassGroups may exec/attach into the sidecar and add ephemeral
	// containers in enrolled namespaces.
	BreakGlassGroups []string `yaml:"break_glass_groups"`
	// PlatformGroups may set or change the enrolment labels.
	PlatformGroups []string `yaml:"platform_groups"`
}

// DefaultBreakGlassGroups and DefaultPlatformGroups are AdmissionConfig's
// defaults (the names the hand-written parameters use).
func DefaultBreakGlassGroups() []string { return []string{"warden-egress.io:break-glass"} }

// DefaultPlatformGroups: see DefaultBreakGlassGroups.
func DefaultPlatformGroups() []string {
	return []string{"system:masters", "warden-egress.io:platform"}
}

// ResourcesConfig are Kubernetes quantities ("50m", "64Mi").
type ResourcesConfig struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

// injectorOwned are the Warden config keys the injector writes.
var injectorOwned = []string{"listen", "identity", "ca", "bundle"}

var roleARN = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)

// ParseConfig reads and validates an injector configuration.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("injector config: %w", err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.TokenExpirationSeconds == 0 {
		c.TokenExpirationSeconds = 3600
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = string(corev1.PullIfNotPresent)
	}
	if c.SpoolSizeLimit == "" {
		c.SpoolSizeLimit = "2Gi"
	}
	if c.Admission.BreakGlassGroups == nil {
		c.Admission.BreakGlassGroups = DefaultBreakGlassGroups()
	}
	if c.Admission.PlatformGroups == nil {
		c.Admission.PlatformGroups = DefaultPlatformGroups()
	}
}

func (c *Config) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("injector config: "+format, a...)) }
	if c.Image == "" {
		add("image is required")
	}
	switch corev1.PullPolicy(c.ImagePullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		add("image_pull_policy %q is not Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		add("namespace %q: %s", c.Namespace, strings.Join(msgs, "; "))
	}
	if c.TokenExpirationSeconds < 600 {
		add("token_expiration_seconds %d is below Kubernetes' 600 minimum", c.TokenExpirationSeconds)
	}
	if !roleARN.MatchString(c.RoleARN) {
		add("role_arn %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", c.RoleARN)
	}
	if c.Region == "" {
		add("region is required")
	}
	if _, err := resource.ParseQuantity(c.SpoolSizeLimit); err != nil {
		add("spool_size_limit %q: %v", c.SpoolSizeLimit, err)
	}
	if _, err := c.Resources.requirements(); err != nil {
		add("%v", err)
	}
	if c.Policy == nil {
		add("policy is required (the Warden configuration every sidecar runs)")
	}
	for _, k := range injectorOwned {
		if _, ok := c.Policy[k]; ok {
			add("policy.%s is written by the injector (per mode, and bundle from the injector's bundle section); remove it", k)
		}
	}
	if c.Bundle != nil {
		errs = append(errs, c.Bundle.validate(c.Policy)...)
	}
	if a, ok := c.Policy["audit"].(map[string]any); ok {
		if s, ok := a["spool"].(map[string]any); ok {
			if d, ok := s["dir"]; ok && d != AuditSpoolDir {
				add("policy.audit.spool.dir %v: the sidecar's spool is %s (the warden-spool volume)", d, AuditSpoolDir)
			}
		}
	}
	return errors.Join(errs...)
}

func (r ResourcesConfig) requirements() (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	conv := func(what string, in map[string]string) (corev1.ResourceList, error) {
		if len(in) == 0 {
			return nil, nil
		}
		l := corev1.ResourceList{}
		for k, v := range in {
			if k != string(corev1.ResourceCPU) && k != string(corev1.ResourceMemory) && k != string(corev1.ResourceEphemeralStorage) {
				return nil, fmt.Errorf("resources.%s: unknown resource %q (cpu, memory, ephemeral-storage)", what, k)
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("resources.%s.%s: %q: %w", what, k, v, err)
			}
			l[corev1.ResourceName(k)] = q
		}
		return l, nil
	}
	var err error
	if out.Requests, err = conv("requests", r.Requests); err != nil {
		return out, err
	}
	if out.Limits, err = conv("limits", r.Limits); err != nil {
		return out, err
	}
	return out, nil
}

// SidecarConfig renders the Warden configuration a sidecar in mode runs:
// the policy plus the injector-owned listen, identity, ca and audit spool.
// The output is deterministic (map keys sorted), so its digest names it.
func (c *Config) SidecarConfig(mode string) ([]byte, error) {
	cfg := make(map[string]any, len(c.Policy)+3)
	for k, v := range c.Policy {
		cfg[k] = v
	}
	listen := map[string]any{
		"endpoint": fmt.Sprintf("127.0.0.1:%d", EndpointPort),
		// The kubelet's startup probe comes from outside the pod.
		"admin": fmt.Sprintf("0.0.0.0:%d", AdminPort),
	}
	switch mode {
	case ModeEndpoint:
	case ModeProxy:
		listen["proxy"] = fmt.Sprintf("127.0.0.1:%d", ProxyPort)
	case ModeTransparent:
		// REDIRECT of locally generated traffic targets loopback.
		listen["transparent"] = fmt.Sprintf("127.0.0.1:%d", TransparentPort)
	default:
		return nil, fmt.Errorf("mode %q is not %s, %s or %s", mode, ModeEndpoint, ModeProxy, ModeTransparent)
	}
	cfg["listen"] = listen
	if c.Bundle != nil {
		cfg["bundle"] = c.Bundle.section()
	}
	cfg["identity"] = map[string]any{
		"sources": []any{"kubernetes-sidecar"},
		"kubernetes_sidecar": map[string]any{
			"labels_path":      PodLabelsFile,
			"annotations_path": PodAnnotsFile,
			// POD_NAMESPACE and POD_SERVICE_ACCOUNT are literal values
			// the injector writes and the admission policy pins.
			"trust_pod_env": true,
		},
	}
	if mode != ModeEndpoint {
		cfg["ca"] = map[string]any{"cert_out": CACertFile, "bundle_out": CABundleFile}
	}
	audit := map[string]any{}
	if a, ok := c.Policy["audit"].(map[string]any); ok {
		for k, v := range a {
			audit[k] = v
		}
	}
	spool := map[string]any{}
	if s, ok := audit["spool"].(map[string]any); ok {
		for k, v := range s {
			spool[k] = v
		}
	}
	spool["dir"] = AuditSpoolDir
	audit["spool"] = spool
	cfg["audit"] = audit
	var buf bytes.Buffer
	buf.WriteString("# Written by warden inject; the platform's policy plus the injector's listen, identity, ca and spool.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("render sidecar config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest is the short digest of a rendered sidecar configuration
// (AnnotationConfig).
func Digest(sidecarConfig []byte) string {
	s := sha256.Sum256(sidecarConfig)
	return hex.EncodeToString(s[:8])
}
