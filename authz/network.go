package authz

// ProxyProtocolConfig configures PROXY protocol v2 on a listener.
type ProxyProtocolConfig struct{}

// validateNetwork checks identity.trusted_cidrs and listen.proxy_protocol.
func validateNetwork(c *Config) []error { return nil }
