package models

import "time"

// SetModelResolverClock replaces the resolver's clock (tests only).
func SetModelResolverClock(r *Resolver, now func() time.Time) { r.now = now }

// ValidateModelsConfig exposes Config.validate to external tests.
func ValidateModelsConfig(c Config) []error { return c.Validate() }

// ModelsConfigDefaults exposes Config.withDefaults to external tests.
func ModelsConfigDefaults(c Config) Config { return c.withDefaults() }
