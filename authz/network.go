package authz

import (
	"errors"
	"fmt"
	"time"

	"github.com/warden-egress/warden/authz/identity"
)

// DefaultProxyHeaderTimeout bounds how long a trusted load balancer may take
// to send its PROXY protocol header.
const DefaultProxyHeaderTimeout = 5 * time.Second

// ProxyProtocolConfig configures PROXY protocol v2 on the endpoint listener.
//
//	listen:
//	  proxy_protocol:
//	    trusted: [10.0.0.0/24]   # the load balancers' addresses (e.g. an NLB's subnets)
//	    header_timeout: 5s       # default 5s
//
// A connection whose TCP peer is in trusted MUST start with a v2 header
// (health checks send the LOCAL command); the header's source address then
// becomes the client address every identity source and the audit record see.
// Connections from any other peer are never parsed for a header: a workload
// cannot claim another client address by sending one.
type ProxyProtocolConfig struct {
	Trusted       []string      `yaml:"trusted"`
	HeaderTimeout time.Duration `yaml:"header_timeout"`
}

// Enabled reports whether any load balancer is trusted.
func (c ProxyProtocolConfig) Enabled() bool { return len(c.Trusted) > 0 }

// TrustedNets compiles the trusted load balancer networks.
func (c ProxyProtocolConfig) TrustedNets() (identity.TrustedNets, error) {
	return identity.ParseTrustedNets(c.Trusted)
}

// Timeout is the header timeout with its default applied.
func (c ProxyProtocolConfig) Timeout() time.Duration {
	if c.HeaderTimeout <= 0 {
		return DefaultProxyHeaderTimeout
	}
	return c.HeaderTimeout
}

// validateNetwork checks listen.proxy_protocol against the identity
// section (identity.trusted_cidrs itself is checked by identity.Config).
func validateNetwork(c *Config) []error {
	var errs []error
	trusted, _ := identity.ParseTrustedNets(c.Identity.TrustedCIDRs)
	pp := c.Listen.ProxyProtocol
	lbs, err := pp.TrustedNets()
	if err != nil {
		errs = append(errs, fmt.Errorf("listen.proxy_protocol.trusted: %w", err))
	}
	// A workload inside a load balancer's range could send its own PROXY
	// header and claim any client address: the ranges must not overlap.
	for _, lb := range lbs.Prefixes() {
		for _, cl := range trusted.Prefixes() {
			if lb.Overlaps(cl) {
				errs = append(errs, fmt.Errorf("listen.proxy_protocol.trusted %s overlaps identity.trusted_cidrs %s: a workload there could send its own PROXY header and claim another client's address; list only the load balancers' own addresses", lb, cl))
			}
		}
	}
	// A loopback "load balancer" is any process in Warden's network
	// namespace: with a source that answers loopback callers (the sidecars'
	// and static identities), a workload container could send a header and
	// claim any client address, and its LOCAL health checks would be
	// loopback calls.
	for _, lb := range lbs.Prefixes() {
		if !identity.OverlapsLoopback(lb) {
			continue
		}
		for _, name := range c.Identity.AnswersSameHost() {
			errs = append(errs, fmt.Errorf("listen.proxy_protocol.trusted %s includes loopback addresses, but the %q source gives loopback callers its identity: every process in Warden's network namespace could then send a PROXY header and claim any client address; list only the load balancers' own (non-loopback) addresses", lb, name))
		}
	}
	if pp.HeaderTimeout < 0 {
		errs = append(errs, errors.New("listen.proxy_protocol.header_timeout: must not be negative"))
	}
	if pp.HeaderTimeout != 0 && !pp.Enabled() {
		errs = append(errs, errors.New("listen.proxy_protocol: header_timeout without trusted load balancers; list them in listen.proxy_protocol.trusted"))
	}
	return errs
}
