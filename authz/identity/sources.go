package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/zap"
)

// Source names as written in identity.sources.
const (
	SourceStatic            = "static"
	SourceKubernetesSidecar = "kubernetes-sidecar"
	SourceECSSidecar        = "ecs-sidecar"
	SourceKubernetes        = "kubernetes"
	SourceEC2               = "ec2"
	SourceKeys              = "keys"
	SourceToken             = "token"
)

// Config lists the identity sources and configures each. Sources
// that verify a credential the caller presents (keys, token) are consulted
// first whatever their position; the others are tried in order.
type Config struct {
	Sources []string          `yaml:"sources"`
	Static  map[string]string `yaml:"static"`

	KubernetesSidecar KubernetesSidecarConfig `yaml:"kubernetes_sidecar"`
	ECSSidecar        ECSSidecarConfig        `yaml:"ecs_sidecar"`
	Kubernetes        KubernetesConfig        `yaml:"kubernetes"`
	EC2               EC2Config               `yaml:"ec2"`
	Keys              KeysConfig              `yaml:"keys"`
	Token             TokenConfig             `yaml:"token"`
	// TrustedCIDRs are the client networks IP-based sources (kubernetes, ec2)
	// answer for; connections from elsewhere get no IP-based identity.
	TrustedCIDRs []string `yaml:"trusted_cidrs"`
}

// Deps are the shared clients sources may need.
type Deps struct {
	AWS    aws.Config
	Logger *zap.Logger
	// ProcStatus reads this process's /proc/self/status, where the
	// ecs-sidecar source checks its capabilities; nil reads the real one.
	// Tests that run as root (holding NET_ADMIN) replace it.
	ProcStatus func() ([]byte, error)
}

// Presenter is implemented by sources that verify a credential the caller
// presents (a Warden-issued signature, a token). They are consulted before
// every other source, and a presented credential that fails verification
// denies the call: Warden never falls back to a weaker source.
type Presenter interface {
	Presents(c *Conn) bool
}

// Refusal reasons: why a source that knows an address refuses to name its
// holder (the label of warden_identity_refusals_total).
const (
	RefusedNoPod       = "no_pod"       // kubernetes: a pod_cidrs address no running pod holds
	RefusedReused      = "reused"       // kubernetes: released by a pod less than reuse_grace ago
	RefusedShared      = "shared"       // held by several pods, or by several network interfaces
	RefusedHostNetwork = "host_network" // kubernetes: a hostNetwork pod's (the node's) address
	RefusedEndpoint    = "endpoint"     // ec2: a VPC endpoint with no available connection to Warden's endpoint services
)

var refusalReasons = [...]string{RefusedNoPod, RefusedReused, RefusedShared, RefusedHostNetwork, RefusedEndpoint}

// RefusedError is a source's definitive "this address must not be
// believed": the source knows the address and that no single workload can
// be named for it. Unlike ErrNoIdentity it denies the call: a later source
// would name the wrong workload (with the VPC CNI, ec2 names the node).
type RefusedError struct {
	Reason string // one of the Refused* constants
	Msg    string
}

func (e *RefusedError) Error() string { return e.Msg }

// refusalCounts counts a source's refusals by reason, for metrics.
type refusalCounts [len(refusalReasons)]atomic.Uint64

func (c *refusalCounts) add(reason string) {
	if i := slices.Index(refusalReasons[:], reason); i >= 0 {
		c[i].Add(1)
	}
}

// snapshot returns the counts of the reasons a source can give, zeros
// included (so each series exists from the start).
func (c *refusalCounts) snapshot(reasons ...string) map[string]uint64 {
	out := make(map[string]uint64, len(reasons))
	for _, r := range reasons {
		if i := slices.Index(refusalReasons[:], r); i >= 0 {
			out[r] = c[i].Load()
		}
	}
	return out
}

// Warnings reports source orders that let an IP-based source name
// the wrong workload: with the VPC CNI a pod's address is a secondary
// address of its node's ENI, so ec2 names the node for any pod address the
// kubernetes source cannot vouch for.
func Warnings(c *Config) []string {
	k := slices.Index(c.Sources, SourceKubernetes)
	e := slices.Index(c.Sources, SourceEC2)
	if k < 0 || e < 0 {
		return nil
	}
	if len(c.Kubernetes.PodCIDRs) == 0 {
		if e > k {
			return []string{"identity.sources lists kubernetes before ec2 without identity.kubernetes.pod_cidrs: a pod address the pod watch does not know (a pod not yet reported, one gone more than reuse_grace ago) falls through to ec2, which with the VPC CNI names the node; list the pod networks in identity.kubernetes.pod_cidrs"}
		}
		return []string{"identity.sources lists ec2 before kubernetes without identity.kubernetes.pod_cidrs: with the VPC CNI every pod address resolves to its node through ec2; put kubernetes first and list the pod networks in identity.kubernetes.pod_cidrs"}
	}
	return nil
}

// ApplyDefaults fills what the file may leave out: identity.static alone
// means the static source.
func (c *Config) ApplyDefaults() {
	if len(c.Sources) == 0 && c.Static != nil {
		c.Sources = []string{SourceStatic}
	}
}

// sourceKind is one identity source's entry in the registry: how its
// section is checked and how the source is built. Adding a source means
// adding a row here (and its config field in Config).
type sourceKind struct {
	name string
	// reach is whom the source can answer for without a presented
	// credential: callers in Warden's own network namespace (sameHost), any
	// caller by its address (byAddress, so only within trusted_cidrs), or
	// none (a presented-credential source).
	reach    reach
	validate func(c *Config) error
	build    func(ctx context.Context, c *Config, deps Deps) (Source, error)
}

type reach int

const (
	presented reach = iota
	sameHost
	byAddress
)

// sourcesThat lists the registry's sources of one reach, in its order.
func sourcesThat(r reach) []string {
	var out []string
	for _, k := range registry {
		if k.reach == r {
			out = append(out, k.name)
		}
	}
	return out
}

// registry lists every identity source Warden knows, in documentation order.
var registry = []sourceKind{
	{SourceStatic, sameHost,
		func(c *Config) error {
			if len(c.Static) == 0 {
				return errors.New("needs identity.static tags")
			}
			return nil
		},
		func(_ context.Context, c *Config, _ Deps) (Source, error) { return NewStaticSource(c.Static), nil }},
	{SourceKubernetesSidecar, sameHost,
		func(c *Config) error { return c.KubernetesSidecar.validate() },
		func(ctx context.Context, c *Config, d Deps) (Source, error) {
			return newKubernetesSidecarSource(ctx, c.KubernetesSidecar, d)
		}},
	{SourceECSSidecar, sameHost,
		func(c *Config) error { return c.ECSSidecar.validate() },
		func(ctx context.Context, c *Config, d Deps) (Source, error) {
			return newECSSidecarSource(ctx, c.ECSSidecar, d)
		}},
	{SourceKubernetes, byAddress,
		func(c *Config) error { return c.Kubernetes.validate() },
		func(ctx context.Context, c *Config, d Deps) (Source, error) {
			return newKubernetesSource(ctx, c.Kubernetes, d)
		}},
	{SourceEC2, byAddress,
		func(c *Config) error { return c.EC2.validate() },
		func(ctx context.Context, c *Config, d Deps) (Source, error) { return newEC2Source(ctx, c.EC2, d) }},
	{SourceKeys, presented,
		func(c *Config) error { return c.Keys.validate() },
		func(ctx context.Context, c *Config, d Deps) (Source, error) { return newKeysSource(ctx, c.Keys, d) }},
	{SourceToken, presented,
		func(c *Config) error {
			if err := c.Token.validate(); err != nil {
				return err
			}
			if c.Token.BindPodIP && !slices.Contains(c.Sources, SourceKubernetes) {
				return errors.New("token.bind_pod_ip needs the kubernetes source (its pod index) in identity.sources")
			}
			return nil
		},
		func(ctx context.Context, c *Config, d Deps) (Source, error) { return newTokenSource(ctx, c.Token, d) }},
}

func kindOf(name string) (sourceKind, bool) {
	i := slices.IndexFunc(registry, func(k sourceKind) bool { return k.name == name })
	if i < 0 {
		return sourceKind{}, false
	}
	return registry[i], true
}

// SourceNames lists the identity sources Warden knows.
func SourceNames() []string {
	out := make([]string, len(registry))
	for i, k := range registry {
		out[i] = k.name
	}
	return out
}

// Validate checks the identity section: each listed source's settings and
// the trusted networks, whose compiled form it hands to the IP-based
// sources (so it must run before NewResolver). Errors name config keys.
func (c *Config) Validate() []error {
	var errs []error
	seen := map[string]bool{}
	for _, name := range c.Sources {
		if seen[name] {
			errs = append(errs, fmt.Errorf("identity.sources: %q listed twice", name))
			continue
		}
		seen[name] = true
		kind, ok := kindOf(name)
		var err error
		if !ok {
			err = fmt.Errorf("unknown source (known: %s)", strings.Join(SourceNames(), ", "))
		} else {
			err = kind.validate(c)
		}
		if err != nil {
			errs = append(errs, sourceErrors(name, err)...)
		}
	}
	return append(errs, c.validateNetwork()...)
}

// sourceErrors names each of a source's problems by its config key: one
// about the source's own section (kubernetes.sync_timeout …) as
// identity.kubernetes.sync_timeout, so the loader points at that key; any
// other under identity.sources and the source's name.
func sourceErrors(name string, err error) []error {
	all := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	}
	section := strings.ReplaceAll(name, "-", "_")
	out := make([]error, 0, len(all))
	for _, e := range all {
		msg := e.Error()
		if strings.HasPrefix(msg, section+".") || strings.HasPrefix(msg, section+":") || strings.HasPrefix(msg, section+"[") {
			out = append(out, fmt.Errorf("identity.%w", e))
			continue
		}
		out = append(out, fmt.Errorf("identity.sources: %q: %w", name, e))
	}
	return out
}

// NewResolver builds the configured sources (cfg validated by Validate).
func NewResolver(ctx context.Context, cfg Config, deps Deps) (*Resolver, error) {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	for _, w := range Warnings(&cfg) {
		deps.Logger.Warn(w)
	}
	r := &Resolver{}
	for _, name := range cfg.Sources {
		kind, ok := kindOf(name)
		if !ok {
			return nil, fmt.Errorf("identity source %s: unknown source", name)
		}
		s, err := kind.build(ctx, &cfg, deps)
		if err != nil {
			return nil, fmt.Errorf("identity source %s: %w", name, err)
		}
		if p, ok := s.(Presenter); ok {
			r.presented = append(r.presented, presentedSource{s, p})
		} else {
			r.sources = append(r.sources, s)
		}
	}
	if err := bindTokenPods(r, cfg.Token); err != nil {
		return nil, err
	}
	return r, nil
}

// Sources returns the configured sources, presented-credential sources
// first, in the order they are consulted (for metrics: a source may expose
// CacheStats, RefreshFailures or Stale).
func (r *Resolver) Sources() []Source {
	out := make([]Source, 0, len(r.presented)+len(r.sources))
	for _, p := range r.presented {
		out = append(out, p.Source)
	}
	return append(out, r.sources...)
}
