//go:build linux

package proxy

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// originalDst reads where a connection redirected by iptables (nat REDIRECT
// or DNAT) was going: SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for
// IPv6. On a connection nothing redirected, the kernel answers with the
// connection's own local address when conntrack tracks it (the namespace
// has nat rules), and ENOENT when it does not; ServeTransparent refuses both.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	if g, ok := c.(*guardedConn); ok {
		c = g.Conn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	var out netip.AddrPort
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		if local.Addr().Is4() || local.Addr().Is4In6() {
			// struct sockaddr_in fits the 16-byte IPv6Mreq getter.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				serr = fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
				return
			}
			b := m.Multiaddr // family(2) port(2, big endian) addr(4) zero(8)
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
			return
		}
		// struct sockaddr_in6 (28 bytes) fits IPv6MTUInfo (32).
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst)
		if err != nil {
			serr = fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
			return
		}
		sa := (*[unsafe.Sizeof(info.Addr)]byte)(unsafe.Pointer(&info.Addr))
		port := binary.BigEndian.Uint16(sa[2:4])
		out = netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])), port)
	})
	if cerr != nil {
		return netip.AddrPort{}, cerr
	}
	return out, serr
}

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h
// (x/sys/unix does not export it); it equals SO_ORIGINAL_DST.
const ip6tSoOriginalDst = 80
