package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

const bedrockHost = "bedrock-runtime.us-east-1.amazonaws.com"

// writeRecorder keeps a copy of everything written through it: the client's
// side of the wire, to compare with what peekServerName says it read.
type writeRecorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	return w.Conn.Write(p)
}

func (w *writeRecorder) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// selfSigned is a leaf for name, and a pool that trusts it.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// pipe is a connected pair whose ends are closed when the test ends; a
// deadline bounds every read so a peek that waits forever fails the test
// instead of hanging it.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	client, server = net.Pipe()
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	deadline := time.Now().Add(20 * time.Second)
	_ = client.SetDeadline(deadline)
	_ = server.SetDeadline(deadline)
	return client, server
}

// A real Go TLS client's hello: peekServerName returns its SNI and exactly
// the bytes the client wrote, and a TLS server reading through a
// redirectedConn that replays them completes the handshake with that client
// (TLS 1.3 and 1.2, h2 by ALPN) as if nothing had been read.
func TestPeekServerNameReplaysGoClientHello(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint16
		sni     string
	}{
		{"tls13", tls.VersionTLS13, bedrockHost},
		{"tls12", tls.VersionTLS12, bedrockHost},
		{"other-host", tls.VersionTLS13, "example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, pool := selfSigned(t, tc.sni)
			cc, sc := pipe(t)
			rec := &writeRecorder{Conn: cc}
			client := tls.Client(rec, &tls.Config{
				ServerName: tc.sni,
				RootCAs:    pool,
				MinVersion: tc.version,
				MaxVersion: tc.version,
				NextProtos: []string{"h2", "http/1.1"},
			})
			clientErr := make(chan error, 1)
			go func() {
				if err := client.Handshake(); err != nil {
					clientErr <- err
					return
				}
				_, err := client.Write([]byte("ping"))
				clientErr <- err
			}()

			sni, hello, err := peekServerName(sc)
			if err != nil {
				t.Fatalf("peekServerName: %v", err)
			}
			if sni != tc.sni {
				t.Errorf("SNI = %q, want %q", sni, tc.sni)
			}
			// The client is now waiting for the ServerHello: everything
			// it wrote is the hello, and all of it was read.
			if sent := rec.bytes(); !bytes.Equal(hello, sent) {
				t.Fatalf("peeked %d bytes, the client sent %d; they differ", len(hello), len(sent))
			}
			if len(hello) < 5 || hello[0] != 0x16 {
				t.Fatalf("peeked bytes do not start with a TLS handshake record: % x", hello[:min(len(hello), 8)])
			}

			rc := &redirectedConn{Conn: sc, pending: hello}
			server := tls.Server(rc, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
			if err := server.Handshake(); err != nil {
				t.Fatalf("server handshake over the replayed hello: %v", err)
			}
			if got := server.ConnectionState().ServerName; got != tc.sni {
				t.Errorf("server saw SNI %q, want %q", got, tc.sni)
			}
			if got := server.ConnectionState().Version; got != tc.version {
				t.Errorf("negotiated version %x, want %x", got, tc.version)
			}
			if got := server.ConnectionState().NegotiatedProtocol; got != "h2" {
				t.Errorf("ALPN = %q, want h2", got)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("application data after the replay: %q, %v", buf, err)
			}
			if err := <-clientErr; err != nil {
				t.Fatalf("client: %v", err)
			}
		})
	}
}

// A hello without SNI (Go sends none when ServerName is empty or an IP
// address) is read without error and reports an empty name, which the
// transparent listener refuses.
func TestPeekServerNameNoSNI(t *testing.T) {
	for _, name := range []string{"", "10.1.2.3", "::1"} {
		t.Run("ServerName="+name, func(t *testing.T) {
			cc, sc := pipe(t)
			go func() {
				_ = tls.Client(cc, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
			}()
			sni, hello, err := peekServerName(sc)
			if err != nil {
				t.Fatalf("peekServerName: %v", err)
			}
			if sni != "" {
				t.Errorf("SNI = %q, want none", sni)
			}
			if len(hello) == 0 {
				t.Error("no hello bytes returned")
			}
		})
	}
}

// Anything that is not a TLS ClientHello is an error, never a name: plain
// HTTP (what a looped-back plain-HTTP upstream connection would send), an
// SSH banner, a truncated hello, a record that is not a handshake, a hello
// that never ends (bounded by maxHelloBytes), and an immediate close.
func TestPeekServerNameGarbage(t *testing.T) {
	hello := goClientHello(t, bedrockHost)
	endless := func(w io.Writer) {
		// A ClientHello that claims 65535 bytes, spread over full records.
		rec := make([]byte, 5+1<<14)
		rec[0], rec[1], rec[2] = 0x16, 0x03, 0x01
		binary.BigEndian.PutUint16(rec[3:5], 1<<14)
		rec[5], rec[6], rec[7], rec[8] = 0x01, 0x00, 0xff, 0xff
		for i := 0; i < 8; i++ {
			if _, err := w.Write(rec); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name  string
		write func(io.Writer)
	}{
		{"http", func(w io.Writer) {
			_, _ = io.WriteString(w, "POST /model/x/converse HTTP/1.1\r\nHost: 10.213.0.1:443\r\n\r\n")
		}},
		{"ssh", func(w io.Writer) { _, _ = io.WriteString(w, "SSH-2.0-OpenSSH_9.6\r\n") }},
		{"truncated-hello", func(w io.Writer) { _, _ = w.Write(hello[:len(hello)/2]) }},
		{"alert-record", func(w io.Writer) { _, _ = w.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}) }},
		{"endless-hello", endless},
		{"empty", func(io.Writer) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := pipe(t)
			go func() {
				tc.write(cc)
				_ = cc.Close()
			}()
			counted := &countingConn{Conn: sc}
			sni, got, err := peekServerName(counted)
			if counted.n > maxHelloBytes {
				t.Errorf("read %d bytes looking for a hello; the bound is %d", counted.n, maxHelloBytes)
			}
			if err == nil {
				t.Fatalf("peekServerName = %q, %d bytes, nil error; want an error", sni, len(got))
			}
			t.Logf("error: %v", err)
			if sni != "" || got != nil {
				t.Errorf("on error: SNI %q, %d bytes; want none", sni, len(got))
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("peekServerName waited for the deadline instead of failing: %v", err)
			}
		})
	}
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += n
	return n, err
}

// goClientHello is the first flight of a Go TLS client for sni.
func goClientHello(t *testing.T, sni string) []byte {
	t.Helper()
	cc, sc := pipe(t)
	go func() { _ = tls.Client(cc, &tls.Config{ServerName: sni}).Handshake() }()
	_, hello, err := peekServerName(sc)
	if err != nil {
		t.Fatal(err)
	}
	return hello
}

// redirectedConn hands out the pending bytes first, across as many short
// reads as it takes, then reads the connection.
func TestRedirectedConnReplay(t *testing.T) {
	cc, sc := pipe(t)
	go func() {
		_, _ = cc.Write([]byte("-after"))
		_ = cc.Close()
	}()
	rc := &redirectedConn{Conn: sc, pending: []byte("replayed")}
	var got []byte
	buf := make([]byte, 3)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "replayed-after" {
		t.Fatalf("read %q, want %q", got, "replayed-after")
	}
}

// A transparent tunnel goes only where its SNI name resolves: a tunnel name
// in front of another address (a Bedrock endpoint, say) is refused.
func TestCheckTunnelAddr(t *testing.T) {
	if err := checkTunnelAddr("localhost", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("localhost → 127.0.0.1 refused: %v", err)
	}
	for _, a := range []string{"10.9.9.9", "52.94.133.131", "::ffff:10.9.9.9"} {
		if err := checkTunnelAddr("localhost", netip.MustParseAddr(a)); err == nil {
			t.Errorf("localhost accepted as a name for %s", a)
		}
	}
	if err := checkTunnelAddr("no-such-host.invalid", netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("an unresolvable name was accepted")
	}
}
