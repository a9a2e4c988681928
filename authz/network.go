package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
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
func (c ProxyProtocolConfig) TrustedNets() (TrustedNets, error) {
	return ParseTrustedNets(c.Trusted)
}

// Timeout is the header timeout with its default applied.
func (c ProxyProtocolConfig) Timeout() time.Duration {
	if c.HeaderTimeout <= 0 {
		return DefaultProxyHeaderTimeout
	}
	return c.HeaderTimeout
}

// TrustedNets is a compiled list of networks. The zero value trusts nothing.
type TrustedNets struct {
	prefixes []netip.Prefix
}

// ParseTrustedNets parses CIDRs ("10.0.0.0/16", "fd00::/8"); a bare address
// means that host alone. A prefix with host bits set ("10.0.0.1/16") is an
// error rather than silently widened, and so is a prefix of length 0: naming
// every address is never what a trust list means.
func ParseTrustedNets(cidrs []string) (TrustedNets, error) {
	var t TrustedNets
	var errs []error
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				errs = append(errs, fmt.Errorf("%q is not a CIDR: %v", s, err))
				continue
			}
			if p.Addr().Zone() != "" {
				errs = append(errs, fmt.Errorf("%q: zones are not allowed", s))
				continue
			}
			if m := p.Masked(); m != p {
				errs = append(errs, fmt.Errorf("%q has host bits set (did you mean %s?)", s, m))
				continue
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("%q is not a CIDR or an IP address", s))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// 10.0.0.0/8 and ::ffff:10.0.0.0/104 are the same network; keep
		// IPv4 prefixes in IPv4 form so Contains can unmap once.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		// After unmapping: ::ffff:0.0.0.0/96 is 0.0.0.0/0.
		if p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("%q trusts every address; list the networks you mean", s))
			continue
		}
		t.prefixes = append(t.prefixes, p)
	}
	if len(errs) > 0 {
		return TrustedNets{}, errors.Join(errs...)
	}
	return t, nil
}

// Contains reports whether a is in one of the networks. IPv4-mapped IPv6
// addresses are treated as the IPv4 address they carry.
func (t TrustedNets) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether the list trusts nothing.
func (t TrustedNets) Empty() bool { return len(t.prefixes) == 0 }

// String lists the networks.
func (t TrustedNets) String() string {
	s := make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ipBasedSources are the sources that identify a caller by its address, so
// they only answer for identity.trusted_cidrs.
var ipBasedSources = []string{SourceKubernetes, SourceEC2}

// sameHostSources answer for callers in Warden's own network namespace
// (Conn.SameHost): loopback or redirected connections.
var sameHostSources = []string{SourceStatic, SourceKubernetesSidecar, SourceECSSidecar}

var loopbackNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func overlapsLoopback(p netip.Prefix) bool {
	for _, l := range loopbackNets {
		if p.Overlaps(l) {
			return true
		}
	}
	return false
}

// trusts reports whether IP-based sources may answer for addr. It parses
// the list on every call: sources use the compiled TrustedNets instead.
func (c *IdentityConfig) trusts(addr netip.Addr) bool {
	t, err := ParseTrustedNets(c.TrustedCIDRs)
	return err == nil && t.Contains(addr)
}

// validateNetwork checks identity.trusted_cidrs and listen.proxy_protocol,
// and hands the compiled trusted networks to the IP-based sources' configs
// (ParseConfig and proxy.New validate before building sources; a source
// built from an unvalidated config trusts nothing).
func validateNetwork(c *Config) []error {
	var errs []error
	trusted, err := ParseTrustedNets(c.Identity.TrustedCIDRs)
	if err != nil {
		errs = append(errs, fmt.Errorf("identity.trusted_cidrs: %w", err))
	}
	for _, name := range ipBasedSources {
		if slices.Contains(c.Identity.Sources, name) && len(c.Identity.TrustedCIDRs) == 0 {
			errs = append(errs, fmt.Errorf("identity.trusted_cidrs: required by the %q source, which identifies callers by source IP: list the networks your workloads connect from (after PROXY protocol, if any)", name))
		}
	}
	c.Identity.EC2.trusted = trusted
	c.Identity.Kubernetes.trusted = trusted
	// The ec2 source leaves pod addresses to the kubernetes source (their
	// ENI is the node's); pod_cidrs itself is checked with that source.
	c.Identity.EC2.podNets = TrustedNets{}
	if slices.Contains(c.Identity.Sources, SourceKubernetes) {
		c.Identity.EC2.podNets, _ = ParseTrustedNets(c.Identity.Kubernetes.PodCIDRs)
	}

	pp := c.Listen.ProxyProtocol
	lbs, err := pp.TrustedNets()
	if err != nil {
		errs = append(errs, fmt.Errorf("listen.proxy_protocol.trusted: %w", err))
	}
	// A workload inside a load balancer's range could send its own PROXY
	// header and claim any client address: the ranges must not overlap.
	for _, lb := range lbs.prefixes {
		for _, cl := range trusted.prefixes {
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
	for _, lb := range lbs.prefixes {
		if !overlapsLoopback(lb) {
			continue
		}
		for _, name := range sameHostSources {
			if slices.Contains(c.Identity.Sources, name) {
				errs = append(errs, fmt.Errorf("listen.proxy_protocol.trusted %s includes loopback addresses, but the %q source gives loopback callers its identity: every process in Warden's network namespace could then send a PROXY header and claim any client address; list only the load balancers' own (non-loopback) addresses", lb, name))
			}
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
