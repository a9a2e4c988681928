package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock"
)

// helloTimeout bounds how long a redirected client may take to send its
// TLS ClientHello; tunnelLookupTimeout bounds the DNS check of a tunnel.
const (
	helloTimeout        = 10 * time.Second
	tunnelLookupTimeout = 5 * time.Second
	maxHelloBytes       = 16 << 10
)

// ServeTransparent serves connections that iptables redirected to ln (see
// `warden iptables`). For each it reads the original destination
// (SO_ORIGINAL_DST) and the TLS SNI: a Bedrock runtime host is intercepted
// exactly as in forward-proxy mode; a host in egress.tunnel is tunnelled to
// the original destination, but only if that address is one the name
// resolves to (an SNI is the client's word, and a Bedrock address behind a
// tunnel name would be a way around Warden); anything else is closed.
func (s *Server) ServeTransparent(ln net.Listener) error {
	if s.ca == nil {
		return errors.New("proxy: transparent mode needs the MITM CA (listen.transparent was not configured)")
	}
	ln = s.limitListener("transparent", ln)
	hs, intercepted := s.interceptServer("transparent", ln.Addr())
	intercepted.ln = ln
	s.track(hs)
	loopback := false
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		loopback = ap.Addr().Unmap().IsLoopback()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				intercepted.fail(err)
				return
			}
			go s.handleRedirected(c, loopback, intercepted)
		}
	}()
	err := hs.Serve(intercepted)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type viaKey struct{}

// interceptServer serves connections already classified for interception
// (TLS to a Bedrock runtime host, from a forward-proxy CONNECT or an
// iptables redirect), fed through the returned queue, under the same limits
// as the endpoint listener.
func (s *Server) interceptServer(name string, addr net.Addr) (*http.Server, *connQueue) {
	q := &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	hs := s.newHTTPServer(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := r.Context().Value(viaKey{}).(*via)
		if v == nil { // cannot happen: every queued connection carries one
			writeAPIError(w, newRequestID(), bedrock.InternalServer("warden: intercepted connection without its origin"))
			return
		}
		s.serve(w, r, v)
	}), &p)
	// Serve sees *tls.Conn values and handshakes them itself; with h2 in
	// NextProtos it also speaks HTTP/2 on them.
	hs.TLSConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		ctx = withConnState(ctx, c)
		if tc, ok := c.(*tls.Conn); ok {
			if rc, ok := tc.NetConn().(*redirectedConn); ok {
				return context.WithValue(ctx, viaKey{}, rc.via)
			}
		}
		return ctx
	}
	return hs, q
}

// handleRedirected classifies one redirected connection and hands it on.
func (s *Server) handleRedirected(c net.Conn, loopback bool, q *connQueue) {
	refuse := func(why string, fields ...zap.Field) {
		s.metrics.connections.WithLabelValues("transparent", "refuse").Inc()
		s.log.Info("transparent connection refused: "+why, append(fields, zap.String("client", c.RemoteAddr().String()))...)
		_ = c.Close()
	}
	dst, err := originalDst(c)
	if err != nil {
		refuse("no original destination", zap.Error(err))
		return
	}
	if local, _ := netip.ParseAddrPort(c.LocalAddr().String()); local == dst {
		// Nothing redirected this connection: someone dialled the port directly.
		refuse("not a redirected connection", zap.Stringer("dst", dst))
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	sni, hello, err := peekServerName(c)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		refuse("no TLS ClientHello", zap.Stringer("dst", dst), zap.Error(err))
		return
	}
	if sni == "" {
		refuse("the ClientHello names no server (SNI)", zap.Stringer("dst", dst))
		return
	}
	rc := &redirectedConn{Conn: c, pending: hello}
	act, rh := s.classify(sni, int(dst.Port()))
	switch act {
	case interceptHost:
		s.metrics.connections.WithLabelValues("transparent", "intercept").Inc()
		// Only processes in Warden's own network namespace can reach a
		// loopback listener through an OUTPUT-chain REDIRECT.
		rc.via = &via{mode: "transparent", host: rh, redirected: loopback}
		if !q.put(tls.Server(rc, s.interceptTLS(rh.Host))) {
			_ = c.Close()
		}
	case tunnelHost:
		if err := checkTunnelAddr(sni, dst.Addr()); err != nil {
			refuse("tunnel address check failed", zap.String("sni", sni), zap.Stringer("dst", dst), zap.Error(err))
			return
		}
		s.metrics.connections.WithLabelValues("transparent", "tunnel").Inc()
		s.log.Info("transparent connection tunnelled", zap.String("sni", sni), zap.Stringer("dst", dst))
		s.tunnel(rc, dst)
	default:
		refuse("not a Bedrock runtime host this Warden intercepts, and not in egress.tunnel", zap.String("sni", sni), zap.Stringer("dst", dst))
	}
}

// checkTunnelAddr requires that name resolves to addr.
func checkTunnelAddr(name string, addr netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), tunnelLookupTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Unmap() == addr.Unmap() {
			return nil
		}
	}
	return fmt.Errorf("%s resolves to %v, not to the connection's destination %s", name, addrs, addr)
}

// tunnel splices c to dst. Warden's own connection is exempt from the
// redirect by the owner match in `warden iptables`.
func (s *Server) tunnel(c *redirectedConn, dst netip.AddrPort) {
	defer c.Close()
	up, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial("tcp", dst.String())
	if err != nil {
		s.log.Info("tunnel dial failed", zap.Stringer("dst", dst), zap.Error(err))
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c.Conn, up); closeWrite(c.Conn); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// peekServerName reads a TLS ClientHello from c without answering it and
// returns its SNI and the bytes read, to be replayed.
func peekServerName(c net.Conn) (string, []byte, error) {
	rec := &recordingConn{r: io.LimitReader(c, maxHelloBytes)}
	var sni string
	errStop := errors.New("hello read")
	err := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = h.ServerName
		return nil, errStop
	}}).Handshake()
	if !errors.Is(err, errStop) && sni == "" {
		if err == nil {
			err = errors.New("handshake ended without a ClientHello")
		}
		return "", nil, err
	}
	return sni, rec.buf.Bytes(), nil
}

// recordingConn feeds a throwaway TLS server: reads are recorded, writes
// (the alert it sends when stopped) go nowhere.
type recordingConn struct {
	net.Conn // nil: only Read and Write are called
	r        io.Reader
	buf      bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf.Write(p[:n])
	return n, err
}
func (c *recordingConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

// redirectedConn replays the peeked ClientHello, then reads the connection.
type redirectedConn struct {
	net.Conn
	pending []byte
	via     *via
}

// NetConn is the connection under the redirect (connWatcher finds its socket).
func (c *redirectedConn) NetConn() net.Conn { return c.Conn }

func (c *redirectedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// connQueue is the net.Listener the transparent http.Server serves:
// connections already classified for interception.
type connQueue struct {
	addr  net.Addr
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error
}

func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.once.Do(func() { close(q.done) })
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.err == nil || errors.Is(q.err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		return nil, q.err
	}
}

func (q *connQueue) Close() error {
	var err error
	if q.ln != nil { // transparent: the queue owns the listener
		err = q.ln.Close()
	}
	q.fail(net.ErrClosed)
	return err
}

func (q *connQueue) Addr() net.Addr { return q.addr }
