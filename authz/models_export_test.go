package authz

import "time"

// SetModelResolverClock replaces the resolver's clock (tests only).
func SetModelResolverClock(r *ModelResolver, now func() time.Time) { r.now = now }

// ValidateModelsConfig exposes ModelsConfig.validate to external tests.
func ValidateModelsConfig(c ModelsConfig) []error { return c.validate() }

// ModelsConfigDefaults exposes ModelsConfig.withDefaults to external tests.
func ModelsConfigDefaults(c ModelsConfig) ModelsConfig { return c.withDefaults() }
