package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Deps are the shared clients sources may need.
type Deps struct {
	AWS    aws.Config
	Logger *zap.Logger
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
)

var refusalReasons = [...]string{RefusedNoPod, RefusedReused, RefusedShared, RefusedHostNetwork}

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

// identityWarnings reports source orders that let an IP-based source name
// the wrong workload: with the VPC CNI a pod's address is a secondary
// address of its node's ENI, so ec2 names the node for any pod address the
// kubernetes source cannot vouch for.
func identityWarnings(c *IdentityConfig) []string {
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

func (c *IdentityConfig) validate() []error {
	var errs []error
	seen := map[string]bool{}
	for _, name := range c.Sources {
		if seen[name] {
			errs = append(errs, fmt.Errorf("identity.sources: %q listed twice", name))
			continue
		}
		seen[name] = true
		var err error
		switch name {
		case SourceStatic:
			if len(c.Static) == 0 {
				err = errors.New("needs identity.static tags")
			}
		case SourceKubernetesSidecar:
			err = c.KubernetesSidecar.validate()
		case SourceECSSidecar:
			err = c.ECSSidecar.validate()
		case SourceKubernetes:
			err = c.Kubernetes.validate()
		case SourceEC2:
			err = c.EC2.validate()
		case SourceKeys:
			err = c.Keys.validate()
		case SourceToken:
			err = c.Token.validate()
			if err == nil && c.Token.BindPodIP && !slices.Contains(c.Sources, SourceKubernetes) {
				err = errors.New("token.bind_pod_ip needs the kubernetes source (its pod index) in identity.sources")
			}
		default:
			err = fmt.Errorf("unknown source (known: %s, %s, %s, %s, %s, %s, %s)", SourceStatic, SourceKubernetesSidecar,
				SourceECSSidecar, SourceKubernetes, SourceEC2, SourceKeys, SourceToken)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.sources: %q: %w", name, err))
		}
	}
	return errs
}

// NewResolver builds the configured sources.
func NewResolver(ctx context.Context, cfg IdentityConfig, deps Deps) (*Resolver, error) {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	for _, w := range identityWarnings(&cfg) {
		deps.Logger.Warn(w)
	}
	r := &Resolver{}
	for _, name := range cfg.Sources {
		var (
			s   Source
			err error
		)
		switch name {
		case SourceStatic:
			s = NewStaticSource(cfg.Static)
		case SourceKubernetesSidecar:
			s, err = newKubernetesSidecarSource(ctx, cfg.KubernetesSidecar, deps)
		case SourceECSSidecar:
			s, err = newECSSidecarSource(ctx, cfg.ECSSidecar, deps)
		case SourceKubernetes:
			s, err = newKubernetesSource(ctx, cfg.Kubernetes, deps)
		case SourceEC2:
			s, err = newEC2Source(ctx, cfg.EC2, deps)
		case SourceKeys:
			s, err = newKeysSource(ctx, cfg.Keys, deps)
		case SourceToken:
			s, err = newTokenSource(ctx, cfg.Token, deps)
		default:
			err = errors.New("unknown source")
		}
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
