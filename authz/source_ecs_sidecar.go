package authz

import "context"

// ECSSidecarConfig configures the ecs-sidecar identity source.
type ECSSidecarConfig struct{}

func (c ECSSidecarConfig) validate() error { return errNotAvailable }

func newECSSidecarSource(ctx context.Context, cfg ECSSidecarConfig, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
