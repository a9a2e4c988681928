package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/testenv"
	"github.com/warden-egress/warden/proxy"
)

// transparentPolicy serves only the transparent listener; nothing in these
// tests reaches the upstream.
const transparentPolicy = `
version: 1
listen: {transparent: 127.0.0.1:0}
upstream: {region: us-east-1, url: "http://127.0.0.1:9", insecure: true}
identity: {static: {app: chatbot}}
apps:
  - name: chatbot
    allow_weak_identity: true
    match: {tags: {app: chatbot}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse, ConverseStream]}
`

func newTransparentServer(t *testing.T, policy string) *proxy.Server {
	t.Helper()
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	srv, err := proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider("AKIATRANSPARENT00001", "secret", ""),
		Audit:       newRecorder(),
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// counter reads warden_intercept_connections_total{mode, action}.
func counter(t *testing.T, reg *prometheus.Registry, mode, action string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "warden_intercept_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["mode"] == mode && labels["action"] == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// readCounter counts what the peer sent: a refused connection must carry
// no TLS answer at all, not even an alert.
type readCounter struct {
	net.Conn
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A connection dialled straight to the transparent port, not sent there by
// an iptables REDIRECT, is closed without a TLS answer and counted as
// refused — whatever it sends, even a valid ClientHello for a Bedrock host
// with Warden's CA trusted. (On a non-redirected socket SO_ORIGINAL_DST
// reports the socket's own address, or fails when conntrack is not tracking
// the connection; both refuse. Off Linux there is no SO_ORIGINAL_DST at all.)
// Without this, anyone able to reach the port could pick the host Warden
// believes it intercepts.
func TestTransparentRefusesDirectConnections(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				if network == "tcp6" {
					testenv.Missing(t, "no IPv6 loopback here: %v", err)
				}
				t.Fatal(err)
			}
			srv := newTransparentServer(t, transparentPolicy)
			reg := srv.Registry()
			served := make(chan error, 1)
			go func() { served <- srv.ServeTransparent(ln) }()
			pool := x509.NewCertPool()
			pool.AddCert(srv.CA().Certificate())

			cases := []struct {
				name string
				talk func(c net.Conn) error // returns the error the client saw
			}{
				{"tls-bedrock-sni", func(c net.Conn) error {
					return tls.Client(c, &tls.Config{ServerName: "bedrock-runtime.us-east-1.amazonaws.com", RootCAs: pool}).Handshake()
				}},
				{"tls-other-sni", func(c net.Conn) error {
					return tls.Client(c, &tls.Config{ServerName: "example.com", RootCAs: pool}).Handshake()
				}},
				{"tls-no-sni", func(c net.Conn) error {
					return tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
				}},
				{"plain-http", func(c net.Conn) error {
					if _, err := io.WriteString(c, "POST /model/m/converse HTTP/1.1\r\nHost: bedrock-runtime.us-east-1.amazonaws.com\r\nContent-Length: 0\r\n\r\n"); err != nil {
						return err
					}
					_, err := io.ReadAll(c)
					if err == nil {
						err = io.EOF // closed cleanly; ReadAll hides it
					}
					return err
				}},
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c, err := net.Dial(network, ln.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					rc := &readCounter{Conn: c}
					err = tc.talk(rc)
					if err == nil {
						t.Fatal("the direct connection was answered; want it closed")
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("the direct connection was left open: %v", err)
					}
					if n := rc.n.Load(); n != 0 {
						t.Fatalf("Warden sent %d bytes on a refused connection; want none: %v", n, err)
					}
					// refuse counts before it closes, so the close the client saw
					// implies the count.
					if got := counter(t, reg, "transparent", "refuse"); got != float64(i+1) {
						t.Errorf("refuse count = %v, want %d", got, i+1)
					}
				})
			}
			if got := counter(t, reg, "transparent", "intercept"); got != 0 {
				t.Errorf("intercept count = %v, want 0", got)
			}
			if got := counter(t, reg, "transparent", "tunnel"); got != 0 {
				t.Errorf("tunnel count = %v, want 0", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("ServeTransparent after Shutdown: %v", err)
				}
			case <-ctx.Done():
				t.Error("ServeTransparent did not return after Shutdown")
			}
		})
	}
}

// The transparent listener needs the MITM CA, which exists only when
// listen.transparent (or listen.proxy) is configured.
func TestServeTransparentWithoutCA(t *testing.T) {
	policy := strings.Replace(transparentPolicy, "listen: {transparent: 127.0.0.1:0}", "listen: {endpoint: 127.0.0.1:0}", 1)
	srv := newTransparentServer(t, policy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.ServeTransparent(ln); err == nil || !strings.Contains(err.Error(), "CA") {
		t.Fatalf("ServeTransparent without a CA: %v, want an error naming the CA", err)
	}
}
