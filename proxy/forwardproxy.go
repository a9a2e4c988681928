package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/warden-egress/warden/proxy/proxyproto"
	"go.uber.org/zap"
)

// ServeProxy serves forward-proxy mode (HTTPS_PROXY) on ln until Shutdown.
// Only CONNECT is accepted: to a Bedrock runtime host the CA may sign for,
// the connection is intercepted (TLS terminated with the CA, HTTP/1.1 and h2
// by ALPN) and every request on it runs through the same pipeline as
// endpoint mode; to a host in egress.tunnel it becomes an untouched tunnel
// (goproxy); anything else, and every plain-HTTP proxy request, gets 403.
// Warden is never an open proxy.
//
// Intercepted connections are served by Warden's own http.Server, as in
// transparent mode, not by goproxy's MITM loop: that loop reads requests
// with no header size or time bound and serves h2 with a default
// http2.Server no option reaches, so a client could send a 300 MiB header
// inside the tunnel. Here the tunnel gets every limit the endpoint has.
func (s *Server) ServeProxy(ln net.Listener) error {
	if s.ca == nil {
		return errors.New("proxy: forward-proxy mode needs the MITM CA (listen.proxy was not configured)")
	}
	ln, err := proxyproto.Listen(ln, s.cfg.Listen.ProxyProtocol)
	if err != nil {
		return err
	}
	ln = s.limitListener("proxy", ln)
	ihs, queue := s.interceptServer("proxy-mitm", ln.Addr())
	hs := s.newHTTPServer("forward-proxy", s.proxyHandler(queue), nil)
	s.track(hs)
	s.track(ihs)
	go func() { _ = ihs.Serve(queue) }()
	err = hs.Serve(ln)
	queue.fail(net.ErrClosed)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// proxyHandler is the forward proxy's front door: CONNECT only.
func (s *Server) proxyHandler(queue *connQueue) http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{s.log.Named("goproxy").Sugar()}
	// goproxy only tunnels: nothing may leave through its own transport, and
	// tunnels are dialled directly, never through a proxy from Warden's
	// environment.
	gp.Tr = &http.Transport{Proxy: nil, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("warden: goproxy's transport is disabled")
	}}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	gp.ConnectDial = dialer.Dial
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		h, port, _ := splitHostPort(host)
		if act, _ := s.classify(h, port); act == tunnelHost {
			return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
		}
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host // the front door decided already
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			s.metrics.connections.WithLabelValues("proxy", "refuse").Inc()
			refuseProxy(w, "warden: this proxy only accepts CONNECT to Bedrock runtime hosts (and hosts in egress.tunnel); plain-HTTP proxying is refused")
			return
		}
		h, port, ok := splitHostPort(r.Host)
		if !ok {
			s.metrics.connections.WithLabelValues("proxy", "refuse").Inc()
			refuseProxy(w, fmt.Sprintf("warden: CONNECT target %q is not host:port", r.Host))
			return
		}
		act, rh := s.classify(h, port)
		switch act {
		case refuseHost:
			s.metrics.connections.WithLabelValues("proxy", "refuse").Inc()
			s.log.Info("CONNECT refused", zap.String("target", r.Host), zap.String("client", r.RemoteAddr))
			refuseProxy(w, fmt.Sprintf("warden: CONNECT to %s refused: not a Bedrock runtime host this Warden intercepts, and not in egress.tunnel", r.Host))
		case interceptHost:
			s.metrics.connections.WithLabelValues("proxy", "intercept").Inc()
			s.intercept(w, queue, &via{mode: "proxy", host: rh})
		case tunnelHost:
			s.metrics.connections.WithLabelValues("proxy", "tunnel").Inc()
			s.log.Info("CONNECT tunnelled", zap.String("target", r.Host), zap.String("client", r.RemoteAddr))
			gp.ServeHTTP(w, r)
		}
	})
}

// intercept takes over a CONNECT's connection, answers 200 and hands it,
// wrapped in TLS with a certificate for the Bedrock host, to the
// intercepting server.
func (s *Server) intercept(w http.ResponseWriter, queue *connQueue, v *via) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		refuseProxy(w, "warden: CONNECT must arrive over HTTP/1.1")
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		s.log.Warn("CONNECT: hijack failed", zapErr(err))
		return
	}
	// A ClientHello sent in the same write as the CONNECT is already read.
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ = rw.Reader.Peek(n)
		pending = append([]byte(nil), pending...)
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		_ = conn.Close()
		return
	}
	ic := &redirectedConn{Conn: conn, pending: pending, via: v}
	if !queue.put(tls.Server(ic, s.interceptTLS(v.host.Host))) {
		_ = conn.Close()
	}
}

func refuseProxy(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintln(w, msg)
}

type goproxyLogger struct{ l *zap.SugaredLogger }

func (g goproxyLogger) Printf(format string, v ...any) { g.l.Warnf(format, v...) }
