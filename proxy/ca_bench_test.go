package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"

	"github.com/warden-egress/warden/proxy/mitm"
)

// What interception costs per connection: the leaf lookup (warm cache), the
// leaf signature (cold cache), and a full TLS handshake against Warden's
// intercepting TLS config compared with the same handshake on a static,
// pre-built certificate. `warden-bench proxy` measures the same through real
// CONNECTs; these isolate the TLS part.

const benchHost = "bedrock-runtime.us-east-1.amazonaws.com"

func newBenchCA(b *testing.B) *mitm.CA {
	b.Helper()
	ca, err := mitm.New(mitm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return ca
}

func BenchmarkLeafWarm(b *testing.B) {
	ca := newBenchCA(b)
	if _, err := ca.Leaf(benchHost); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Leaf(benchHost); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllowed is the name-constraint check every Leaf call makes, cache
// hit or not.
func BenchmarkAllowed(b *testing.B) {
	ca := newBenchCA(b)
	b.ReportAllocs()
	for b.Loop() {
		if !ca.Allowed(benchHost) {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkLeafCold signs for a host the CA has never seen each time: a
// P-256 key pair, an ECDSA signature and the parse of the result.
func BenchmarkLeafCold(b *testing.B) {
	ca := newBenchCA(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := ca.Leaf(fmt.Sprintf("vpce-%x.bedrock-runtime.us-east-1.vpce.amazonaws.com", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInterceptHandshake is one full TLS handshake (no resumption) over
// an in-memory connection, client and server both in the loop; the client
// uses Go's defaults (as the AWS SDK does) and verifies the chain against the
// CA. warm-leaf is Warden's interceptTLS with the leaf cached; static-cert
// the same handshake on a pre-built certificate; cold-leaf a new host (and
// so a new signature) each time.
func BenchmarkInterceptHandshake(b *testing.B) {
	ca := newBenchCA(b)
	leaf, err := ca.Leaf(benchHost)
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{ca: ca}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	static := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, Certificates: []tls.Certificate{*leaf}}
	client := &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}

	handshake := func(b *testing.B, server *tls.Config, host string) {
		cc, sc := net.Pipe()
		defer cc.Close()
		defer sc.Close()
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(sc, server).Handshake() }()
		cfg := client.Clone()
		cfg.ServerName = host
		if err := tls.Client(cc, cfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.Run("warm-leaf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			handshake(b, s.interceptTLS(benchHost), benchHost)
		}
	})
	b.Run("static-cert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			handshake(b, static, benchHost)
		}
	})
	i := 0 // across calls of the sub-benchmark: the CA is shared, every host must be new
	b.Run("cold-leaf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i++
			host := fmt.Sprintf("vpce-%x.bedrock-runtime.us-east-1.vpce.amazonaws.com", i)
			handshake(b, s.interceptTLS(host), host)
		}
	})
}
