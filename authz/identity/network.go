package identity

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

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
		p, err := parseTrustedNet(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.prefixes = append(t.prefixes, p)
	}
	if len(errs) > 0 {
		return TrustedNets{}, errors.Join(errs...)
	}
	return t, nil
}

// TrustedNetsErrors checks a list as ParseTrustedNets parses it, one error
// per bad item, each naming its config key with the item's index
// (key[1]: "bogus" is not …) so the loader can point at the item.
func TrustedNetsErrors(key string, cidrs []string) []error {
	var errs []error
	for i, s := range cidrs {
		if _, err := parseTrustedNet(s); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
		}
	}
	return errs
}

// parseTrustedNet parses one item of a trust list.
func parseTrustedNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%q is not a CIDR: %v", s, err)
		}
		if p.Addr().Zone() != "" {
			return p, fmt.Errorf("%q: zones are not allowed", s)
		}
		if m := p.Masked(); m != p {
			return p, fmt.Errorf("%q has host bits set (did you mean %s?)", s, m)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%q is not a CIDR or an IP address", s)
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
		return p, fmt.Errorf("%q trusts every address; list the networks you mean", s)
	}
	return p, nil
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

// Prefixes returns the networks.
func (t TrustedNets) Prefixes() []netip.Prefix { return slices.Clone(t.prefixes) }

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
func ipBasedSources() []string { return sourcesThat(byAddress) }

// sameHostSources answer for callers in Warden's own network namespace
// (Conn.SameHost): loopback or redirected connections.
func sameHostSources() []string { return sourcesThat(sameHost) }

// AnswersSameHost lists the configured sources that give callers in Warden's
// own network namespace (loopback) an identity.
func (c *Config) AnswersSameHost() []string {
	var out []string
	for _, name := range sameHostSources() {
		if slices.Contains(c.Sources, name) {
			out = append(out, name)
		}
	}
	return out
}

var loopbackNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// OverlapsLoopback reports whether p shares an address with 127.0.0.0/8 or ::1.
func OverlapsLoopback(p netip.Prefix) bool {
	for _, l := range loopbackNets {
		if p.Overlaps(l) {
			return true
		}
	}
	return false
}

// trusts reports whether IP-based sources may answer for addr. It parses
// the list on every call: sources use the compiled TrustedNets instead.
func (c *Config) trusts(addr netip.Addr) bool {
	t, err := ParseTrustedNets(c.TrustedCIDRs)
	return err == nil && t.Contains(addr)
}

// validateNetwork checks identity.trusted_cidrs and hands the compiled
// trusted networks to the IP-based sources' configs (the loader and
// proxy.New validate before building sources; a source built from an
// unvalidated config trusts nothing).
func (c *Config) validateNetwork() []error {
	var errs []error
	trusted, _ := ParseTrustedNets(c.TrustedCIDRs)
	errs = append(errs, TrustedNetsErrors("identity.trusted_cidrs", c.TrustedCIDRs)...)
	for _, name := range ipBasedSources() {
		if slices.Contains(c.Sources, name) && len(c.TrustedCIDRs) == 0 {
			errs = append(errs, fmt.Errorf("identity.trusted_cidrs: required by the %q source, which identifies callers by source IP: list the networks your workloads connect from (after PROXY protocol, if any)", name))
		}
	}
	c.EC2.trusted = trusted
	c.Kubernetes.trusted = trusted
	// The ec2 source leaves pod addresses to the kubernetes source (their
	// ENI is the node's); pod_cidrs itself is checked with that source.
	c.EC2.podNets = TrustedNets{}
	if slices.Contains(c.Sources, SourceKubernetes) {
		c.EC2.podNets, _ = ParseTrustedNets(c.Kubernetes.PodCIDRs)
	}
	return errs
}

// IsLoopbackHostPort reports whether addr's host is a loopback IP or "localhost".
func IsLoopbackHostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
