package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/smithy-go"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
	"github.com/warden-egress/warden/proxy/proxyproto"
)

// Warden's own credentials for ec2:DescribeNetworkInterfaces, taken from the
// environment as in production (the default credential chain).
const (
	ec2E2EKey    = "AKIAWARDENEC2E2E0001"
	ec2E2ESecret = "warden-ec2-e2e-secret"
	ec2Account   = "111122223333"
)

// ec2Policy: one app selecting the ENI's owner account (strong) and its
// team tag (weak, hence allow_weak_identity).
const ec2Policy = `
version: 1
listen: {endpoint: 127.0.0.1:0${PROXY_PROTOCOL}}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity:
  sources: [ec2]
  trusted_cidrs: [${TRUSTED}]
  ec2: {endpoint: "${EC2}", cache_ttl: 300ms, negative_ttl: 200ms, stale_ttl: 1m}
apps:
  - name: search
    allow_weak_identity: true
    match: {tags: {aws.account: "111122223333", aws.tag.team: search}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse]
`

type ec2Env struct {
	*env
	ec2 *bedrocktest.EC2Server
	ln  net.Listener // Warden's endpoint listener
}

// startEC2Env runs the runtime emulator, the EC2 emulator and Warden with
// the ec2 identity source.
func startEC2Env(t *testing.T, trusted, proxyProtocol string) *ec2Env {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": ec2E2EKey, "AWS_SECRET_ACCESS_KEY": ec2E2ESecret, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	e := &ec2Env{env: &env{emu: newEmulator(t), audit: newRecorder()}}
	e.ec2 = bedrocktest.NewEC2Server(bedrocktest.EC2Config{Region: "us-east-1", Credentials: map[string]string{ec2E2EKey: ec2E2ESecret}, Logf: bedrocktest.TestLogf(t)})
	t.Cleanup(e.ec2.Close)
	e.ec2.PutENI(bedrocktest.ENI{
		ID: "eni-0e2e0000000000001", OwnerID: ec2Account, VpcID: "vpc-1", SubnetID: "subnet-1",
		PrivateIPs: []string{"127.0.0.1", "10.0.5.7"}, InstanceID: "i-0e2e0000000000001",
		Tags: map[string]string{"team": "search"},
	})
	if proxyProtocol != "" {
		proxyProtocol = ", proxy_protocol: {trusted: [" + proxyProtocol + "]}"
	}
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${EC2}", e.ec2.URL, "${TRUSTED}", trusted, "${PROXY_PROTOCOL}", proxyProtocol).Replace(ec2Policy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	e.srv, err = proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	e.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeEndpoint(e.ln, nil) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
	e.endpoint = "http://" + e.ln.Addr().String()
	return e
}

// fromAddr is an HTTP client whose connections come from a chosen loopback
// address, so one test can be several workloads.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func ec2Converse(c *bedrockruntime.Client) error {
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg("hello"),
	})
	return err
}

func ec2WantDenied(t *testing.T, err error, contains string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), contains) {
		t.Fatalf("error %v, want AccessDeniedException containing %q", err, contains)
	}
}

func TestEC2IdentityEndToEnd(t *testing.T) {
	e := startEC2Env(t, "127.0.0.0/8", "")
	c := e.client(t, nil)
	if err := ec2Converse(c); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	rec := e.audit.wait(t, 1)[0]
	if rec.Decision != "allow" || rec.App != "search" || rec.IdentitySource != "ec2" ||
		rec.Tags["aws.account"] != ec2Account || rec.Tags["aws.tag.team"] != "search" || rec.Tags["aws.eni"] != "eni-0e2e0000000000001" ||
		!strings.HasPrefix(rec.Client, "127.0.0.1:") {
		t.Fatalf("audit %+v", rec)
	}
	calls := e.ec2.Calls()
	if len(calls) != 1 || !calls[0].SignatureOK || calls[0].AccessKeyID != ec2E2EKey || calls[0].Form.Get("Filter.1.Value.1") != "127.0.0.1" {
		t.Fatalf("ec2 calls %+v", calls)
	}
	if e.emu.Calls()[0].AccessKeyID != wardenKey {
		t.Fatal("upstream not re-signed")
	}

	// The ENI's tag changes: once the cache expires the app no longer matches.
	e.ec2.PutENI(bedrocktest.ENI{ID: "eni-0e2e0000000000001", OwnerID: ec2Account, PrivateIPs: []string{"127.0.0.1"}, Tags: map[string]string{"team": "ads"}})
	time.Sleep(400 * time.Millisecond)
	ec2WantDenied(t, ec2Converse(c), "no app matches")

	// An address no ENI holds has no identity.
	ec2WantDenied(t, ec2Converse(e.client(t, fromAddr("127.0.0.9"))), "no app matches")
}

func TestEC2IdentityUntrustedNetwork(t *testing.T) {
	e := startEC2Env(t, "10.0.0.0/8", "")
	ec2WantDenied(t, ec2Converse(e.client(t, nil)), "no app matches")
	if n := len(e.ec2.Calls()); n != 0 {
		t.Fatalf("an untrusted client address was looked up (%d calls)", n)
	}
	if rec := e.audit.wait(t, 1)[0]; rec.Decision != "deny" || rec.IdentitySource != "" || len(rec.Tags) != 0 {
		t.Fatalf("audit %+v", rec)
	}
}

func TestEC2IdentityOutage(t *testing.T) {
	e := startEC2Env(t, "127.0.0.0/8", "")
	e.ec2.PutENI(bedrocktest.ENI{ID: "eni-0e2e0000000000002", OwnerID: ec2Account, PrivateIPs: []string{"127.0.0.2"}, Tags: map[string]string{"team": "search"}})
	warm := e.client(t, nil)
	if err := ec2Converse(warm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // past cache_ttl
	e.ec2.SetOutage(http.StatusServiceUnavailable)
	e.ec2.ResetCalls()

	// Warm: the last identity is served stale.
	if err := ec2Converse(warm); err != nil {
		t.Fatalf("warm cache during an outage: %v", err)
	}
	calls := e.ec2.Calls()
	if len(calls) == 0 || calls[0].Status != http.StatusServiceUnavailable {
		t.Fatalf("the EC2 API was not asked during the outage: %+v", calls)
	}
	recs := e.audit.wait(t, 2)
	if r := recs[1]; r.Decision != "allow" || r.IdentitySource != "ec2" || r.Tags["aws.tag.team"] != "search" || !r.IdentityStale {
		t.Fatalf("stale audit %+v", r)
	}

	// Cold: another workload, never resolved, is denied.
	ec2WantDenied(t, ec2Converse(e.client(t, fromAddr("127.0.0.2"))), "could not be verified")

	// The outage ends: the cold workload resolves.
	e.ec2.SetOutage(0)
	if err := ec2Converse(e.client(t, fromAddr("127.0.0.2"))); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// loadBalancer is a tiny NLB: it accepts on loopback, writes a PROXY v2
// header naming client as the source, and relays bytes both ways.
type loadBalancer struct {
	ln     net.Listener
	client netip.AddrPort
	tlvs   []byte // the header's TLVs (default: a NOOP)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// track remembers c for close; false once closing.
func (lb *loadBalancer) track(c net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		c.Close()
		return false
	}
	lb.conns = append(lb.conns, c)
	return true
}

func (lb *loadBalancer) close() {
	lb.ln.Close()
	lb.mu.Lock()
	lb.closed = true
	for _, c := range lb.conns {
		c.Close()
	}
	lb.mu.Unlock()
	lb.wg.Wait()
}

func startLoadBalancer(t *testing.T, backend string, client netip.AddrPort) *loadBalancer {
	t.Helper()
	return startLoadBalancerTLV(t, backend, client, []byte{0x04, 0x00, 0x01, 0x00})
}

// startLoadBalancerTLV is startLoadBalancer sending tlvs in each header (an
// NLB in front of a VPC endpoint service sends the endpoint's id).
func startLoadBalancerTLV(t *testing.T, backend string, client netip.AddrPort, tlvs []byte) *loadBalancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &loadBalancer{ln: ln, client: client, tlvs: tlvs}
	t.Cleanup(lb.close)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			lb.mu.Lock()
			if lb.closed {
				lb.mu.Unlock()
				in.Close()
				return
			}
			lb.conns = append(lb.conns, in)
			lb.wg.Add(1)
			lb.mu.Unlock()
			go func() {
				defer lb.wg.Done()
				defer in.Close()
				out, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				if !lb.track(out) {
					return
				}
				defer out.Close()
				to := netip.MustParseAddrPort(ln.Addr().String())
				if _, err := out.Write(proxyproto.AppendHeader(nil, lb.client, to, lb.tlvs)); err != nil {
					return
				}
				done := make(chan struct{})
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); close(done) }()
				_, _ = io.Copy(in, out)
				in.Close()
				<-done
			}()
		}
	}()
	return lb
}

func TestEC2IdentityBehindProxyProtocol(t *testing.T) {
	// Only 10.0.0.0/8 is a workload network; Warden's peer is the load
	// balancer on loopback, which must send PROXY v2.
	e := startEC2Env(t, "10.0.0.0/8", "127.0.0.1/32")
	client := netip.MustParseAddrPort("10.0.5.7:45678")
	lb := startLoadBalancer(t, e.ln.Addr().String(), client)
	e.endpoint = "http://" + lb.ln.Addr().String()
	if err := ec2Converse(e.client(t, nil)); err != nil {
		t.Fatalf("through the load balancer: %v", err)
	}
	rec := e.audit.wait(t, 1)[0]
	if rec.Client != client.String() || rec.Decision != "allow" || rec.Tags["aws.eni"] != "eni-0e2e0000000000001" {
		t.Fatalf("audit %+v", rec)
	}
	if c := e.ec2.Calls(); len(c) != 1 || c[0].Form.Get("Filter.1.Value.1") != "10.0.5.7" {
		t.Fatalf("ec2 calls %+v", c)
	}

	// A client that reaches Warden directly from a trusted load balancer
	// address but sends no header is not served; one that sends its own
	// header from an untrusted address is treated as plain HTTP.
	e.endpoint = "http://" + e.ln.Addr().String()
	if err := ec2Converse(e.client(t, nil)); err == nil {
		t.Fatal("a trusted peer without a PROXY header was served")
	}
	spoof, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(e.ln.Addr().String())))
	if err != nil {
		t.Fatal(err)
	}
	defer spoof.Close()
	req := "POST /model/" + haiku + "/converse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	if _, err := spoof.Write(append(proxyproto.AppendHeader(nil, client, client, nil), req...)); err != nil {
		t.Fatal(err)
	}
	_ = spoof.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(spoof)
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
		t.Fatalf("spoofed header answered %q", resp)
	}
	if n := len(e.ec2.Calls()); n != 1 {
		t.Fatalf("spoofed address looked up (%d calls)", n)
	}
}

// TestAdminHealthCheckBehindProxyProtocol: an NLB whose target group has
// proxy_protocol_v2.enabled sends a LOCAL header on its health check
// connections, and its HTTP health check of /readyz on the admin port must
// pass; a peer outside the trusted load balancers (the kubelet) is served
// without one, and a trusted one without a header is not.
func TestAdminHealthCheckBehindProxyProtocol(t *testing.T) {
	e := startEC2Env(t, "10.0.0.0/8", "127.0.0.1/32")
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeAdmin(aln) }()
	addr := netip.MustParseAddrPort(aln.Addr().String())
	get := func(from string, header []byte) (string, error) {
		c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(from)}, net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(append(header, "GET /readyz HTTP/1.1\r\nHost: warden\r\nConnection: close\r\n\r\n"...)); err != nil {
			return "", err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	for _, tc := range []struct {
		name, from string
		header     []byte
		want       string
	}{
		{"NLB health check (LOCAL header)", "127.0.0.1", proxyproto.LocalHeader(), "HTTP/1.1 200 OK"},
		{"NLB health check naming a client", "127.0.0.1", proxyproto.AppendHeader(nil, netip.MustParseAddrPort("10.0.5.7:40000"), addr, nil), "HTTP/1.1 200 OK"},
		{"kubelet probe (untrusted peer, no header)", "127.0.0.2", nil, "HTTP/1.1 200 OK"},
		{"trusted peer without a header", "127.0.0.1", nil, ""},
	} {
		got, err := get(tc.from, tc.header)
		if tc.want == "" {
			if strings.HasPrefix(got, "HTTP/1.1 200") {
				t.Errorf("%s: served %q", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
}
