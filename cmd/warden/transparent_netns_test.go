//go:build linux

package main

// Transparent mode end to end, as an init container and a sidecar would run
// it, in a network namespace the test creates (issue 4 acceptance):
//
//	root namespace                         namespace NS
//	emulator 10.213.X.1:443 (plain HTTP) ◄─veth─ 10.213.X.2
//	                                             nftables (warden iptables --apply, netlink):
//	                                               skuid/skgid 1337 return, loopback return,
//	                                               tcp dport 443 redirect to :15001
//	                                             warden serve as uid 1337 (listen.transparent 127.0.0.1:15001)
//	                                             client as root: the Go SDK against
//	                                               https://bedrock-runtime.us-east-1.amazonaws.com,
//	                                               the name dialled as 10.213.X.1:443
//
// The emulator speaks plain HTTP on port 443, so the redirect is what makes
// the client's TLS handshake succeed (nothing on 10.213.X.1:443 speaks TLS),
// and Warden's own upstream connection to that same address and port
// succeeds only because the owner match exempts it: a looped-back upstream
// connection would reach the transparent listener as plain HTTP and be
// refused (and counted).
//
// Needs root (netns, veth, setpriv) and `ip` and `setpriv` on PATH. It runs
// with PATH set to a directory holding only those two, and asserts that no
// iptables, ip6tables or nft is found: `warden iptables --apply` programs the
// redirect over netlink, as it must from the distroless image, which has no
// such binary. The rules are read back with `warden iptables --print`, and
// their counters after the traffic show what was redirected and what was
// exempt. nftables is only ever touched inside the test's own namespace.
// Under CI (CI set) a missing piece fails the test; elsewhere it skips.
//
// IPv6 must not go around Warden: before the IPv6 Warden starts, a
// connection from the namespace to [fd00:213:X::1]:443, where the root
// namespace listens, is refused (redirected to [::1]:15001, where nothing
// listens yet) and never reaches that listener, while the same dial as
// Warden's uid (exempt) does reach it.
//
// Warden and the client run as the test binary itself (TestMain's helper roles,
// guarded by WARDEN_NETNS_HELPER): `warden serve` and `warden iptables` go
// through run(), the same code main calls, without a separate go build
// (which would be a cold build of every dependency on a fresh CI machine).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/warden-egress/warden/internal/kubetest"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/testenv"
)

const (
	netnsHelperEnv  = "WARDEN_NETNS_HELPER" // "warden" or "client"
	netnsArgsEnv    = "WARDEN_NETNS_ARGS"   // JSON array: warden's arguments
	netnsCAEnv      = "WARDEN_NETNS_CA"     // client: Warden's CA certificate (ca.cert_out)
	netnsUpEnv      = "WARDEN_NETNS_UP"     // client: the address the Bedrock host name resolves to
	netnsPortEnv    = "WARDEN_NETNS_PORT"   // client: the transparent port, dialled directly once
	netnsCA6Env     = "WARDEN_NETNS_CA6"    // client: the IPv6 Warden's CA certificate
	netnsUp6Env     = "WARDEN_NETNS_UP6"    // client: the IPv6 address the Bedrock host name resolves to
	netnsDialEnv    = "WARDEN_NETNS_DIAL"   // dial: the address to connect to
	netnsResultMark = "WARDEN_NETNS_RESULT "

	netnsUID         = 1337
	netnsPort        = 15001
	netnsAdminPort   = 9480
	netnsWardenKey   = "AKIAWARDENNETNS00001"
	netnsWardenSecr  = "warden-netns-secret"
	netnsHost        = "bedrock-runtime.us-east-1.amazonaws.com"
	netnsAllowed     = "anthropic.claude-3-5-haiku-20241022-v1:0"
	netnsDenied      = "meta.llama3-8b-instruct-v1:0"
	netnsOtherSNI    = "example.com"
	netnsHelperRegex = "^$" // TestMain runs the helper role before any test
)

// netnsResult is what the client inside the namespace saw.
type netnsResult struct {
	ConverseText   string
	ConverseErr    string
	StreamEvents   int
	StreamText     string
	StreamErr      string
	DeniedErr      string
	DeniedCode     string
	OtherSNIErr    string // TLS to 10.213.X.1:443 naming a non-Bedrock host
	OtherSNIBytes  int64
	DirectErr      string // TLS straight to 127.0.0.1:15001, no redirect
	DirectBytes    int64
	PeerCertIssuer string // who signed the certificate the client accepted
	Converse6Text  string // the same Converse over IPv6, through the second Warden
	Converse6Err   string
}

// TestMain turns the test binary into Warden or the client when
// TestTransparentNetns re-executes it inside the namespace (a helper test
// would show up as a skipped test in every normal run).
func TestMain(m *testing.M) {
	if os.Getenv(netnsHelperEnv) != "" {
		netnsHelperMain()
	}
	// kubetest.Main stops the shared kube-apiserver TestInjectAudit starts.
	code := kubetest.Main(m)
	if builtWarden.dir != "" {
		_ = os.RemoveAll(builtWarden.dir)
	}
	// The Dockerfile-built binary (image_test.go): 110 MB a run, which
	// filled the disk of a machine running the tests all day.
	if imageBuildPath != "" {
		_ = os.RemoveAll(filepath.Dir(imageBuildPath))
	}
	os.Exit(code)
}

// netnsHelperMain runs the role named in the environment and exits.
func netnsHelperMain() {
	switch role := os.Getenv(netnsHelperEnv); role {
	default:
		fmt.Fprintf(os.Stderr, "netns helper: unknown role %q\n", role)
		os.Exit(2)
	case "warden":
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv(netnsArgsEnv)), &args); err != nil {
			fmt.Fprintf(os.Stderr, "netns helper: %s: %v\n", netnsArgsEnv, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case "dial":
		// One TCP connection, to tell redirected (refused) from not.
		res := "ok"
		c, err := net.DialTimeout("tcp", os.Getenv(netnsDialEnv), 10*time.Second)
		if err != nil {
			res = err.Error()
		} else {
			_ = c.Close()
		}
		fmt.Printf("\n%s%s\n", netnsResultMark, res)
		os.Exit(0)
	case injectedAppRole:
		fmt.Printf("\n%s%s\n", netnsResultMark, injectedGoApp())
		os.Exit(0)
	case "client":
		res := netnsClient()
		b, _ := json.Marshal(res)
		fmt.Printf("\n%s%s\n", netnsResultMark, b)
		os.Exit(0)
	}
}

// netnsCountingConn counts the bytes the peer sent.
type netnsCountingConn struct {
	net.Conn
	n int64
}

func (c *netnsCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	return n, err
}

// netnsClient is an application in the namespace: the real Go SDK with the
// endpoint left at the regional host name, trusting Warden's CA. There is
// no DNS here, so its dialer resolves that one name to the test address; it
// dials nothing else.
func netnsClient() netnsResult {
	var res netnsResult
	up := os.Getenv(netnsUpEnv)
	pool, err := netnsPool(os.Getenv(netnsCAEnv))
	if err != nil {
		res.ConverseErr = err.Error()
		return res
	}
	c := netnsSDKClient(up, pool, &res.PeerCertIssuer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msg := func(s string) []types.Message {
		return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: s}}}}
	}

	out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(netnsAllowed), Messages: msg("hello from the namespace")})
	if err != nil {
		res.ConverseErr = err.Error()
	} else if m, ok := out.Output.(*types.ConverseOutputMemberMessage); ok {
		for _, b := range m.Value.Content {
			if tb, ok := b.(*types.ContentBlockMemberText); ok {
				res.ConverseText += tb.Value
			}
		}
	}

	st, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(netnsAllowed), Messages: msg("stream please")})
	if err != nil {
		res.StreamErr = err.Error()
	} else {
		for ev := range st.GetStream().Events() {
			res.StreamEvents++
			if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				if tb, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
					res.StreamText += tb.Value
				}
			}
		}
		if err := st.GetStream().Err(); err != nil {
			res.StreamErr = err.Error()
		}
		_ = st.GetStream().Close()
	}

	_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(netnsDenied), Messages: msg("hi")})
	if err == nil {
		res.DeniedErr = "<nil>"
	} else {
		res.DeniedErr = err.Error()
		var ade *types.AccessDeniedException
		if errors.As(err, &ade) {
			res.DeniedCode = ade.ErrorCode()
		}
	}

	// Not a Bedrock host: redirected like every 443 connection, then
	// closed by Warden without a TLS answer (the emulator would have
	// answered the hello with an HTTP 400).
	res.OtherSNIErr, res.OtherSNIBytes = netnsTLSAttempt(ctx, net.JoinHostPort(up, "443"), netnsOtherSNI, pool)
	// The transparent port dialled directly, with a hello for the Bedrock
	// host: refused, since nothing redirected it.
	res.DirectErr, res.DirectBytes = netnsTLSAttempt(ctx, net.JoinHostPort("127.0.0.1", os.Getenv(netnsPortEnv)), netnsHost, pool)

	// IPv6: the host name resolved to an IPv6 address, redirected to
	// [::1], served by the second Warden (only its CA is trusted here).
	if up6 := os.Getenv(netnsUp6Env); up6 != "" {
		pool6, err := netnsPool(os.Getenv(netnsCA6Env))
		if err != nil {
			res.Converse6Err = err.Error()
			return res
		}
		var issuer string
		out, err := netnsSDKClient(up6, pool6, &issuer).Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(netnsAllowed), Messages: msg("hello over IPv6")})
		if err != nil {
			res.Converse6Err = err.Error()
		} else if m, ok := out.Output.(*types.ConverseOutputMemberMessage); ok {
			for _, b := range m.Value.Content {
				if tb, ok := b.(*types.ContentBlockMemberText); ok {
					res.Converse6Text += tb.Value
				}
			}
		}
	}
	return res
}

func netnsPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading Warden's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in Warden's CA file %s", caFile)
	}
	return pool, nil
}

// netnsSDKClient is the Go SDK with the endpoint at the regional host name,
// which its dialer resolves to up; issuer gets the server certificate's issuer.
func netnsSDKClient(up string, pool *x509.CertPool, issuer *string) *bedrockruntime.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != netnsHost+":443" {
				return nil, fmt.Errorf("netns client: no address for %s", addr)
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(up, "443"))
		},
		TLSClientConfig: &tls.Config{
			RootCAs: pool,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					*issuer = cs.PeerCertificates[0].Issuer.CommonName
				}
				return nil
			},
		},
		ForceAttemptHTTP2: true,
	}
	return bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1",
		// The app's own key, which the emulator does not accept: only
		// Warden's re-signing gets a call through.
		Credentials:      credentials.NewStaticCredentialsProvider("AKIAAPPNETNS00000001", "app-secret", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(&http.Client{Transport: tr}),
	})
}

// netnsTLSAttempt handshakes with addr naming sni and reports the error and
// how many bytes the other side sent.
func netnsTLSAttempt(ctx context.Context, addr, sni string, pool *x509.CertPool) (string, int64) {
	raw, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial: " + err.Error(), 0
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	cc := &netnsCountingConn{Conn: raw}
	err = tls.Client(cc, &tls.Config{ServerName: sni, RootCAs: pool}).Handshake()
	if err == nil {
		return "<nil>", cc.n
	}
	return err.Error(), cc.n
}

// netnsEnvironment fails under CI and skips elsewhere.
func netnsEnvironment(t *testing.T, format string, args ...any) {
	t.Helper()
	testenv.Missing(t, format+" (run as root with ip and setpriv installed)", args...)
}

// netnsTools sets PATH to a new directory holding links to ip and setpriv
// only (found on the caller's PATH or in the sbin directories), so nothing
// else the test or Warden might run, iptables least of all, is on it.
func netnsTools(t *testing.T) {
	t.Helper()
	search := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		search += ":" + d
	}
	dir := t.TempDir()
	for _, tool := range []string{"ip", "setpriv"} {
		var found string
		for _, d := range filepath.SplitList(search) {
			if p := filepath.Join(d, tool); d != "" && netnsExecutable(p) {
				found = p
				break
			}
		}
		if found == "" {
			netnsEnvironment(t, "transparent netns test needs %s (looked in %s)", tool, search)
		}
		if err := os.Symlink(found, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	for _, tool := range []string{"iptables", "ip6tables", "iptables-nft", "iptables-legacy", "iptables-restore", "nft"} {
		if p, err := exec.LookPath(tool); err == nil {
			t.Fatalf("%s is on PATH (%s); this test proves the redirect without it", tool, p)
		}
	}
}

func netnsExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

func TestTransparentNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		netnsEnvironment(t, "transparent netns test needs root (network namespace, veth, netlink)")
	}
	netnsTools(t)
	t.Logf("PATH=%s (ip and setpriv only; no iptables, ip6tables or nft)", os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	sh := func(name string, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := sh(name, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// A namespace, a veth pair and a /24 nobody else on this host uses.
	id := fmt.Sprintf("%d%03d", os.Getpid()%100000, rand.IntN(1000))
	ns := "warden-tp-" + id
	hostIf, nsIf := "wtp"+id+"h", "wtp"+id+"n"
	if len(hostIf) > 15 {
		hostIf, nsIf = hostIf[len(hostIf)-15:], nsIf[len(nsIf)-15:]
	}
	addrs := must("ip", "-o", "addr", "show")
	x := -1
	for i, start := 0, rand.IntN(250); i < 250; i++ {
		if c := 1 + (start+i)%250; !strings.Contains(addrs, fmt.Sprintf(" 10.213.%d.", c)) {
			x = c
			break
		}
	}
	if x < 0 {
		t.Fatal("no free 10.213.X.0/24 on this host")
	}
	upIP, nsIP := fmt.Sprintf("10.213.%d.1", x), fmt.Sprintf("10.213.%d.2", x)

	if out, err := sh("ip", "netns", "add", ns); err != nil {
		netnsEnvironment(t, "cannot create a network namespace: %v (%s)", err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace also deletes the veth end in it, and so
		// the pair; the host end is removed explicitly in case it was never moved.
		_ = exec.Command("ip", "link", "del", hostIf).Run()
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	nsExec := func(args ...string) []string { return append([]string{"netns", "exec", ns}, args...) }
	must("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	must("ip", "link", "set", nsIf, "netns", ns)
	must("ip", "addr", "add", upIP+"/24", "dev", hostIf)
	must("ip", "link", "set", hostIf, "up")
	must("ip", nsExec("ip", "addr", "add", nsIP+"/24", "dev", nsIf)...)
	must("ip", nsExec("ip", "link", "set", nsIf, "up")...)
	must("ip", nsExec("ip", "link", "set", "lo", "up")...)
	// IPv6 is optional on a developer's machine (without it only the IPv4
	// half runs) but not under CI, where the IPv6 half must run.
	v6 := true
	noV6 := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format+" (CI must run the IPv6 half)", args...)
		}
		t.Logf(format, args...)
		v6 = false
	}
	upIP6, nsIP6 := fmt.Sprintf("fd00:213:%x::1", x), fmt.Sprintf("fd00:213:%x::2", x)
	for _, args := range [][]string{
		{"ip", "-6", "addr", "add", upIP6 + "/64", "dev", hostIf, "nodad"},
		nsExec("ip", "-6", "addr", "add", nsIP6+"/64", "dev", nsIf, "nodad"),
	} {
		if args[0] != "ip" {
			args = append([]string{"ip"}, args...)
		}
		if out, err := sh(args[0], args[1:]...); err != nil {
			noV6("no IPv6 here, IPv4 only: %v (%s)", err, out)
			break
		}
	}
	if v6 {
		if out, _ := sh("ip", nsExec("ip", "-6", "addr", "show", "dev", "lo")...); !strings.Contains(out, "::1/128") {
			noV6("no ::1 in the namespace, IPv4 only: %s", out)
		}
	}

	// The Bedrock emulator on upIP:443, plain HTTP (and h2c), as Warden's upstream.
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{netnsWardenKey: netnsWardenSecr}})
	t.Cleanup(emu.Close)
	upLn, err := net.Listen("tcp", net.JoinHostPort(upIP, "443"))
	if err != nil {
		t.Fatalf("emulator listener on %s:443: %v", upIP, err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	upSrv := &http.Server{Handler: emu.Handler(), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = upSrv.Serve(upLn) }()
	t.Cleanup(func() { _ = upSrv.Close() })

	// A directory uid 1337 can read (the binary, the config) with a
	// subdirectory it owns (ca.cert_out).
	dir, err := os.MkdirTemp("", "warden-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "warden.test")
	netnsCopyFile(t, self, bin, 0o755)
	caDir := filepath.Join(dir, "ca")
	if err := os.Mkdir(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(caDir, netnsUID, netnsUID); err != nil {
		t.Fatal(err)
	}
	helperEnv := func(role string, extra ...string) []string {
		env := append(os.Environ(), netnsHelperEnv+"="+role, "HOME="+dir,
			"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN=")
		return append(env, extra...)
	}
	argsEnv := func(args ...string) string {
		b, _ := json.Marshal(args)
		return netnsArgsEnv + "=" + string(b)
	}

	// The init container: warden iptables --apply inside the namespace,
	// over netlink (nothing to exec on PATH), printing what it read back.
	// Warden's uid alone is exempt, as the injector writes it: no --gid.
	iptArgs := []string{"--port", strconv.Itoa(netnsPort), "--uid", strconv.Itoa(netnsUID),
		"--ipv6=" + strconv.FormatBool(v6)}
	wardenIptables := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "ip", nsExec(bin, "-test.run="+netnsHelperRegex)...)
		cmd.Env = helperEnv("warden", argsEnv(append([]string{"iptables"}, args...)...))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var dry, dryErr bytes.Buffer
	if code := run(ctx, append([]string{"iptables"}, iptArgs...), &dry, &dryErr); code != 0 {
		t.Fatalf("warden iptables (dry run): exit %d: %s", code, dryErr.String())
	}
	applied, err := wardenIptables(append([]string{"--apply", "--print"}, iptArgs...)...)
	if err != nil {
		if strings.Contains(applied, "the kernel lacks nf_tables nat support") {
			netnsEnvironment(t, "this kernel cannot redirect with nftables: %s", applied)
		}
		t.Fatalf("warden iptables --apply --print in %s: %v\n%s", ns, err, applied)
	}
	t.Logf("warden iptables --apply --print in %s:\n%s", ns, applied)
	// What the kernel holds is the dry run, line for line.
	plan := strings.SplitN(dry.String(), "\n", 2)[1]
	if !strings.Contains(applied, "read back and verified\n# warden iptables: read back from the kernel\n"+plan) {
		t.Errorf("read back from the kernel differs from the dry run:\n%s\ndry run:\n%s", applied, plan)
	}
	// counter is the packet count of the rule whose text, counters aside, is rule.
	counter := func(table, rule string) int {
		t.Helper()
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(rule) + ` counter packets (\d+) bytes \d+ (return|redirect to :\d+)$`)
		m := re.FindStringSubmatch(table)
		if m == nil {
			t.Errorf("no rule %q in:\n%s", rule, table)
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	redirect4 := "meta nfproto ipv4 meta l4proto tcp tcp dport 443"
	redirect6 := "meta nfproto ipv6 meta l4proto tcp tcp dport 443"
	exemptUID := fmt.Sprintf("meta skuid %d", netnsUID)
	if strings.Contains(applied, "skgid") {
		t.Errorf("the table exempts a group; only Warden's uid may be:\n%s", applied)
	}
	for _, rule := range []string{redirect4, exemptUID, "meta nfproto ipv4 ip daddr 127.0.0.0/8"} {
		if n := counter(applied, rule); n != 0 {
			t.Errorf("rule %q: %d packets before any traffic", rule, n)
		}
	}
	if v6 && counter(applied, redirect6) != 0 {
		t.Errorf("IPv6 redirect counted packets before any traffic")
	}

	// The sidecar: warden serve as uid/gid 1337 inside the namespace. Its
	// transparent listener takes one address, so the IPv6 redirect (to
	// [::1]:15001) gets a second Warden, as the same user.
	startWarden := func(name, transparent string, adminPort int) *netnsWarden {
		t.Helper()
		w := &netnsWarden{
			name:   name,
			caFile: filepath.Join(caDir, name+"-ca.pem"),
			admin:  fmt.Sprintf("http://%s:%d", nsIP, adminPort),
			exited: make(chan struct{}),
		}
		cfgFile := filepath.Join(dir, name+".yaml")
		cfg := fmt.Sprintf(`version: 1
listen:
  transparent: %q
  admin: "%s:%d"
upstream: {region: us-east-1, url: "http://%s:443", insecure: true, signing: resign}
identity: {static: {app: chatbot, env: test}}
apps:
  - name: chatbot
    allow_weak_identity: true
    match: {tags: {app: chatbot}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream]
ca: {cert_out: %q}
audit: {spool: {dir: none}, sinks: [{stdout: {}}]} # Warden runs as uid 1337 here
`, transparent, nsIP, adminPort, upIP, w.caFile)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", nsExec("setpriv", fmt.Sprintf("--reuid=%d", netnsUID), fmt.Sprintf("--regid=%d", netnsUID),
			"--clear-groups", bin, "-test.run="+netnsHelperRegex)...)
		cmd.Env = helperEnv("warden", argsEnv("serve", "--config", cfgFile, "--watch-interval", "0"),
			"AWS_ACCESS_KEY_ID="+netnsWardenKey, "AWS_SECRET_ACCESS_KEY="+netnsWardenSecr, "AWS_REGION=us-east-1")
		cmd.Stdout, cmd.Stderr = &w.out, &w.err
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(w.exited) }()
		w.stop = func() {
			select {
			case <-w.exited:
				return
			default:
			}
			// ip netns exec and setpriv exec in place: the pid is Warden's.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-w.exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-w.exited
				t.Errorf("%s: warden serve did not stop on SIGTERM; killed", name)
			}
		}
		t.Cleanup(func() {
			w.stop()
			if t.Failed() {
				t.Logf("%s stderr:\n%s", name, w.err.String())
				t.Logf("%s stdout:\n%s", name, w.out.String())
			}
		})
		for ready := false; !ready; {
			select {
			case <-w.exited:
				t.Fatalf("%s: warden serve exited before it was ready:\n%s", name, w.err.String())
			case <-ctx.Done():
				t.Fatalf("%s: warden serve not ready: %v", name, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
			code, _, err := w.get("/readyz")
			ready = err == nil && code == http.StatusOK
		}
		if st, err := os.Stat(w.caFile); err != nil {
			t.Fatalf("%s: ca.cert_out: %v", name, err)
		} else if st.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s: ca.cert_out is %v; apps running as other users must be able to read it", name, st.Mode().Perm())
		}
		return w
	}
	w4 := startWarden("warden4", fmt.Sprintf("127.0.0.1:%d", netnsPort), netnsAdminPort)
	var w6 *netnsWarden
	if v6 {
		// IPv6 does not go around Warden, even with no Warden on [::1]: a
		// listener on [upIP6]:443 in the root namespace is reached by
		// Warden's uid (exempt) and never by anyone else, whose connection
		// is redirected to [::1]:15001 and refused there.
		ln6, err := net.Listen("tcp", net.JoinHostPort(upIP6, "443"))
		if err != nil {
			t.Fatalf("IPv6 listener on [%s]:443: %v", upIP6, err)
		}
		var accepted atomic.Int64
		go func() {
			for {
				c, err := ln6.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				_ = c.Close()
			}
		}()
		// dial connects as root (uid < 0) or as uid/gid.
		dial := func(uid, gid int) string {
			t.Helper()
			args := []string{bin, "-test.run=" + netnsHelperRegex}
			if uid >= 0 {
				args = append([]string{"setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups"}, args...)
			}
			cmd := exec.CommandContext(ctx, "ip", nsExec(args...)...)
			cmd.Env = helperEnv("dial", netnsDialEnv+"="+net.JoinHostPort(upIP6, "443"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("dial helper: %v\n%s", err, out)
			}
			_, res, _ := strings.Cut(string(out), netnsResultMark)
			return strings.TrimSpace(res)
		}
		if res := dial(-1, -1); !strings.Contains(res, "connection refused") || accepted.Load() != 0 {
			t.Errorf("IPv6 to [%s]:443 with no Warden on [::1]: %q, %d connections reached the listener; want refused, none", upIP6, res, accepted.Load())
		} else {
			t.Logf("IPv6 to [%s]:443 with no Warden on [::1], as the app: %s; the listener saw %d connections", upIP6, res, accepted.Load())
		}
		// An app whose image gives it Warden's group (another uid, gid
		// 1337 here) is redirected like any other.
		if res := dial(netnsUID+1, netnsUID); !strings.Contains(res, "connection refused") || accepted.Load() != 0 {
			t.Errorf("IPv6 to [%s]:443 as uid %d with Warden's gid %d: %q, %d connections reached the listener; want refused, none",
				upIP6, netnsUID+1, netnsUID, res, accepted.Load())
		} else {
			t.Logf("IPv6 to [%s]:443 as another uid with Warden's gid: %s (redirected)", upIP6, res)
		}
		if res := dial(netnsUID, netnsUID); res != "ok" || accepted.Load() != 1 {
			t.Errorf("IPv6 to [%s]:443 as Warden's uid: %q, %d connections reached the listener; want ok, 1", upIP6, res, accepted.Load())
		} else {
			t.Logf("IPv6 to [%s]:443 as Warden's uid (exempt): %s; the listener saw %d connection", upIP6, res, accepted.Load())
		}
		_ = ln6.Close()
		w6 = startWarden("warden6", fmt.Sprintf("[::1]:%d", netnsPort), netnsAdminPort+1)
	}

	// The application.
	client := exec.CommandContext(ctx, "ip", nsExec(bin, "-test.run="+netnsHelperRegex)...)
	client.Env = helperEnv("client", netnsCAEnv+"="+w4.caFile, netnsUpEnv+"="+upIP, netnsPortEnv+"="+strconv.Itoa(netnsPort))
	if v6 {
		client.Env = append(client.Env, netnsCA6Env+"="+w6.caFile, netnsUp6Env+"="+upIP6)
	}
	var clientErr bytes.Buffer
	client.Stderr = &clientErr
	out, err := client.Output()
	if err != nil {
		t.Fatalf("client in %s: %v\nstdout:\n%s\nstderr:\n%s", ns, err, out, clientErr.String())
	}
	var res netnsResult
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, netnsResultMark); ok {
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatalf("client result %q: %v", rest, err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("client printed no result:\n%s\n%s", out, clientErr.String())
	}
	t.Logf("client: %+v", res)

	if res.ConverseErr != "" || res.ConverseText == "" {
		t.Errorf("Converse through the redirect: text %q, error %s", res.ConverseText, res.ConverseErr)
	}
	if res.PeerCertIssuer == "" {
		t.Error("the client recorded no server certificate")
	}
	if res.StreamErr != "" || res.StreamEvents == 0 || res.StreamText == "" {
		t.Errorf("ConverseStream through the redirect: %d events, text %q, error %s", res.StreamEvents, res.StreamText, res.StreamErr)
	}
	if res.DeniedCode != "AccessDeniedException" {
		t.Errorf("denied model: %s, want AccessDeniedException", res.DeniedErr)
	}
	for _, a := range []struct {
		what, err string
		n         int64
	}{{"non-Bedrock SNI on 443", res.OtherSNIErr, res.OtherSNIBytes}, {"direct connection to the transparent port", res.DirectErr, res.DirectBytes}} {
		if a.err == "<nil>" || strings.HasPrefix(a.err, "dial: ") || a.n != 0 {
			t.Errorf("%s: error %q after %d bytes from the server; want the connection closed without an answer", a.what, a.err, a.n)
		}
	}
	wantOps := "Converse,ConverseStream"
	if v6 {
		if res.Converse6Err != "" || res.Converse6Text == "" {
			t.Errorf("Converse over IPv6 through the redirect: text %q, error %s", res.Converse6Text, res.Converse6Err)
		}
		wantOps += ",Converse"
	}

	// Warden's own upstream connections reached the emulator, signed with
	// Warden's key; a looped-back one would have been refused by the
	// transparent listener instead.
	var upstreamOps []string
	for _, c := range emu.Calls() {
		upstreamOps = append(upstreamOps, c.Op)
		if !c.SignatureOK || c.AccessKeyID != netnsWardenKey {
			t.Errorf("upstream %s: key %s, signature ok %v (%s); want Warden's key, verified", c.Op, c.AccessKeyID, c.SignatureOK, c.AuthError)
		}
		if c.ModelID != netnsAllowed {
			t.Errorf("upstream %s for model %q: only %s is allowed", c.Op, c.ModelID, netnsAllowed)
		}
	}
	if got := strings.Join(upstreamOps, ","); got != wantOps {
		t.Errorf("the emulator received %s, want %s", got, wantOps)
	}

	// The connection counts: at least one intercepted connection, and
	// exactly two refused (the other SNI and the direct dial) — a
	// looped-back upstream connection would be one more.
	checkCounts := func(w *netnsWarden, refused float64) {
		t.Helper()
		_, metrics, err := w.get("/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", w.name, err)
		}
		metric := func(action string) float64 {
			re := regexp.MustCompile(`(?m)^warden_intercept_connections_total\{action="` + action + `",mode="transparent"\} (\S+)$`)
			m := re.FindStringSubmatch(metrics)
			if m == nil {
				return 0
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
		if n := metric("intercept"); n < 1 {
			t.Errorf("%s: transparent intercept count = %v, want >= 1", w.name, n)
		}
		if n := metric("refuse"); n != refused {
			t.Errorf("%s: transparent refuse count = %v, want %v", w.name, n, refused)
		}
		if n := metric("tunnel"); n != 0 {
			t.Errorf("%s: transparent tunnel count = %v, want 0", w.name, n)
		}
	}
	checkCounts(w4, 2) // the non-Bedrock SNI and the direct dial
	if v6 {
		checkCounts(w6, 0)
	}

	// The kernel's counters: the client's connections were redirected and
	// Warden's own upstream connections matched the uid exemption.
	after, err := wardenIptables("--print")
	if err != nil {
		t.Fatalf("warden iptables --print in %s: %v\n%s", ns, err, after)
	}
	t.Logf("warden iptables --print in %s after the traffic:\n%s", ns, after)
	// Converse, ConverseStream, the denied Converse and the other SNI, at
	// least one connection each for the SDK calls (it may reuse one).
	if n := counter(after, redirect4); n < 2 {
		t.Errorf("IPv4 redirect counted %d connections, want at least 2 (the SDK's and the other-SNI handshake)", n)
	}
	if n := counter(after, exemptUID); n < 1 {
		t.Errorf("uid %d exemption counted %d connections, want Warden's upstream connections", netnsUID, n)
	}
	if v6 {
		// The refused dial and the SDK's IPv6 connection.
		if n := counter(after, redirect6); n < 2 {
			t.Errorf("IPv6 redirect counted %d connections, want at least 2 (the refused dial and the SDK's)", n)
		}
	}

	// Stop Warden so the buffered audit sink flushes, then read its records.
	w4.stop()
	logs := w4.err.String()
	for _, want := range []string{
		`transparent connection refused: not a Bedrock runtime host this Warden intercepts`,
		`"sni":"` + netnsOtherSNI + `"`,
		`transparent connection refused: not a redirected connection`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("warden's log lacks %q", want)
		}
	}
	type want struct {
		op, model, decision string
		status              int
	}
	checkAudit := func(w *netnsWarden, clientIP string, wants []want) {
		t.Helper()
		type record struct {
			RequestID      string            `json:"request_id"`
			Client         string            `json:"client"`
			Mode           string            `json:"mode"`
			Host           string            `json:"host"`
			IdentitySource string            `json:"identity_source"`
			Tags           map[string]string `json:"tags"`
			App            string            `json:"app"`
			Operation      string            `json:"operation"`
			Model          string            `json:"model"`
			Decision       string            `json:"decision"`
			Status         int               `json:"status"`
		}
		var recs []record
		sc := bufio.NewScanner(strings.NewReader(w.out.String()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var r record
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.RequestID != "" {
				recs = append(recs, r)
			}
		}
		if len(recs) != len(wants) {
			t.Errorf("%s: %d audit records, want %d:\n%s", w.name, len(recs), len(wants), w.out.String())
			return
		}
		for i, wr := range wants {
			r := recs[i]
			if r.Operation != wr.op || r.Model != wr.model || r.Decision != wr.decision || r.Status != wr.status || r.App != "chatbot" {
				t.Errorf("%s: audit record %d = %+v, want app chatbot, %s %s %s %d", w.name, i, r, wr.op, wr.model, wr.decision, wr.status)
			}
			// The redirect keeps the client's own source address: the
			// connection came from the namespace's interface, not loopback,
			// and the static identity was granted because it was redirected.
			if host, _, _ := net.SplitHostPort(r.Client); host != clientIP {
				t.Errorf("%s: audit record %d: client %q, want %s (the redirected connection's source)", w.name, i, r.Client, clientIP)
			}
			if r.Mode != "transparent" || r.Host != "bedrock-runtime.us-east-1.amazonaws.com" {
				t.Errorf("%s: audit record %d: mode %q host %q, want transparent and the SNI host", w.name, i, r.Mode, r.Host)
			}
			if r.IdentitySource != "static" || r.Tags["app"] != "chatbot" {
				t.Errorf("%s: audit record %d: identity %s %v, want static app=chatbot", w.name, i, r.IdentitySource, r.Tags)
			}
		}
	}
	checkAudit(w4, nsIP, []want{
		{"Converse", netnsAllowed, "allow", 200},
		{"ConverseStream", netnsAllowed, "allow", 200},
		{"Converse", netnsDenied, "deny", 403},
	})
	if v6 {
		w6.stop()
		checkAudit(w6, nsIP6, []want{{"Converse", netnsAllowed, "allow", 200}})
	}
}

// netnsWarden is one `warden serve` in the namespace.
type netnsWarden struct {
	name     string
	caFile   string
	admin    string // http://host:port of its admin listener
	out, err testenv.Buffer
	exited   chan struct{}
	stop     func()
}

func (w *netnsWarden) get(path string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(w.admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func netnsCopyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
