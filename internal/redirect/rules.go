package redirect

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The table and chain `warden iptables` owns.
const (
	TableName = "warden"
	ChainName = "output"
	// TableFamily is inet: one table for IPv4 and IPv6 (nat in the inet
	// family needs Linux 5.2 or later).
	TableFamily = nftables.TableFamilyINet
)

// natRangeProtoSpecified is NF_NAT_RANGE_PROTO_SPECIFIED: the redirect
// carries a port. The kernel reports it for every redirect with a port, so
// the plan sets it too and reads back as it was written.
const natRangeProtoSpecified = 0x2

// Ruleset is one nftables table: the plan Build returns, or what Read found
// in the kernel.
type Ruleset struct {
	Family nftables.TableFamily
	Table  string
	Chains []Chain
}

// Chain is one chain of the table with its rules, in order. Hook, Priority
// and Policy are nil for a regular (non-base) chain.
type Chain struct {
	Name     string
	Type     nftables.ChainType
	Hook     *nftables.ChainHook
	Priority *nftables.ChainPriority
	Policy   *nftables.ChainPolicy
	Rules    [][]expr.Any
}

// Build returns the rule set for cfg: a nat chain hooked at output (priority
// -100, dstnat; policy accept) that, in order,
//
//	returns (no NAT) for sockets owned by cfg.UID (and cfg.GID if HasGID);
//	per address family with something to redirect: returns for loopback
//	(127.0.0.0/8, ::1) and each exclude, then redirects TCP 443 to each
//	CIDR to cfg.Port on the loopback address of that family.
//
// It is the rule set `warden iptables` installed with iptables before
// (WARDEN_OUTPUT hooked from OUTPUT), in one inet table. Every rule counts
// its packets.
func Build(cfg Config) Ruleset {
	var rules [][]expr.Any
	rules = append(rules, rule(metaCmp(expr.MetaKeySKUID, native32(cfg.UID)), ret()))
	if cfg.HasGID {
		rules = append(rules, rule(metaCmp(expr.MetaKeySKGID, native32(cfg.GID)), ret()))
	}
	for _, v6 := range []bool{false, true} {
		targets := family(cfg.CIDRs, v6)
		if len(targets) == 0 || (v6 && !cfg.IPv6) {
			continue
		}
		loopback := netip.MustParsePrefix("127.0.0.0/8")
		if v6 {
			loopback = netip.MustParsePrefix("::1/128")
		}
		rules = append(rules, rule(daddr(loopback), ret()))
		for _, p := range family(cfg.Excludes, v6) {
			rules = append(rules, rule(daddr(p), ret()))
		}
		for _, p := range targets {
			rules = append(rules, rule(daddr(p), metaCmp(expr.MetaKeyL4PROTO, []byte{unix.IPPROTO_TCP}), dport(443), redirectTo(cfg.Port)))
		}
	}
	policy := nftables.ChainPolicyAccept
	return Ruleset{
		Family: TableFamily,
		Table:  TableName,
		Chains: []Chain{{
			Name:     ChainName,
			Type:     nftables.ChainTypeNAT,
			Hook:     nftables.ChainHookOutput,
			Priority: nftables.ChainPriorityNATDest,
			Policy:   &policy,
			Rules:    rules,
		}},
	}
}

// rule joins match groups, then a counter, then the statement (the last
// group).
func rule(groups ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, g := range groups[:len(groups)-1] {
		out = append(out, g...)
	}
	out = append(out, &expr.Counter{})
	return append(out, groups[len(groups)-1]...)
}

func native32(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}

func metaCmp(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}

// daddr matches the destination address against p, behind the address
// family check an inet table needs before reading a network header field.
// A /0 prefix is the family check alone.
func daddr(p netip.Prefix) []expr.Any {
	proto, offset, size := byte(unix.NFPROTO_IPV4), uint32(16), 4
	if p.Addr().Is6() {
		proto, offset, size = unix.NFPROTO_IPV6, 24, 16
	}
	out := metaCmp(expr.MetaKeyNFPROTO, []byte{proto})
	if p.Bits() == 0 {
		return out
	}
	out = append(out, &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1,
		Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(size)})
	if p.Bits() < size*8 {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(size),
			Mask: prefixMask(p.Bits(), size), Xor: make([]byte, size)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()})
}

// prefixMask is bits leading ones in size bytes.
func prefixMask(bits, size int) []byte {
	m := make([]byte, size)
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return m
}

func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1,
			Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

func ret() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}} }

func redirectTo(port int) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(port))},
		&expr.Redir{RegisterProtoMin: 1, RegisterProtoMax: 1, Flags: natRangeProtoSpecified},
	}
}
