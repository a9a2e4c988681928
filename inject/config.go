package inject

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
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
var injectorOwned = []string{"listen", "identity", "ca"}

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
			add("policy.%s is written by the injector (per mode); remove it", k)
		}
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
