package authz

import "context"

// TokenConfig configures the token identity source.
type TokenConfig struct{}

func (c TokenConfig) validate() error { return errNotAvailable }

func newTokenSource(ctx context.Context, cfg TokenConfig, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
