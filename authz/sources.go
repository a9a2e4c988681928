package authz

import (
	"context"
	"errors"
	"fmt"

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

var errNotAvailable = errors.New("is not available in this release")

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
