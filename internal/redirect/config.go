// Package redirect builds, installs and reads back the nftables rule set of
// Warden's transparent mode: outbound TCP 443 from a pod is redirected to
// Warden's transparent listener, except Warden's own connections (by socket
// owner uid/gid), loopback and excluded destinations.
//
// It talks to the kernel over netlink (github.com/google/nftables), so the
// init step needs no iptables or nft binary: `warden iptables --apply` runs
// from the same static distroless image as `warden serve`.
//
// The rule set lives in its own table, inet warden, and is replaced
// atomically (one netlink batch: add table, delete table, add table, chain
// and rules), so applying it twice leaves one table, and nothing outside that
// table is touched. One inet table covers IPv4 and IPv6 together: an IPv6
// connection to port 443 is redirected exactly like an IPv4 one, to the same
// port on ::1, so IPv6 cannot go around Warden (see Config.IPv6).
package redirect

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Config is the validated input of the rule set.
type Config struct {
	// Port is Warden's transparent listener port (1-65535).
	Port int
	// UID is Warden's: connections from sockets it owns are not
	// redirected, so Warden's own upstream connections are not looped back.
	UID uint32
	// GID, when HasGID, also exempts sockets of that group. Off by default:
	// a group is not Warden's alone (an app image's passwd file may put its
	// user in Warden's group, which admission cannot see), so exempting it
	// would let that app go around Warden.
	GID    uint32
	HasGID bool
	// CIDRs are the redirected destinations (TCP 443 only). NewConfig
	// fills in each address family the flags leave out with everything
	// (0.0.0.0/0; ::/0 with IPv6), so listing IPv4 CIDRs alone does not
	// leave IPv6 open.
	CIDRs []netip.Prefix
	// Excludes are destinations never redirected.
	Excludes []netip.Prefix
	// IPv6 redirects IPv6 as well as IPv4 (the default of `warden
	// iptables`). The redirect sends a connection to the loopback address
	// of its own family, so IPv6 lands on [::1]:Port: served when Warden's
	// transparent listener is there, refused by the kernel otherwise.
	// Either way IPv6 does not bypass Warden. Turning IPv6 off leaves IPv6
	// egress untouched; do that only where the pod has no IPv6 route.
	IPv6 bool
}

// Errors a caller can tell apart with errors.Is.
var (
	ErrPort = errors.New("port out of range")
	ErrID   = errors.New("uid or gid out of range")
	ErrCIDR = errors.New("invalid CIDR")
)

// MaxID is the largest uid/gid an owner match takes: 4294967295 is
// (uid_t)-1, "no user".
const MaxID = 1<<32 - 2

// NewConfig validates the flag values of `warden iptables`; errors name the
// flag and wrap ErrPort, ErrID or ErrCIDR. A gid of -1 exempts no group. Each entry of cidrs and excludes
// may hold several comma-separated CIDRs.
func NewConfig(port int, uid, gid int64, ipv6 bool, cidrs, excludes []string) (Config, error) {
	cfg := Config{Port: port, IPv6: ipv6}
	if port < 1 || port > 65535 {
		return cfg, fmt.Errorf("--port %d: %w: want 1-65535", port, ErrPort)
	}
	if uid < 0 || uid > MaxID {
		return cfg, fmt.Errorf("--uid %d: %w: want 0-%d", uid, ErrID, int64(MaxID))
	}
	if gid < -1 || gid > MaxID {
		return cfg, fmt.Errorf("--gid %d: %w: want 0-%d, or -1 for none", gid, ErrID, int64(MaxID))
	}
	cfg.UID = uint32(uid)
	if gid >= 0 {
		cfg.GID, cfg.HasGID = uint32(gid), true
	}
	var err error
	if cfg.CIDRs, err = ParseCIDRs("--cidr", cidrs, ipv6); err != nil {
		return cfg, err
	}
	if cfg.Excludes, err = ParseCIDRs("--exclude-cidr", excludes, ipv6); err != nil {
		return cfg, err
	}
	// Fail closed per family: a family with no --cidr of its own is
	// redirected everywhere, so `--cidr 52.94.0.0/16` alone cannot leave
	// IPv6 to Bedrock around Warden.
	if len(family(cfg.CIDRs, false)) == 0 {
		cfg.CIDRs = append(cfg.CIDRs, netip.MustParsePrefix("0.0.0.0/0"))
	}
	if ipv6 && len(family(cfg.CIDRs, true)) == 0 {
		cfg.CIDRs = append(cfg.CIDRs, netip.MustParsePrefix("::/0"))
	}
	return cfg, nil
}

// ParseCIDRs reads CIDR flag values: each entry a comma-separated list of
// canonical prefixes (no host bits, no zone, no IPv4-mapped IPv6), IPv6 ones
// only when ipv6 is set. Duplicates are dropped, order is kept. Errors wrap
// ErrCIDR and name the flag and the offending item.
func ParseCIDRs(name string, in []string, ipv6 bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, s := range in {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			p, err := netip.ParsePrefix(f)
			switch {
			case err != nil:
				return nil, fmt.Errorf("%s %q: %w: not a CIDR (want e.g. 10.0.0.0/8 or fd00::/8)", name, f, ErrCIDR)
			case p.Addr().Zone() != "":
				return nil, fmt.Errorf("%s %q: %w: zones are not allowed", name, f, ErrCIDR)
			case p.Addr().Is4In6():
				return nil, fmt.Errorf("%s %q: %w: IPv4-mapped IPv6 prefixes are ambiguous; write the IPv4 CIDR", name, f, ErrCIDR)
			case p.Masked() != p:
				return nil, fmt.Errorf("%s %q: %w: host bits set (did you mean %s?)", name, f, ErrCIDR, p.Masked())
			case p.Addr().Is6() && !ipv6:
				return nil, fmt.Errorf("%s %q: %w: IPv6 CIDR with --ipv6=false", name, f, ErrCIDR)
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// family returns the prefixes of one address family.
func family(ps []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}
