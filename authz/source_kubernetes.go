package authz

import "context"

// KubernetesConfig configures the kubernetes identity source.
type KubernetesConfig struct{}

func (c KubernetesConfig) validate() error { return errNotAvailable }

func newKubernetesSource(ctx context.Context, cfg KubernetesConfig, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
