// Package proxyproto reads PROXY protocol v2 headers from trusted load
// balancers (haproxy's proxy-protocol.txt, section 2.2), so the client
// address identity sources and records see is the workload's, not the load
// balancer's. Connections from any other peer are never parsed.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/authz/identity"
)

// PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): a 16-byte
// preamble — 12-byte signature, version/command, family/transport, 16-bit
// big-endian length — then length bytes of addresses and TLVs.
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	proxyV2HeaderLen = 16
	// proxyV2MaxLen bounds the address-and-TLV block Warden accepts. AWS
	// NLB sends 12 or 36 address bytes plus a VPC endpoint TLV; 4 KiB
	// leaves room for any load balancer's TLVs and nothing more.
	proxyV2MaxLen = 4096

	proxyCmdLocal = 0x0
	proxyCmdProxy = 0x1

	proxyFamTCP4 = 0x11 // AF_INET, STREAM
	proxyFamTCP6 = 0x21 // AF_INET6, STREAM

	// PP2_TYPE_AWS and its PP2_SUBTYPE_AWS_VPCE_ID: the VPC endpoint a
	// PrivateLink client came through, sent by an NLB that fronts a VPC
	// endpoint service (Elastic Load Balancing's "proxy protocol" docs).
	tlvTypeAWS          = 0xEA
	tlvSubtypeAWSVPCE   = 0x01
	maxVPCEndpointIDLen = 64
)

// proxyHeader is a parsed v2 header.
type proxyHeader struct {
	Local    bool           // LOCAL command: a health check; use the peer address
	Src, Dst netip.AddrPort // set for PROXY
	TLVs     int            // number of TLVs read
	// VPCEndpoint is the AWS TLV's VPC endpoint id ("vpce-…"): the
	// PrivateLink endpoint the client connected through, in the client's
	// own VPC. Empty when the load balancer sent none.
	VPCEndpoint string
}

var errProxyHeader = errors.New("proxy protocol")

func proxyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProxyHeader, fmt.Sprintf(format, args...))
}

// parseProxyPreamble checks the fixed 16 bytes and returns the length of
// the block that follows.
func parseProxyPreamble(p []byte) (int, error) {
	if len(p) < proxyV2HeaderLen {
		return 0, proxyErr("short header")
	}
	if !bytes.Equal(p[:12], proxyV2Sig[:]) {
		if bytes.HasPrefix(p, []byte("PROXY ")) {
			return 0, proxyErr("v1 (text) header; only v2 is accepted")
		}
		return 0, proxyErr("no v2 signature from a trusted load balancer")
	}
	if p[12]>>4 != 2 {
		return 0, proxyErr("version %d", p[12]>>4)
	}
	n := int(binary.BigEndian.Uint16(p[14:16]))
	if n > proxyV2MaxLen {
		return 0, proxyErr("header length %d exceeds %d", n, proxyV2MaxLen)
	}
	return n, nil
}

// parseProxyBody parses the block after the preamble: addresses for PROXY
// over TCP/IPv4 or TCP/IPv6, then TLVs, which must tile the rest exactly.
func parseProxyBody(pre, body []byte) (proxyHeader, error) {
	var h proxyHeader
	cmd, fam := pre[12]&0x0F, pre[13]
	var addrLen int
	switch cmd {
	case proxyCmdLocal:
		// Health checks: the family may be anything (usually UNSPEC);
		// the body is skipped but must still be well formed.
		h.Local = true
		switch fam {
		case proxyFamTCP4:
			addrLen = 12
		case proxyFamTCP6:
			addrLen = 36
		}
		if addrLen > len(body) {
			addrLen = 0
		}
	case proxyCmdProxy:
		switch fam {
		case proxyFamTCP4:
			addrLen = 12
			if len(body) < addrLen {
				return h, proxyErr("TCP4 header of %d bytes", len(body))
			}
			h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
			h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
		case proxyFamTCP6:
			addrLen = 36
			if len(body) < addrLen {
				return h, proxyErr("TCP6 header of %d bytes", len(body))
			}
			h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
			h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])).Unmap(), binary.BigEndian.Uint16(body[34:36]))
		default:
			return h, proxyErr("family/transport 0x%02x; only TCP over IPv4 or IPv6 is accepted", fam)
		}
		// A relayed loopback or link-local source would hand a remote client
		// the identity loopback-only (sidecar) sources give local callers.
		if a := h.Src.Addr(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return h, proxyErr("source address %s", a)
		}
	default:
		return h, proxyErr("command 0x%x", cmd)
	}
	tlvs := body[addrLen:]
	if h.Local && addrLen == 0 {
		tlvs = nil // UNSPEC/UNIX/UDP LOCAL: the block is opaque
	}
	for len(tlvs) > 0 {
		if len(tlvs) < 3 {
			return h, proxyErr("truncated TLV")
		}
		l := int(binary.BigEndian.Uint16(tlvs[1:3]))
		if 3+l > len(tlvs) {
			return h, proxyErr("TLV 0x%02x of %d bytes overruns the header", tlvs[0], l)
		}
		if tlvs[0] == tlvTypeAWS && !h.Local {
			if err := h.readAWSTLV(tlvs[3 : 3+l]); err != nil {
				return h, err
			}
		}
		tlvs = tlvs[3+l:]
		h.TLVs++
	}
	return h, nil
}

// readAWSTLV reads a PP2_TYPE_AWS value: a subtype byte, then for
// PP2_SUBTYPE_AWS_VPCE_ID the endpoint id in ASCII. The id becomes an
// identity key (every IP-based lookup is scoped by it), so anything but a
// well-formed id, or a second one, refuses the header: a trusted load
// balancer that sends garbage is misconfigured, not to be guessed at.
// Other AWS subtypes are skipped.
func (h *proxyHeader) readAWSTLV(v []byte) error {
	if len(v) == 0 {
		return proxyErr("empty AWS TLV")
	}
	if v[0] != tlvSubtypeAWSVPCE {
		return nil
	}
	id := string(v[1:])
	if !ValidVPCEndpointID(id) {
		return proxyErr("AWS TLV: VPC endpoint id %q is not vpce- and 8 to 17 hex digits", truncate(id, maxVPCEndpointIDLen))
	}
	if h.VPCEndpoint != "" {
		return proxyErr("AWS TLV: a second VPC endpoint id (%s after %s)", id, h.VPCEndpoint)
	}
	h.VPCEndpoint = id
	return nil
}

// ValidVPCEndpointID reports whether id is a VPC endpoint id: "vpce-"
// and 8 or 17 lowercase hex digits (AWS issues both lengths; anything in
// between is accepted too).
func ValidVPCEndpointID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "vpce-")
	if !ok || len(hexPart) < 8 || len(hexPart) > 17 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AWSVPCEndpointTLV is the PP2_TYPE_AWS TLV an NLB sends for a client that
// came through VPC endpoint id: what tests and health checkers pass to
// AppendHeader.
func AWSVPCEndpointTLV(id string) []byte {
	v := append([]byte{tlvSubtypeAWSVPCE}, id...)
	t := append([]byte{tlvTypeAWS}, byte(len(v)>>8), byte(len(v)))
	return append(t, v...)
}

// parseProxyHeader parses a complete v2 header at the start of b and
// returns it and its length.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	n, err := parseProxyPreamble(b)
	if err != nil {
		return proxyHeader{}, 0, err
	}
	if len(b) < proxyV2HeaderLen+n {
		return proxyHeader{}, 0, proxyErr("short header")
	}
	h, err := parseProxyBody(b[:proxyV2HeaderLen], b[proxyV2HeaderLen:proxyV2HeaderLen+n])
	return h, proxyV2HeaderLen + n, err
}

// readProxyHeader reads exactly one header from r: never a byte more, so
// what follows is the client's own stream.
func readProxyHeader(r io.Reader) (proxyHeader, error) {
	var pre [proxyV2HeaderLen]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return proxyHeader{}, proxyErr("reading header: %v", err)
	}
	n, err := parseProxyPreamble(pre[:])
	if err != nil {
		return proxyHeader{}, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return proxyHeader{}, proxyErr("reading header: %v", err)
	}
	return parseProxyBody(pre[:], body)
}

// Listen wraps ln so that connections from trusted load
// balancers must begin with a PROXY protocol v2 header, whose source address
// becomes the connection's RemoteAddr. Connections from any other peer are
// returned untouched: their bytes are never parsed as a header, so a client
// cannot claim another address.
func Listen(ln net.Listener, cfg Config) (net.Listener, error) {
	if !cfg.Enabled() {
		return ln, nil
	}
	trusted, err := cfg.TrustedNets()
	if err != nil {
		return nil, fmt.Errorf("listen.proxy_protocol.trusted: %w", err)
	}
	return &proxyListener{Listener: ln, trusted: trusted, timeout: cfg.Timeout()}, nil
}

type proxyListener struct {
	net.Listener
	trusted identity.TrustedNets
	timeout time.Duration
}

// Accept returns at once; the header is read by the connection's first
// Read or RemoteAddr, on the connection's own goroutine, so a slow load
// balancer cannot stall the accept loop.
func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	peer, ok := AddrPortOf(c.RemoteAddr())
	if !ok || !l.trusted.Contains(peer.Addr()) {
		return c, nil
	}
	return &proxyConn{Conn: c, timeout: l.timeout}, nil
}

// AddrPortOf returns a net.Addr's address and port, when it has them.
func AddrPortOf(a net.Addr) (netip.AddrPort, bool) {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort(), true
	case interface{ AddrPort() netip.AddrPort }:
		return v.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// proxyConn is a connection from a trusted load balancer.
type proxyConn struct {
	net.Conn
	timeout time.Duration

	once   sync.Once
	err    error
	remote net.Addr
	local  net.Addr
	vpce   string

	mu           sync.Mutex
	readDeadline time.Time // as last set by the user, restored after the header
	inHeader     bool
}

// NetConn is the load balancer's connection under the PROXY header.
func (c *proxyConn) NetConn() net.Conn { return c.Conn }

func (c *proxyConn) init() {
	c.once.Do(func() {
		c.mu.Lock()
		c.inHeader = true
		user := c.readDeadline
		c.mu.Unlock()
		d := time.Now().Add(c.timeout)
		if !user.IsZero() && user.Before(d) {
			d = user
		}
		_ = c.Conn.SetReadDeadline(d)
		h, err := readProxyHeader(c.Conn)
		c.mu.Lock()
		c.inHeader = false
		_ = c.Conn.SetReadDeadline(c.readDeadline)
		c.mu.Unlock()
		if err != nil {
			c.err = fmt.Errorf("%w (from load balancer %s)", err, c.Conn.RemoteAddr())
			return
		}
		switch {
		case !h.Local:
			c.remote = net.TCPAddrFromAddrPort(h.Src)
			c.local = net.TCPAddrFromAddrPort(h.Dst)
			c.vpce = h.VPCEndpoint
		case isLoopbackAddr(c.Conn.RemoteAddr()):
			// LOCAL keeps the peer's address, and a loopback peer's is a
			// loopback call that sidecar and static sources would answer.
			// Validation refuses loopback load balancers next to those
			// sources; this holds if a config skipped it.
			c.remote = localCheckAddr{peer: c.Conn.RemoteAddr()}
		}
	})
}

func isLoopbackAddr(a net.Addr) bool {
	ap, ok := AddrPortOf(a)
	return ok && ap.Addr().Unmap().IsLoopback()
}

// localCheckAddr is the RemoteAddr of a LOCAL (health check) connection
// from a loopback load balancer: it names the peer for logs and audit, but
// does not parse as an address, so no source identifies the caller by it.
type localCheckAddr struct{ peer net.Addr }

func (a localCheckAddr) Network() string { return a.peer.Network() }
func (a localCheckAddr) String() string  { return "proxy-local(" + a.peer.String() + ")" }

// Read reads the client's stream after the header; a connection whose
// header is missing or malformed fails every read.
func (c *proxyConn) Read(b []byte) (int, error) {
	c.init()
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the original client (the peer itself for LOCAL, wrapped in
// localCheckAddr if it is loopback; and for a connection whose header
// failed: it serves no request).
func (c *proxyConn) RemoteAddr() net.Addr {
	c.init()
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// VPCEndpointID is the VPC endpoint the client came through, from the
// trusted load balancer's AWS TLV ("" when it sent none). Like RemoteAddr
// it reads the header first.
func (c *proxyConn) VPCEndpointID() string {
	c.init()
	return c.vpce
}

// VPCEndpointOf returns the VPC endpoint id a trusted load balancer named
// for c ("" for every other connection).
func VPCEndpointOf(c net.Conn) string {
	if v, ok := c.(interface{ VPCEndpointID() string }); ok {
		return v.VPCEndpointID()
	}
	return ""
}

// LocalAddr is the address the client connected to (the load balancer's
// listener), if the header named it.
func (c *proxyConn) LocalAddr() net.Addr {
	c.init()
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.inHeader {
		// Applied when the header is done; the header keeps its own bound.
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *proxyConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite lets net/http half-close the connection as it does for TCP.
func (c *proxyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// DefaultHeaderTimeout bounds how long a trusted load balancer may take
// to send its PROXY protocol header.
const DefaultHeaderTimeout = 5 * time.Second

// Config configures PROXY protocol v2 on the endpoint listener.
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
type Config struct {
	Trusted       []string      `yaml:"trusted"`
	HeaderTimeout time.Duration `yaml:"header_timeout"`
}

// Enabled reports whether any load balancer is trusted.
func (c Config) Enabled() bool { return len(c.Trusted) > 0 }

// TrustedNets compiles the trusted load balancer networks.
func (c Config) TrustedNets() (identity.TrustedNets, error) {
	return identity.ParseTrustedNets(c.Trusted)
}

// Timeout is the header timeout with its default applied.
func (c Config) Timeout() time.Duration {
	if c.HeaderTimeout <= 0 {
		return DefaultHeaderTimeout
	}
	return c.HeaderTimeout
}

// AppendHeader appends a PROXY protocol v2 header (PROXY command, TCP over
// the family of src) with the given raw TLV bytes: what a load balancer
// sends. Warden itself never sends one; tests and health checkers do.
func AppendHeader(dst []byte, src, to netip.AddrPort, tlvs []byte) []byte {
	dst = append(dst, proxyV2Sig[:]...)
	dst = append(dst, 0x21)
	var addrs []byte
	if src.Addr().Is4() && to.Addr().Is4() {
		dst = append(dst, proxyFamTCP4)
		a, b := src.Addr().As4(), to.Addr().As4()
		addrs = append(append(addrs, a[:]...), b[:]...)
	} else {
		dst = append(dst, proxyFamTCP6)
		a, b := src.Addr().As16(), to.Addr().As16()
		addrs = append(append(addrs, a[:]...), b[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, to.Port())
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(addrs)+len(tlvs)))
	dst = append(dst, addrs...)
	return append(dst, tlvs...)
}

// LocalHeader is a LOCAL header (a load balancer's health check) with the
// UNSPEC family.
func LocalHeader() []byte {
	return append(append(proxyV2Sig[:len(proxyV2Sig):len(proxyV2Sig)], 0x20, 0x00), 0, 0)
}
