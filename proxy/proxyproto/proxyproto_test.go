package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// awsTLVs are what an AWS NLB in front of a VPC endpoint service sends:
// PP2_TYPE_AWS (0xEA) with subtype PP2_SUBTYPE_AWS_VPCE_ID, plus a NOOP.
func awsTLVs() []byte {
	v := append([]byte{0x01}, "vpce-0123456789abcdef0"...)
	t := append([]byte{0xEA}, byte(len(v)>>8), byte(len(v)))
	t = append(t, v...)
	return append(t, 0x04, 0x00, 0x02, 0, 0) // PP2_TYPE_NOOP, 2 bytes
}

var (
	v4src = netip.MustParseAddrPort("203.0.113.7:51234")
	v4dst = netip.MustParseAddrPort("10.0.0.5:443")
	v6src = netip.MustParseAddrPort("[2001:db8::7]:51234")
	v6dst = netip.MustParseAddrPort("[2001:db8::5]:443")
)

func TestParseProxyHeader(t *testing.T) {
	h, n, err := parseProxyHeader(append(AppendHeader(nil, v4src, v4dst, awsTLVs()), "GET / HTTP/1.1\r\n"...))
	if err != nil || h.Src != v4src || h.Dst != v4dst || h.Local || h.TLVs != 2 || n != 16+12+len(awsTLVs()) ||
		h.VPCEndpoint != "vpce-0123456789abcdef0" {
		t.Fatalf("v4: %+v %d %v", h, n, err)
	}
	// Other AWS subtypes are skipped; the id may come in either length.
	other := append([]byte{0xEA, 0, 3, 0x02, 'x', 'y'}, AWSVPCEndpointTLV("vpce-0a1b2c3d")...)
	if h, _, err = parseProxyHeader(AppendHeader(nil, v4src, v4dst, other)); err != nil || h.VPCEndpoint != "vpce-0a1b2c3d" {
		t.Fatalf("short id after another subtype: %+v %v", h, err)
	}
	h, _, err = parseProxyHeader(AppendHeader(nil, v6src, v6dst, nil))
	if err != nil || h.Src != v6src || h.Dst != v6dst {
		t.Fatalf("v6: %+v %v", h, err)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4src.Addr().As16()), v4src.Port())
	h, _, err = parseProxyHeader(AppendHeader(nil, mapped, v6dst, nil))
	if err != nil || h.Src != v4src {
		t.Fatalf("v4-mapped source is the v4 address: %+v %v", h, err)
	}
	h, n, err = parseProxyHeader(LocalHeader())
	if err != nil || !h.Local || n != 16 {
		t.Fatalf("local: %+v %v", h, err)
	}

	good := AppendHeader(nil, v4src, v4dst, nil)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	bad := map[string][]byte{
		"v1 text":          []byte("PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n"),
		"plain http":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"version 1":        mut(func(b []byte) []byte { b[12] = 0x11; return b }),
		"command 2":        mut(func(b []byte) []byte { b[12] = 0x22; return b }),
		"udp":              mut(func(b []byte) []byte { b[13] = 0x12; return b }),
		"unix":             mut(func(b []byte) []byte { b[13] = 0x31; return b }),
		"unspec proxy":     mut(func(b []byte) []byte { b[13] = 0x00; return b }),
		"too long":         mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 4097); return b }),
		"short tcp4":       mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 8); return b[:24] }),
		"truncated":        good[:20],
		"truncated tlv":    AppendHeader(nil, v4src, v4dst, []byte{0xEA, 0x00}),
		"overrunning tlv":  AppendHeader(nil, v4src, v4dst, []byte{0xEA, 0x00, 0x09, 1, 2}),
		"unspecified src":  AppendHeader(nil, netip.MustParseAddrPort("0.0.0.0:1"), v4dst, nil),
		"multicast src":    AppendHeader(nil, netip.MustParseAddrPort("[ff02::1]:1"), v6dst, nil),
		"short":            good[:10],
		"empty aws tlv":    AppendHeader(nil, v4src, v4dst, []byte{0xEA, 0, 0}),
		"bad vpce id":      AppendHeader(nil, v4src, v4dst, AWSVPCEndpointTLV("vpce-XYZ0123456789")),
		"vpce id too long": AppendHeader(nil, v4src, v4dst, AWSVPCEndpointTLV("vpce-0123456789abcdef01")),
		"vpce not prefix":  AppendHeader(nil, v4src, v4dst, AWSVPCEndpointTLV("vpc-0123456789abcdef0")),
		"two vpce ids": AppendHeader(nil, v4src, v4dst, append(AWSVPCEndpointTLV("vpce-0123456789abcdef0"),
			AWSVPCEndpointTLV("vpce-0123456789abcdef1")...)),
		"broken signature": mut(func(b []byte) []byte { b[3] = 'x'; return b }),
	}
	for name, b := range bad {
		if h, _, err := parseProxyHeader(b); err == nil || !errors.Is(err, errProxyHeader) {
			t.Errorf("%s: accepted %+v (%v)", name, h, err)
		}
	}
}

func FuzzProxyHeader(f *testing.F) {
	f.Add(AppendHeader(nil, v4src, v4dst, nil))
	f.Add(AppendHeader(nil, v4src, v4dst, awsTLVs()))
	f.Add(AppendHeader(nil, v6src, v6dst, awsTLVs()))
	f.Add(LocalHeader())
	f.Add(append(append(proxyV2Sig[:12:12], 0x20, proxyFamTCP4, 0, 15), make([]byte, 15)...))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyHeader(b)
		// The streaming reader must agree with the buffer parser and
		// never read past the header.
		r := bytes.NewReader(b)
		h2, err2 := readProxyHeader(r)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("parsers disagree: %v vs %v", err, err2)
		}
		if err != nil {
			return
		}
		if h != h2 || n != len(b)-r.Len() || n > proxyV2HeaderLen+proxyV2MaxLen {
			t.Fatalf("header %+v/%+v, consumed %d of %d (reader %d)", h, h2, n, len(b), len(b)-r.Len())
		}
		if h.Local {
			return
		}
		if !h.Src.Addr().IsValid() || h.Src.Addr().Is4In6() || h.Src.Addr().IsUnspecified() {
			t.Fatalf("source %v", h.Src)
		}
		if h.VPCEndpoint != "" && !ValidVPCEndpointID(h.VPCEndpoint) {
			t.Fatalf("VPC endpoint id %q", h.VPCEndpoint)
		}
		// Round trip through the encoder.
		var tlvs []byte
		if h.VPCEndpoint != "" {
			tlvs = AWSVPCEndpointTLV(h.VPCEndpoint)
		}
		h3, _, err := parseProxyHeader(AppendHeader(nil, h.Src, h.Dst, tlvs))
		if err != nil || h3.Src != h.Src || h3.VPCEndpoint != h.VPCEndpoint {
			t.Fatalf("round trip %+v -> %+v (%v)", h, h3, err)
		}
	})
}

// ppListen listens on loopback with the PROXY protocol trusting cidrs.
func ppListen(t *testing.T, timeout time.Duration, cidrs ...string) net.Listener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(raw, Config{Trusted: cidrs, HeaderTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

type accepted struct {
	remote string
	vpce   string
	data   string
	err    error
}

// serveOnce accepts one connection and reads n bytes from it.
func serveOnce(ln net.Listener, n int) <-chan accepted {
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		defer c.Close()
		remote, vpce := c.RemoteAddr().String(), VPCEndpointOf(c)
		buf := make([]byte, n)
		_, err = io.ReadFull(c, buf)
		ch <- accepted{remote: remote, vpce: vpce, data: string(buf), err: err}
	}()
	return ch
}

func dialWrite(t *testing.T, ln net.Listener, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProxyListenerTrustedPeer(t *testing.T) {
	ln := ppListen(t, time.Second, "127.0.0.0/8")

	ch := serveOnce(ln, 5)
	dialWrite(t, ln, append(AppendHeader(nil, v4src, v4dst, awsTLVs()), "hello"...))
	if a := <-ch; a.err != nil || a.remote != v4src.String() || a.data != "hello" || a.vpce != "vpce-0123456789abcdef0" {
		t.Fatalf("v4: %+v", a)
	}

	ch = serveOnce(ln, 5)
	dialWrite(t, ln, append(AppendHeader(nil, v6src, v6dst, nil), "hello"...))
	if a := <-ch; a.err != nil || a.remote != v6src.String() || a.data != "hello" || a.vpce != "" {
		t.Fatalf("v6: %+v", a)
	}

	// LOCAL (health check): the peer's own address, marked so that it
	// does not parse as a (loopback) client address.
	ch = serveOnce(ln, 2)
	c := dialWrite(t, ln, append(LocalHeader(), "ok"...))
	if a := <-ch; a.err != nil || a.remote != "proxy-local("+c.LocalAddr().String()+")" || a.data != "ok" {
		t.Fatalf("local: %+v", a)
	}

	// A trusted peer without a header is refused, whatever it sends.
	ch = serveOnce(ln, 5)
	dialWrite(t, ln, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if a := <-ch; a.err == nil || !errors.Is(a.err, errProxyHeader) {
		t.Fatalf("no header: %+v", a)
	}
}

func TestProxyListenerUntrustedPeerCannotSpoof(t *testing.T) {
	ln := ppListen(t, time.Second, "10.0.0.0/8") // loopback is not a load balancer
	hdr := AppendHeader(nil, v4src, v4dst, awsTLVs())
	ch := serveOnce(ln, len(hdr))
	c := dialWrite(t, ln, hdr)
	a := <-ch
	if a.err != nil || a.remote != c.LocalAddr().String() || a.data != string(hdr) || a.vpce != "" {
		t.Fatalf("an untrusted peer's header was interpreted: %+v", a)
	}
}

func TestProxyListenerHeaderTimeout(t *testing.T) {
	ln := ppListen(t, 150*time.Millisecond, "127.0.0.0/8")
	ch := serveOnce(ln, 1)
	hdr := AppendHeader(nil, v4src, v4dst, nil)
	dialWrite(t, ln, hdr[:10]) // stalls mid-header
	start := time.Now()
	a := <-ch
	if a.err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("stalled header: %+v after %v", a, time.Since(start))
	}
	// The stalled connection did not hold up the next one.
	ch2 := serveOnce(ln, 1)
	dialWrite(t, ln, hdr[:10])
	ch3 := serveOnce(ln, 1)
	dialWrite(t, ln, append(append([]byte(nil), hdr...), 'x'))
	select {
	case a := <-ch3:
		if a.err != nil || a.remote != v4src.String() {
			t.Fatalf("next connection: %+v", a)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("accept loop blocked by a slow header")
	}
	<-ch2
}

func TestProxyConnDeadlines(t *testing.T) {
	ln := ppListen(t, 5*time.Second, "127.0.0.0/8")
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		// A deadline the server sets before the header arrives bounds
		// the header too, and still applies afterwards.
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1)
		_, err = c.Read(buf)
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			done <- errors.New("header read was not bounded by the user's deadline: " + errString(err))
			return
		}
		done <- nil
	}()
	dialWrite(t, ln, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no timeout")
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestProxyListenerWithHTTPServer(t *testing.T) {
	ln := ppListen(t, time.Second, "127.0.0.0/8")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	c := dialWrite(t, ln, append(AppendHeader(nil, v4src, v4dst, nil), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if resp.StatusCode != 200 || string(body) != v4src.String() {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}

	// Without the header the request is never served (net/http answers
	// its generic 400 to the unreadable connection, or nothing).
	c = dialWrite(t, ln, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("served without a header: %d", resp.StatusCode)
	}
}

func TestProxyProtocolListenerDisabled(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ln, err := Listen(raw, Config{})
	if err != nil || ln != raw {
		t.Fatal("disabled PROXY protocol wrapped the listener")
	}
	if _, err := Listen(raw, Config{Trusted: []string{"nonsense"}}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

// A trusted load balancer cannot hand a remote client a loopback or
// link-local source: loopback-only sources would treat it as local.
func TestProxyHeaderRefusesLocalSources(t *testing.T) {
	ok := AppendHeader(nil, v4src, v4dst, nil)
	if h, err := parseProxyBody(ok[:16], ok[16:]); err != nil || h.Src != v4src {
		t.Fatalf("control: %v %v", h.Src, err)
	}
	for _, src := range []string{"127.0.0.1:5000", "[::1]:5000", "169.254.170.2:80", "[fe80::1]:80"} {
		h := AppendHeader(nil, netip.MustParseAddrPort(src), v4dst, nil)
		if netip.MustParseAddrPort(src).Addr().Is6() {
			h = AppendHeader(nil, netip.MustParseAddrPort(src), v6dst, nil)
		}
		if _, err := parseProxyBody(h[:16], h[16:]); err == nil {
			t.Errorf("source %s accepted", src)
		}
	}
}
