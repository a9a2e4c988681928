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
	"go.uber.org/zap"
)

// ServeProxy serves forward-proxy mode (HTTPS_PROXY) on ln until Shutdown.
// Only CONNECT is accepted: to a Bedrock runtime host the CA may sign for,
// the connection is intercepted (goproxy MITM, HTTP/1.1 and h2 by ALPN) and
// every request on it runs through the same pipeline as endpoint mode; to a
// host in egress.tunnel it becomes an untouched tunnel; anything else, and
// every plain-HTTP proxy request, gets 403. Warden is never an open proxy.
func (s *Server) ServeProxy(ln net.Listener) error {
	if s.ca == nil {
		return errors.New("proxy: forward-proxy mode needs the MITM CA (listen.proxy was not configured)")
	}
	ln, err := ProxyProtocolListener(ln, s.cfg.Listen.ProxyProtocol)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s.ProxyHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("forward-proxy")),
	}
	s.track(hs)
	err = hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ProxyHandler is the forward proxy's HTTP handler (for tests and embedding).
func (s *Server) ProxyHandler() http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.AllowHTTP2 = true
	// Warden's own pipeline chooses which headers go upstream.
	gp.KeepHeader = true
	gp.Logger = goproxyLogger{s.log.Named("goproxy").Sugar()}
	// Nothing may leave through goproxy's own transport (every intercepted
	// request has a RoundTripper), and tunnels are dialled directly, never
	// through a proxy from Warden's environment.
	gp.Tr = &http.Transport{Proxy: nil, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("warden: goproxy's transport is disabled")
	}}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	gp.ConnectDial = dialer.Dial
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		h, port, _ := splitHostPort(host)
		switch act, rh := s.classify(h, port); act {
		case interceptHost:
			v := &via{mode: "proxy", host: rh}
			handler := func(w http.ResponseWriter, r *http.Request) {
				// goproxy's MITM connections are hijacked, so http.Server.Shutdown
				// does not wait for them; Shutdown waits for these calls instead.
				defer s.inflight.Done()
				s.serve(w, r, v)
			}
			ctx.RoundTripper = goproxy.RoundTripperFunc(func(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
				s.inflight.Add(1)
				if streamingPath(req.URL.Path) {
					return serveInProcess(handler, req)
				}
				return serveBuffered(handler, req)
			})
			tlsCfg := s.interceptTLS(rh.Host)
			return &goproxy.ConnectAction{Action: goproxy.ConnectMitm,
				TLSConfig: func(string, *goproxy.ProxyCtx) (*tls.Config, error) { return tlsCfg, nil }}, host
		case tunnelHost:
			return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
		}
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host // the front door refused it already
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
		act, _ := s.classify(h, port)
		switch act {
		case refuseHost:
			s.metrics.connections.WithLabelValues("proxy", "refuse").Inc()
			s.log.Info("CONNECT refused", zap.String("target", r.Host), zap.String("client", r.RemoteAddr))
			refuseProxy(w, fmt.Sprintf("warden: CONNECT to %s refused: not a Bedrock runtime host this Warden intercepts, and not in egress.tunnel", r.Host))
			return
		case interceptHost:
			s.metrics.connections.WithLabelValues("proxy", "intercept").Inc()
		case tunnelHost:
			s.metrics.connections.WithLabelValues("proxy", "tunnel").Inc()
			s.log.Info("CONNECT tunnelled", zap.String("target", r.Host), zap.String("client", r.RemoteAddr))
		}
		gp.ServeHTTP(w, r)
	})
}

func refuseProxy(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintln(w, msg)
}

type goproxyLogger struct{ l *zap.SugaredLogger }

func (g goproxyLogger) Printf(format string, v ...any) { g.l.Warnf(format, v...) }
