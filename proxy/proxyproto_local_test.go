package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/proxy/proxyproto"
)

// A LOCAL header from a trusted loopback peer must not make the call a
// loopback one: the static (sidecar) identity is for the pod's own
// containers, and LOCAL carries no client address at all. Served through
// the real listener and http.Server, identified as the pipeline does.
func TestProxyLocalFromLoopbackPeerIsNotSameHost(t *testing.T) {
	ln := ppListen(t, time.Second, "127.0.0.0/8")
	static := identity.NewStaticSource(map[string]string{"app": "sidecar-app"})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := static.Resolve(context.Background(), connOf(r, nil))
		if err != nil {
			_, _ = io.WriteString(w, "no identity: "+err.Error())
			return
		}
		_, _ = io.WriteString(w, "identity: "+id.String())
	}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	get := func(hdr []byte) string {
		t.Helper()
		c := dialWrite(t, ln, append(hdr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"...))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return string(body)
	}
	if got := get(proxyproto.LocalHeader()); got != "no identity: "+identity.ErrNoIdentity.Error() {
		t.Fatalf("LOCAL from a loopback load balancer: %q", got)
	}
	// A LOCAL header with a TCP4 block that names a loopback source is
	// still LOCAL: the block is ignored, not believed.
	local4 := proxyproto.AppendHeader(nil, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), nil)
	local4[12] = 0x20
	if got := get(local4); !strings.HasPrefix(got, "no identity") {
		t.Fatalf("LOCAL TCP4 from a loopback load balancer: %q", got)
	}
	// Control: PROXY with a client address is that client (not loopback).
	if got := get(proxyproto.AppendHeader(nil, netip.MustParseAddrPort("203.0.113.7:51234"), netip.MustParseAddrPort("10.0.0.5:443"), nil)); !strings.HasPrefix(got, "no identity") {
		t.Fatalf("PROXY: %q", got)
	}
}

// ppListen listens on loopback with the PROXY protocol trusting cidrs.
func ppListen(t *testing.T, timeout time.Duration, cidrs ...string) net.Listener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxyproto.Listen(raw, proxyproto.Config{Trusted: cidrs, HeaderTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
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
