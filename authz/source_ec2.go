package authz

import "context"

// EC2Config configures the ec2 identity source.
type EC2Config struct{}

func (c EC2Config) validate() error { return errNotAvailable }

func newEC2Source(ctx context.Context, cfg EC2Config, deps Deps) (Source, error) {
	return nil, errNotAvailable
}
