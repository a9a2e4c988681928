package config

import (
	"errors"
	"fmt"

	"github.com/warden-egress/warden/authz/identity"
)

// validateNetwork checks listen.proxy_protocol against the identity
// section (identity.trusted_cidrs itself is checked by identity.Config).
func validateNetwork(c *Config) []error {
	var errs []error
	trusted, _ := identity.ParseTrustedNets(c.Identity.TrustedCIDRs)
	pp := c.Listen.ProxyProtocol
	lbs, _ := pp.TrustedNets()
	errs = append(errs, identity.TrustedNetsErrors("listen.proxy_protocol.trusted", pp.Trusted)...)
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
