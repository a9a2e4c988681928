package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/bundle"
)

// TestBundleFleetProcesses is issue 15's propagation test with every part a
// real OS process: the `warden` binary built once, a `warden bundle serve`
// over TLS, three `warden serve` whose configs' bundle sections follow it
// (long-poll, short settings), and the security team's `warden keys
// bundle-key`, `warden policy sign` and `warden policy publish`.
//
// A published change reaches all three (the time from publish to the last
// of them is measured and logged; only arrival is asserted, within a
// generous timeout). Then an older-serial bundle (the newest file removed
// from the service's store: the real service now serves serial 1), and,
// from a hostile server holding the service's address and TLS key, a
// tampered, an expired, an out-of-scope and a foreign-signed bundle are each
// refused by all three, which keep serving the last good bundle: /readyz
// (200, its serial, the last problem), warden_policy_serial and the refusal
// counter on /metrics, an SDK call's decision, and the audit records.
// Last, with no source reachable, a Warden restarted on its cache runs the
// last good bundle, and one without a cache is not ready and denies every
// call (fail closed).
// propagationBound is the time within which a published change must reach
// every Warden of TestBundleFleetProcesses, the bound README.md and
// docs/bundles.md state (the measured time is logged, and is milliseconds).
const propagationBound = 30 * time.Second

func TestBundleFleetProcesses(t *testing.T) {
	bin := buildWarden(t)
	dir := t.TempDir()
	sh := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("warden %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The security team's key, as CI holds it; Wardens get the public half.
	sh("keys", "bundle-key", "--id", "sec-2026-12", "--out", dir)
	keyFile := filepath.Join(dir, "sec-2026-12.key")
	priv, err := bundle.LoadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pubRaw, err := os.ReadFile(filepath.Join(dir, "sec-2026-12.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(string(pubRaw))

	// The bundle service: TLS from a CA the Wardens trust, a directory store.
	caFile, certFile, keyPEMFile := writeServiceTLS(t, dir)
	store := filepath.Join(dir, "bundles")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	svcAddr := freeAddr(t)
	svcURL := "https://" + svcAddr
	svc := startProc(t, "bundle-serve", bin, nil, "bundle", "serve", "--dir", store, "--listen", svcAddr,
		"--tls-cert", certFile, "--tls-key", keyPEMFile, "--trust", "sec-2026-12="+pub, "--scan-interval", "50ms")
	caPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	caPool.AppendCertsFromPEM(caPEM)
	svcClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	waitUntil(t, "the bundle service", func() bool {
		resp, err := svcClient.Get(svcURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// Sign and publish serial 1 with the CLI, as a CI pipeline does.
	signPublish := func(serial int, models string) {
		t.Helper()
		pol := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", serial))
		if err := os.WriteFile(pol, []byte(fmt.Sprintf(fleetPolicy, models)), 0o644); err != nil {
			t.Fatal(err)
		}
		b := filepath.Join(dir, fmt.Sprintf("b%d.json", serial))
		sh("policy", "sign", "--policy", pol, "--key", keyFile, "--key-id", "sec-2026-12", "--serial", strconv.Itoa(serial),
			"--fleet", "eks-*", "--expires", "1h", "--out", b)
		sh("policy", "publish", "--bundle", b, "--to", svcURL, "--ca-file", caFile)
	}
	signPublish(1, `"amazon.nova-*"`)

	// Three Wardens, each its own process, following the service.
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENFLEET00001": "fleet-secret"}})
	t.Cleanup(emu.Close)
	env := []string{"AWS_ACCESS_KEY_ID=AKIAWARDENFLEET00001", "AWS_SECRET_ACCESS_KEY=fleet-secret", "AWS_SESSION_TOKEN=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	var fleet []*fleetWarden
	for _, ns := range []string{"shop", "reports", "billing"} {
		w := &fleetWarden{ns: ns, endpoint: freeAddr(t), admin: freeAddr(t), audit: filepath.Join(dir, ns+"-audit.jsonl")}
		cfg := strings.NewReplacer("${EP}", w.endpoint, "${ADMIN}", w.admin, "${UPSTREAM}", emu.URL, "${SPOOL}", filepath.Join(dir, ns+"-spool"),
			"${AUDIT}", w.audit, "${URL}", svcURL, "${CA}", caFile, "${PUB}", pub, "${NS}", ns, "${CACHE}", filepath.Join(dir, ns+"-cache")).Replace(fleetConfig)
		cfgPath := filepath.Join(dir, ns+".yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		w.proc = startProc(t, "warden-"+ns, bin, env, "serve", "--config", cfgPath)
		fleet = append(fleet, w)
	}
	for _, w := range fleet {
		waitUntil(t, w.ns+" ready on serial 1", func() bool {
			code, body := w.get("/readyz")
			return code == 200 && strings.Contains(body, "serial 1")
		})
		if err := w.converse(novaModel); err != nil {
			t.Fatalf("%s: nova under serial 1: %v", w.ns, err)
		}
		if err := w.converse(claudeModel); !isAccessDenied(err) {
			t.Fatalf("%s: claude under serial 1: %v, want AccessDenied", w.ns, err)
		}
	}

	// The change: serial 2 allows Claude too. Measured from the publish PUT
	// to each Warden's /metrics showing it.
	start := time.Now()
	var published time.Duration
	arrived := make([]time.Duration, len(fleet))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deadline := time.Now().Add(propagationBound); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				if w.metric("warden_policy_serial") == 2 {
					arrived[i] = time.Since(start)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	pol := filepath.Join(dir, "policy-2.yaml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(fleetPolicy, `"amazon.nova-*", "anthropic.*"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	b2 := filepath.Join(dir, "b2.json")
	signed := sh("policy", "sign", "--policy", pol, "--key", keyFile, "--key-id", "sec-2026-12", "--serial", "2", "--fleet", "eks-*", "--expires", "1h", "--out", b2)
	signedHash := regexp.MustCompile(`\(policy hash (\S+)\)`).FindStringSubmatch(signed)
	if signedHash == nil {
		t.Fatalf("policy sign printed no policy hash: %q", signed)
	}
	raw2, err := os.ReadFile(b2)
	if err != nil {
		t.Fatal(err)
	}
	// The PUT `warden policy publish` makes (serial 1 went through the CLI),
	// so the time measured is the service's and the Wardens', not a process
	// start's.
	start = time.Now()
	resp, err := svcClient.Do(must(http.NewRequest(http.MethodPut, svcURL+bundle.PathPublish, bytes.NewReader(raw2))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	published = time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT serial 2: %s", resp.Status)
	}
	<-done
	var last time.Duration
	for i, w := range fleet {
		if arrived[i] == 0 {
			t.Fatalf("%s did not run serial 2 within %v of the publish (serial %v)", w.ns, propagationBound, w.metric("warden_policy_serial"))
		}
		last = max(last, arrived[i])
	}
	t.Logf("serial 2 reached %d Warden processes %v after the publish PUT started (the PUT took %v; per Warden %v; long-poll, /metrics polled every 2ms)",
		len(fleet), last.Round(time.Millisecond), published.Round(time.Millisecond), roundAll(arrived))

	good := map[string]string{}
	for _, w := range fleet {
		waitUntil(t, w.ns+" ready on serial 2", func() bool {
			code, body := w.get("/readyz")
			return code == 200 && strings.Contains(body, "serial 2")
		})
		if err := w.converse(claudeModel); err != nil {
			t.Fatalf("%s: claude under serial 2: %v", w.ns, err)
		}
		good[w.ns] = w.policyHash()
		// One hash for one policy: what `warden policy sign` printed is
		// what /metrics shows (and, below, what the audit records carry).
		if good[w.ns] != signedHash[1] {
			t.Errorf("%s: warden_policy_info hash %s, but policy sign printed %s", w.ns, good[w.ns], signedHash[1])
		}
	}

	// checkRefused waits for every Warden to count one more refusal of
	// reason, then checks each still runs serial 2.
	checkRefused := func(t *testing.T, reason string, before []float64) {
		t.Helper()
		for i, w := range fleet {
			waitUntil(t, w.ns+" refusing "+reason, func() bool { return w.refused(reason) > before[i] })
		}
		for _, w := range fleet {
			if s := w.metric("warden_policy_serial"); s != 2 {
				t.Errorf("%s: warden_policy_serial %v after a %s bundle, want 2", w.ns, s, reason)
			}
			if h := w.policyHash(); h != good[w.ns] {
				t.Errorf("%s: policy hash %s after a %s bundle, want %s", w.ns, h, reason, good[w.ns])
			}
			if code, body := w.get("/readyz"); code != 200 || !strings.Contains(body, "serial 2") || !strings.Contains(body, "last problem") {
				t.Errorf("%s: /readyz after a %s bundle = %d %q", w.ns, reason, code, body)
			}
			// Serial 2 allows Claude; every bad bundle would not.
			if err := w.converse(claudeModel); err != nil {
				t.Errorf("%s: claude after a %s bundle: %v", w.ns, reason, err)
			}
		}
	}
	refusedNow := func(reason string) []float64 {
		out := make([]float64, len(fleet))
		for i, w := range fleet {
			out[i] = w.refused(reason)
		}
		return out
	}

	// Older serial, from the real service: whoever can write its store
	// removes serial 2, and the service serves serial 1 again.
	t.Run("older_serial", func(t *testing.T) {
		before := refusedNow("older_serial")
		if err := os.Remove(filepath.Join(store, bundle.FileName(2))); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, "older_serial", before)
	})

	// A hostile server takes the service's address with its TLS key.
	svc.stop(t)
	hostile := &hostileService{}
	pair, err := tls.LoadX509KeyPair(certFile, keyPEMFile)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	waitUntil(t, "the service's address", func() bool {
		ln, err = tls.Listen("tcp", svcAddr, &tls.Config{Certificates: []tls.Certificate{pair}})
		return err == nil
	})
	hs := &http.Server{Handler: hostile, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	signer := bundle.Signer{KeyID: "sec-2026-12", Key: priv}
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	sign := func(serial uint64, scope bundle.Scope, issued, expires time.Time, s bundle.Signer) []byte {
		t.Helper()
		raw, err := bundle.Sign(bundle.Envelope{Serial: serial, IssuedAt: issued, ExpiresAt: expires, Scope: scope,
			Policy: fmt.Sprintf(fleetPolicy, `"amazon.nova-*"`)}, s)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	all := bundle.Scope{Fleets: []string{"eks-*"}}
	for _, c := range []struct {
		reason string
		raw    []byte
	}{
		{"bad_signature", tamper(t, sign(10, all, now, now.Add(time.Hour), signer))},
		{"expired", sign(11, all, now.Add(-2*time.Hour), now.Add(-time.Hour), signer)},
		{"out_of_scope", sign(12, bundle.Scope{Fleets: []string{"ecs-*"}}, now, now.Add(time.Hour), signer)},
		{"unsigned", sign(13, all, now, now.Add(time.Hour), bundle.Signer{KeyID: "sec-2026-12-evil", Key: foreign})},
	} {
		t.Run(c.reason, func(t *testing.T) {
			before := refusedNow(c.reason)
			hostile.set(c.raw)
			checkRefused(t, c.reason, before)
		})
	}

	// The audit trail: calls under serial 1, then every call since under
	// serial 2 with its hash. Stopping the Wardens flushes their sinks.
	for _, w := range fleet {
		w.proc.stop(t)
		data, err := os.ReadFile(w.audit)
		if err != nil {
			t.Fatal(err)
		}
		var serials []uint64
		for _, l := range callLines(data) {
			var r struct {
				PolicySerial uint64 `json:"policy_serial"`
				PolicyHash   string `json:"policy_hash"`
				Decision     string `json:"decision"`
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%s audit: %v", w.ns, err)
			}
			serials = append(serials, r.PolicySerial)
			if r.PolicySerial == 2 && (r.PolicyHash != good[w.ns] || r.Decision != "allow") {
				t.Errorf("%s: a serial 2 record with hash %s decision %s", w.ns, r.PolicyHash, r.Decision)
			}
		}
		if want := "[1 1 2 2 2 2 2 2]"; fmt.Sprint(serials) != want {
			t.Errorf("%s: the audit records' serials %v, want %s", w.ns, serials, want)
		}
	}

	// Restarts with no bundle source reachable (nothing listens at dead):
	// a Warden with its cache runs its last good bundle at once; one
	// without a cache is not ready and denies every call (fail closed).
	dead := "https://" + freeAddr(t)
	restart := func(ns, cache string) *fleetWarden {
		t.Helper()
		w := &fleetWarden{ns: ns + "-restarted", endpoint: freeAddr(t), admin: freeAddr(t), audit: filepath.Join(dir, ns+"-restarted-audit.jsonl")}
		cfg := strings.NewReplacer("${EP}", w.endpoint, "${ADMIN}", w.admin, "${UPSTREAM}", emu.URL, "${SPOOL}", filepath.Join(dir, ns+"-restarted-spool"),
			"${AUDIT}", w.audit, "${URL}", dead, "${CA}", caFile, "${PUB}", pub, "${NS}", ns, "${CACHE}", cache).Replace(fleetConfig)
		cfgPath := filepath.Join(dir, ns+"-restarted.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		w.proc = startProc(t, "warden-"+w.ns, bin, env, "serve", "--config", cfgPath)
		return w
	}
	t.Run("restart_from_cache", func(t *testing.T) {
		w := restart(fleet[0].ns, filepath.Join(dir, fleet[0].ns+"-cache"))
		waitUntil(t, w.ns+" answering /readyz", func() bool { code, _ := w.get("/readyz"); return code != 0 })
		if code, body := w.get("/readyz"); code != 200 || !strings.Contains(body, "serial 2") {
			t.Errorf("/readyz = %d %q, want 200 on the cached serial 2", code, body)
		}
		if h := w.policyHash(); h != good[fleet[0].ns] {
			t.Errorf("policy hash %s, want the cached bundle's %s", h, good[fleet[0].ns])
		}
		if err := w.converse(claudeModel); err != nil {
			t.Errorf("claude under the cached serial 2: %v", err)
		}
	})
	t.Run("fail_closed", func(t *testing.T) {
		w := restart("fresh", filepath.Join(dir, "fresh-cache"))
		waitUntil(t, w.ns+" failing to fetch", func() bool {
			_, body := w.get("/readyz")
			return strings.Contains(body, "fetching the policy bundle")
		})
		if code, body := w.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "none loaded") {
			t.Errorf("/readyz = %d %q, want 503, none loaded", code, body)
		}
		if v := w.metric("warden_policy_bundle_loaded"); v != 0 {
			t.Errorf("warden_policy_bundle_loaded = %v, want 0", v)
		}
		if err := w.converse(novaModel); !isAccessDenied(err) {
			t.Errorf("a call with no bundle: %v, want AccessDenied", err)
		}
	})
}

// fleetConfig is each Warden's own config: its policy comes from bundles.
const fleetConfig = `version: 1
listen: {endpoint: "${EP}", admin: "${ADMIN}"}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
audit:
  spool: {dir: "${SPOOL}"}
  sinks: [{file: {path: "${AUDIT}"}}]
bundle:
  url: "${URL}"
  ca_file: "${CA}"
  trusted_keys: [{id: sec-2026-12, public_key: "${PUB}"}]
  fleet: eks-prod
  namespace: "${NS}"
  cache_dir: "${CACHE}"
  wait: 2s
  retry: 100ms
`

// fleetPolicy allows the chatbot the models given.
const fleetPolicy = `apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: [%s]
      operations: [Converse]
`

const (
	novaModel   = "amazon.nova-lite-v1:0"
	claudeModel = "anthropic.claude-3-haiku-20240307-v1:0"
)

// builtWarden is the warden binary, built by the first test that needs it
// and shared by the rest of the test binary's run (TestMain removes it).
var builtWarden struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildWarden returns the warden binary, building it once per test binary.
func buildWarden(t *testing.T) string {
	t.Helper()
	builtWarden.once.Do(func() {
		dir, err := os.MkdirTemp("", "warden-test-bin-")
		if err != nil {
			builtWarden.err = err
			return
		}
		builtWarden.dir, builtWarden.path = dir, filepath.Join(dir, "warden")
		if out, err := exec.Command("go", "build", "-o", builtWarden.path, ".").CombinedOutput(); err != nil {
			builtWarden.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if builtWarden.err != nil {
		t.Fatal(builtWarden.err)
	}
	return builtWarden.path
}

// proc is a child process with its output kept for a failure's report.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	once sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- %s output (last 4 KiB):\n%s", name, tail(p.out.String(), 4096))
		}
	})
	return p
}

// stop sends SIGTERM and waits (SIGKILL after 15s).
func (p *proc) stop(t *testing.T) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Errorf("%s: %v", p.name, err)
			} else if err != nil {
				t.Errorf("%s exited with %v:\n%s", p.name, err, tail(p.out.String(), 4096))
			}
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop on SIGTERM", p.name)
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitUntil polls cond with a generous timeout: arrival is asserted, never
// how fast.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

type fleetWarden struct {
	ns              string
	endpoint, admin string
	audit           string
	proc            *proc
}

func (w *fleetWarden) get(path string) (int, string) {
	resp, err := http.Get("http://" + w.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one sample from /metrics by its full name with labels
// (-1: absent).
func (w *fleetWarden) metric(series string) float64 {
	_, body := w.get("/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func (w *fleetWarden) refused(reason string) float64 {
	return max(0, w.metric(`warden_policy_bundle_refused_total{reason="`+reason+`"}`))
}

// policyHash is the hash warden_policy_info{hash} carries.
func (w *fleetWarden) policyHash() string {
	_, body := w.get("/metrics")
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, `warden_policy_info{hash="`); ok {
			h, _, _ := strings.Cut(rest, `"`)
			return h
		}
	}
	return ""
}

func (w *fleetWarden) converse(model string) error {
	c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + w.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", ""), RetryMaxAttempts: 1,
		HTTPClient: bedrocktest.BufferedClient(nil)})
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
	return err
}

func isAccessDenied(err error) bool {
	var ade *types.AccessDeniedException
	return errors.As(err, &ade)
}

// hostileService answers GET /v1/bundle with whatever bundle it holds, as
// a compromised bundle service (or one impersonating it with its key)
// would: ETag and If-None-Match like the real one, no verification.
type hostileService struct {
	raw atomic.Pointer[[]byte]
}

func (h *hostileService) set(raw []byte) { h.raw.Store(&raw) }

func (h *hostileService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.raw.Load()
	if r.URL.Path != bundle.PathBundle || p == nil {
		http.Error(w, "no bundle", http.StatusNotFound)
		return
	}
	if r.Header.Get("If-None-Match") == bundle.ETagOf(*p) {
		// A short long-poll: the Warden asks again soon.
		time.Sleep(100 * time.Millisecond)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", bundle.ETagOf(*p))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(*p)
}

// tamper changes a signed bundle's policy after signing (allowing every
// model), keeping its signature.
func tamper(t *testing.T, raw []byte) []byte {
	t.Helper()
	b, env, _, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	env.Policy = strings.Replace(env.Policy, "amazon.nova-*", "*", 1)
	envRaw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	b.Envelope = base64.StdEncoding.EncodeToString(envRaw)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeServiceTLS writes a CA and, signed by it, the bundle service's
// certificate for 127.0.0.1: ca.pem, tls.crt, tls.key.
func writeServiceTLS(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden-bundles-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "warden-bundles"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: leafDER},
		keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
