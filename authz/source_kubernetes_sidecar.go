package authz

import "context"

// KubernetesSidecarConfig configures the kubernetes-sidecar identity source.
type KubernetesSidecarConfig struct{}

func (c KubernetesSidecarConfig) validate() error { return errNotAvailable }

func newKubernetesSidecarSource(ctx context.Context, cfg KubernetesSidecarConfig, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
