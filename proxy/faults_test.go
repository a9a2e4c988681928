package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

func faultGate(op string, gate chan struct{}) bedrocktest.Fault {
	return bedrocktest.Fault{Op: op, Gate: gate}
}

// Upstream failures reach the SDK as the right typed errors.
func TestUpstreamFaultsAreTyped(t *testing.T) {
	cases := []struct {
		name   string
		fault  bedrocktest.Fault
		stream bool
		check  func(error) bool
		want   string
	}{
		{"throttle", bedrocktest.Fault{Op: "Converse", Status: 429, ErrorType: "ThrottlingException", Message: "Too many requests"}, false,
			func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }, "ThrottlingException"},
		{"internal error", bedrocktest.Fault{Op: "Converse", Status: 500, ErrorType: "InternalServerException", Message: "boom"}, false,
			func(err error) bool { var e *types.InternalServerException; return errors.As(err, &e) }, "InternalServerException"},
		{"unavailable", bedrocktest.Fault{Op: "Converse", Status: 503, ErrorType: "ServiceUnavailableException", Message: "down"}, false,
			func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }, "ServiceUnavailableException"},
		{"reset before response", bedrocktest.Fault{Op: "Converse", ResetAfterEvents: -1}, false,
			func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }, "ServiceUnavailableException"},
		{"mid-stream exception", bedrocktest.Fault{Op: "ConverseStream", MidStreamException: "modelStreamErrorException"}, true,
			func(err error) bool { var e *types.ModelStreamErrorException; return errors.As(err, &e) }, "modelStreamErrorException"},
		{"reset mid-stream", bedrocktest.Fault{Op: "ConverseStream", ResetAfterEvents: 2}, true,
			func(err error) bool { var e *types.InternalServerException; return errors.As(err, &e) }, "InternalServerException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t)
			e.emu.Inject(tc.fault)
			c := e.client(t, nil)
			var err error
			if tc.stream {
				out, serr := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if serr != nil {
					t.Fatalf("ConverseStream: %v", serr)
				}
				for range out.GetStream().Events() {
				}
				err = out.GetStream().Err()
			} else {
				_, err = c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
			}
			if err == nil || !tc.check(err) {
				t.Fatalf("want %s, got %T: %v", tc.want, err, err)
			}
			recs := e.audit.wait(t, 1)
			if !strings.EqualFold(recs[0].ErrorType, tc.want) {
				t.Errorf("audit error type %q, want %q", recs[0].ErrorType, tc.want)
			}
		})
	}
}

// An unreachable upstream is a typed, retryable ServiceUnavailableException.
func TestUpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	policy := strings.Replace(basePolicy, `"${UPSTREAM}"`, `"http://`+addr+`"`, 1)
	e := startEnv(t, withPolicy(policy))
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	var su *types.ServiceUnavailableException
	if !errors.As(err, &su) || !strings.Contains(su.ErrorMessage(), "connection refused") {
		t.Fatalf("want ServiceUnavailableException naming the refusal, got %v", err)
	}
}

// Bodies over the limit get ValidationException and nothing is forwarded,
// whether or not the client declared a Content-Length.
func TestOversizeBodyRejected(t *testing.T) {
	policy := basePolicy + "limits: {max_body_bytes: 2048}\n"
	e := startEnv(t, withPolicy(policy))
	big := strings.Repeat("x", 4096)
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(big)})
	var ve *types.ValidationException
	if !errors.As(err, &ve) || !strings.Contains(ve.ErrorMessage(), "2048") {
		t.Fatalf("want ValidationException naming the limit, got %v", err)
	}
	// Chunked, no Content-Length: the limit is enforced while reading.
	req, _ := http.NewRequest("POST", e.endpoint+"/model/"+haiku+"/converse", strings.NewReader(big))
	req.ContentLength = -1
	req.Body = io.NopCloser(strings.NewReader(big))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "ValidationException" {
		t.Fatalf("chunked oversize: status %d type %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("upstream saw %d calls", n)
	}
}

// Upstream URLs that would receive Warden's signed requests in the clear or
// at a non-AWS host are refused at start.
func TestUpstreamURLValidation(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"", false, true},
		{"https://bedrock-runtime.us-east-1.amazonaws.com", false, true},
		{"https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com", false, true},
		{"https://vpce-0abc123-xyz.bedrock-runtime.us-east-1.vpce.amazonaws.com", false, true},
		{"https://bedrock-runtime.us-east-1.api.aws", false, true},
		{"http://127.0.0.1:9999", false, false},
		{"http://bedrock-runtime.us-east-1.amazonaws.com", false, false},
		{"https://evil.example.com", false, false},
		{"https://bedrock-runtime.us-east-1.amazonaws.com.evil.com", false, false},
		{"http://127.0.0.1:9999", true, true},
		{"https://user:pw@bedrock-runtime.us-east-1.amazonaws.com", false, false},
	} {
		policy := strings.Replace(basePolicy, "${CONTROL_PLANE}", "http://127.0.0.1:1", 1)
		policy = strings.Replace(policy, `url: "${UPSTREAM}", insecure: true`, `url: "`+tc.url+`", insecure: `+map[bool]string{true: "true", false: "false"}[tc.insecure], 1)
		cfg, err := config.ParseConfig([]byte(policy))
		if err == nil {
			_, err = proxy.New(context.Background(), proxy.Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), Audit: newRecorder()})
		}
		if (err == nil) != tc.ok {
			t.Errorf("url %q insecure %v: err %v, want ok=%v", tc.url, tc.insecure, err, tc.ok)
		}
		if err != nil && tc.url == "http://127.0.0.1:9999" && !strings.Contains(err.Error(), "insecure") {
			t.Errorf("error for plain http does not explain the fix: %v", err)
		}
	}
}

// Over TLS the endpoint negotiates h2 by ALPN (what the JS SDK uses) and
// HTTP/1.1 for clients that want it.
func TestTLSEndpointALPN(t *testing.T) {
	cert, pool := selfSigned(t)
	e := startEnv(t, withTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		hc := &http.Client{Transport: tr}
		var proto string
		hc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := tr.RoundTrip(r)
			if err == nil {
				proto = resp.Proto
			}
			return resp, err
		})
		if _, err := e.client(t, hc).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
		if proto != want {
			t.Errorf("negotiated %s, want %s", proto, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// A server without an audit writer would forward calls no record describes:
// New refuses to build one.
func TestNewRequiresAudit(t *testing.T) {
	policy := strings.Replace(basePolicy, "${CONTROL_PLANE}", "http://127.0.0.1:1", 1)
	policy = strings.Replace(policy, "${UPSTREAM}", "http://127.0.0.1:9999", 1)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	_, err = proxy.New(context.Background(), proxy.Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	if err == nil || !strings.Contains(err.Error(), "Options.Audit is required") {
		t.Errorf("New without Audit: err %v, want Options.Audit is required", err)
	}
}
