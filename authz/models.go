package authz

// ModelsConfig configures resolution of indirect model ids through the
// Bedrock control plane.
type ModelsConfig struct{}

func (c ModelsConfig) validate() []error { return nil }
