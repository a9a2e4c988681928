package redirect

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Text renders the rule set in nft syntax (what `nft list table inet
// warden` prints, with each dependency spelled out: "meta nfproto ipv4"
// before "ip daddr", "meta l4proto tcp" before "tcp dport"). The same code
// renders the plan and what Read found in the kernel, so the two compare
// as text. With counters false, counters print as a bare "counter" (for
// comparing a plan with a rule set that has already seen traffic).
//
// An expression this package does not write renders as
// "unknown-expression(...)" rather than being dropped, so a rule set someone
// changed by hand never reads back as Warden's own.
func (rs Ruleset) Text(counters bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", familyName(rs.Family), name(rs.Table))
	for i, c := range rs.Chains {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\tchain %s {\n", name(c.Name))
		if c.Hook != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s;", c.Type, hookName(*c.Hook), priorityName(c.Priority))
			if c.Policy != nil {
				fmt.Fprintf(&b, " policy %s;", policyName(*c.Policy))
			}
			b.WriteByte('\n')
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", RuleText(r, counters))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// operand is what a register holds: a meta key, a header field, or a
// constant, with the mask a bitwise expression applied.
type operand struct {
	kind    string // "meta", "payload", "immediate"
	meta    expr.MetaKey
	base    expr.PayloadBase
	offset  uint32
	length  uint32
	mask    []byte
	data    []byte
	l4proto byte // the transport protocol checked before this operand, if any
}

// RuleText renders one rule's expressions in nft syntax.
func RuleText(exprs []expr.Any, counters bool) string {
	regs := map[uint32]operand{}
	var l4 byte
	var words []string
	unknown := func(e expr.Any) {
		words = append(words, "unknown-expression("+oneLine(fmt.Sprintf("%T%+v", e, e))+")")
	}
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				unknown(e)
				continue
			}
			regs[e.Register] = operand{kind: "meta", meta: e.Key}
		case *expr.Payload:
			if e.OperationType != expr.PayloadLoad {
				unknown(e)
				continue
			}
			regs[e.DestRegister] = operand{kind: "payload", base: e.Base, offset: e.Offset, length: e.Len, l4proto: l4}
		case *expr.Bitwise:
			op, ok := regs[e.SourceRegister]
			if !ok || op.mask != nil || !allZero(e.Xor) || len(e.Mask) != int(e.Len) {
				unknown(e)
				continue
			}
			op.mask = e.Mask
			regs[e.DestRegister] = op
		case *expr.Immediate:
			regs[e.Register] = operand{kind: "immediate", data: e.Data}
		case *expr.Cmp:
			op, ok := regs[e.Register]
			if !ok {
				unknown(e)
				continue
			}
			if op.kind == "meta" && op.meta == expr.MetaKeyL4PROTO && e.Op == expr.CmpOpEq && len(e.Data) == 1 {
				l4 = e.Data[0]
			}
			words = append(words, op.name()+" "+cmpOp(e.Op)+op.value(e.Data))
		case *expr.Counter:
			if counters {
				words = append(words, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
			} else {
				words = append(words, "counter")
			}
		case *expr.Verdict:
			words = append(words, verdictText(e))
		case *expr.Redir:
			words = append(words, redirText(e, regs))
		default:
			unknown(e)
		}
	}
	return strings.Join(words, " ")
}

// name is a table or chain name as nft accepts it: bare when it is a plain
// identifier, quoted otherwise (the kernel takes any bytes).
func name(s string) string {
	for i, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// oneLine keeps what the kernel sent on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func cmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return ""
	case expr.CmpOpNeq:
		return "!= "
	case expr.CmpOpLt:
		return "< "
	case expr.CmpOpLte:
		return "<= "
	case expr.CmpOpGt:
		return "> "
	case expr.CmpOpGte:
		return ">= "
	}
	return fmt.Sprintf("op(%d) ", op)
}

var metaNames = map[expr.MetaKey]string{
	expr.MetaKeySKUID:   "skuid",
	expr.MetaKeySKGID:   "skgid",
	expr.MetaKeyNFPROTO: "nfproto",
	expr.MetaKeyL4PROTO: "l4proto",
	expr.MetaKeyMARK:    "mark",
	expr.MetaKeyOIFNAME: "oifname",
	expr.MetaKeyIIFNAME: "iifname",
}

// name is the operand as nft writes it ("meta skuid", "ip daddr", ...).
func (op operand) name() string {
	switch op.kind {
	case "meta":
		if n, ok := metaNames[op.meta]; ok {
			return "meta " + n
		}
		return fmt.Sprintf("meta key(%d)", op.meta)
	case "payload":
		switch {
		case op.base == expr.PayloadBaseNetworkHeader && op.length == 4 && op.offset == 12:
			return "ip saddr"
		case op.base == expr.PayloadBaseNetworkHeader && op.length == 4 && op.offset == 16:
			return "ip daddr"
		case op.base == expr.PayloadBaseNetworkHeader && op.length == 16 && op.offset == 8:
			return "ip6 saddr"
		case op.base == expr.PayloadBaseNetworkHeader && op.length == 16 && op.offset == 24:
			return "ip6 daddr"
		case op.base == expr.PayloadBaseTransportHeader && op.length == 2 && (op.offset == 0 || op.offset == 2):
			proto := "th"
			switch op.l4proto {
			case unix.IPPROTO_TCP:
				proto = "tcp"
			case unix.IPPROTO_UDP:
				proto = "udp"
			}
			if op.offset == 0 {
				return proto + " sport"
			}
			return proto + " dport"
		}
		return fmt.Sprintf("@payload(base %d,offset %d,len %d)", op.base, op.offset, op.length)
	}
	return "immediate"
}

// value renders data as the operand's type.
func (op operand) value(data []byte) string {
	hex := func(b []byte) string { return fmt.Sprintf("0x%x", b) }
	switch op.kind {
	case "meta":
		if op.mask != nil {
			break
		}
		switch op.meta {
		case expr.MetaKeySKUID, expr.MetaKeySKGID, expr.MetaKeyMARK:
			if len(data) == 4 {
				return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(data)), 10)
			}
		case expr.MetaKeyNFPROTO:
			if len(data) == 1 {
				switch data[0] {
				case unix.NFPROTO_IPV4:
					return "ipv4"
				case unix.NFPROTO_IPV6:
					return "ipv6"
				}
			}
		case expr.MetaKeyL4PROTO:
			if len(data) == 1 {
				return protoName(data[0])
			}
		case expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME:
			return strconv.Quote(strings.TrimRight(string(data), "\x00"))
		}
	case "payload":
		name := op.name()
		if strings.HasSuffix(name, "addr") {
			a, ok := netip.AddrFromSlice(data)
			if !ok || len(data) != int(op.length) {
				break
			}
			if op.mask == nil {
				return a.String()
			}
			if n, ok := maskBits(op.mask); ok {
				return netip.PrefixFrom(a, n).String()
			}
			return fmt.Sprintf("& %s == %s", hex(op.mask), a)
		}
		if strings.HasSuffix(name, "port") && op.mask == nil && len(data) == 2 {
			return strconv.Itoa(int(binary.BigEndian.Uint16(data)))
		}
	}
	if op.mask != nil {
		return fmt.Sprintf("& %s == %s", hex(op.mask), hex(data))
	}
	return hex(data)
}

// maskBits is the prefix length of a contiguous mask.
func maskBits(m []byte) (int, bool) {
	n, done := 0, false
	for _, c := range m {
		if done && c != 0 {
			return 0, false
		}
		ones := bits.LeadingZeros8(^c)
		if c<<ones != 0 {
			return 0, false
		}
		n += ones
		done = ones < 8
	}
	return n, true
}

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

func verdictText(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictJump:
		return "jump " + name(v.Chain)
	case expr.VerdictGoto:
		return "goto " + name(v.Chain)
	}
	return fmt.Sprintf("verdict(%d)", v.Kind)
}

// redirText is "redirect to :PORT" when the port registers hold constants.
func redirText(r *expr.Redir, regs map[uint32]operand) string {
	if r.RegisterProtoMin == 0 {
		if r.Flags != 0 {
			return fmt.Sprintf("redirect flags 0x%x", r.Flags)
		}
		return "redirect"
	}
	port := func(reg uint32) (string, bool) {
		op, ok := regs[reg]
		if !ok || op.kind != "immediate" || len(op.data) != 2 {
			return "", false
		}
		return strconv.Itoa(int(binary.BigEndian.Uint16(op.data))), true
	}
	lo, ok1 := port(r.RegisterProtoMin)
	hi, ok2 := port(r.RegisterProtoMax)
	if !ok1 || (r.RegisterProtoMax != 0 && !ok2) {
		return "unknown-expression(" + oneLine(fmt.Sprintf("%T%+v", r, r)) + ")"
	}
	s := "redirect to :" + lo
	if r.RegisterProtoMax != 0 && hi != lo {
		s += "-" + hi
	}
	if f := r.Flags &^ natRangeProtoSpecified; f != 0 {
		s += fmt.Sprintf(" flags 0x%x", f)
	}
	return s
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family(%d)", f)
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook(%d)", h)
}

func priorityName(p *nftables.ChainPriority) string {
	if p == nil {
		return "0"
	}
	// Numeric, as nft prints it: "dstnat" (-100) is rejected on the output
	// hook by some nft versions.
	return strconv.Itoa(int(*p))
}

func policyName(p nftables.ChainPolicy) string {
	switch p {
	case nftables.ChainPolicyAccept:
		return "accept"
	case nftables.ChainPolicyDrop:
		return "drop"
	}
	return fmt.Sprintf("policy(%d)", p)
}
