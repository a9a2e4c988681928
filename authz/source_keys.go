package authz

import "context"

// KeysConfig configures the keys identity source.
type KeysConfig struct{}

func (c KeysConfig) validate() error { return errNotAvailable }

func newKeysSource(ctx context.Context, cfg KeysConfig, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
