package proxy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/bundle"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// bundleBase is a Warden's own config when its policy comes from bundles.
const bundleBase = `
version: 1
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
bundle:
  url: "${URL}"
  ca_file: "${CA}"
  trusted_keys: [{id: sec-2026-12, public_key: "${PUB}"}]
  fleet: eks-prod
  namespace: "${NS}"
  cache_dir: "${CACHE}"
  wait: 2s
  retry: 20ms
`

// bundlePolicy allows one model family to the chatbot.
const bundlePolicy = `
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: [%s]
      operations: [Converse]
`

type bundleWarden struct {
	ns       string
	srv      *proxy.Server
	audit    *memAudit
	endpoint string
	admin    string
	cache    string
}

// bundleFleet is a bundle service (the real bundle.Service behind TLS,
// or, when override is set, a compromised one serving those bytes) and
// Wardens following it.
type bundleFleet struct {
	dir      string
	svc      *bundle.Service
	override atomic.Pointer[[]byte]
	url, ca  string
	signer   bundle.Signer
	pub      string
	upstream string
	cp       string
	wardens  []*bundleWarden
}

func newBundleFleet(t *testing.T) *bundleFleet {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 42
	key := ed25519.NewKeyFromSeed(seed)
	f := &bundleFleet{dir: t.TempDir(), signer: bundle.Signer{KeyID: "sec-2026-12", Key: key},
		pub: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))}
	var err error
	f.svc, err = bundle.NewService(context.Background(), bundle.DirStore{Dir: f.dir}, bundle.Trust{"sec-2026-12": key.Public().(ed25519.PublicKey)}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw := f.override.Load(); raw != nil && r.URL.Path == bundle.PathBundle {
			if r.Header.Get("If-None-Match") == bundle.ETagOf(*raw) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", bundle.ETagOf(*raw))
			_, _ = w.Write(*raw)
			return
		}
		f.svc.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	f.url = ts.URL
	f.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	f.upstream, f.cp = newEmulator(t).URL, newControlPlane(t).URL
	return f
}

func (f *bundleFleet) sign(t *testing.T, serial uint64, models string, scope bundle.Scope, issued, expires time.Time) []byte {
	t.Helper()
	raw, err := bundle.Sign(bundle.Envelope{Serial: serial, IssuedAt: issued, ExpiresAt: expires, Scope: scope,
		Policy: fmt.Sprintf(bundlePolicy, models)}, f.signer)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// publish adds a bundle to the service, as `warden policy publish` to its
// PUT does.
func (f *bundleFleet) publish(t *testing.T, raw []byte) {
	t.Helper()
	v, err := bundle.Verify(raw, bundle.Policy{Trust: bundle.Trust{"sec-2026-12": f.signer.Key.Public().(ed25519.PublicKey)}, AnyScope: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Add(context.Background(), v); err != nil {
		t.Fatal(err)
	}
}

// start runs a Warden for namespace ns; cache "" gives it a fresh cache.
func (f *bundleFleet) start(t *testing.T, ns, url, cache string) *bundleWarden {
	t.Helper()
	if cache == "" {
		cache = t.TempDir()
	}
	y := strings.NewReplacer("${UPSTREAM}", f.upstream, "${CONTROL_PLANE}", f.cp, "${URL}", url, "${CA}", f.ca,
		"${PUB}", f.pub, "${NS}", ns, "${CACHE}", cache).Replace(bundleBase)
	cfg, err := config.ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	w := &bundleWarden{ns: ns, audit: &memAudit{}, cache: cache}
	w.srv, err = proxy.New(context.Background(), proxy.Options{Config: cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""), Audit: w.audit, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	aln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = w.srv.ServeEndpoint(ln, nil) }()
	go func() { _ = w.srv.ServeAdmin(aln) }()
	ctx, cancel := context.WithCancel(context.Background())
	fo, err := w.srv.FollowBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		// The follower may be writing its cache (t.TempDir, removed after
		// this) and logging through the test's logger: wait for it.
		select {
		case <-fo.Stopped():
		case <-time.After(10 * time.Second):
			t.Error("the bundle follower did not stop within 10 s of its context's end")
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = w.srv.Shutdown(sctx)
	})
	w.endpoint, w.admin = "http://"+ln.Addr().String(), "http://"+aln.Addr().String()
	return w
}

func (w *bundleWarden) converse(t *testing.T, model string) error {
	t.Helper()
	c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(w.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(appKey, appSecret, ""), RetryMaxAttempts: 1,
		HTTPClient: bedrocktest.BufferedClient(nil)})
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
	return err
}

func (w *bundleWarden) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(w.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *bundleWarden) refused(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := w.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "warden_policy_bundle_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// eventually polls cond with a generous timeout: only arrival is asserted,
// never how fast.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func isDenied(err error) bool {
	var ade *types.AccessDeniedException
	return errors.As(err, &ade)
}

const (
	novaModel   = "amazon.nova-lite-v1:0"
	claudeModel = "anthropic.claude-3-haiku-20240307-v1:0"
)

// TestBundlePropagationAndRefusals: a policy change reaches three Wardens
// (a canary first, then all); a tampered, an older-serial, an expired and an
// out-of-scope bundle are each refused by all of them while they keep the
// last good policy (hash and serial unchanged, calls decided by it).
func TestBundlePropagationAndRefusals(t *testing.T) {
	f := newBundleFleet(t)
	now := time.Now()
	all := bundle.Scope{Fleets: []string{"eks-*"}}
	f.publish(t, f.sign(t, 1, `"amazon.nova-*"`, all, now, now.Add(time.Hour)))

	// Three Wardens: a canary namespace and two others.
	for _, ns := range []string{"canary-shop", "shop", "reports"} {
		f.wardens = append(f.wardens, f.start(t, ns, f.url, ""))
	}
	for _, w := range f.wardens {
		// The policy is applied a moment before the follower records it.
		eventually(t, w.ns+" on serial 1", func() bool {
			code, _ := w.readyz(t)
			return w.srv.PolicySerial() == 1 && code == 200
		})
		if code, body := w.readyz(t); code != 200 || !strings.Contains(body, "serial 1") {
			t.Fatalf("%s /readyz = %d %q", w.ns, code, body)
		}
		if err := w.converse(t, novaModel); err != nil {
			t.Fatalf("%s: nova under serial 1: %v", w.ns, err)
		}
		if err := w.converse(t, claudeModel); !isDenied(err) {
			t.Fatalf("%s: claude under serial 1: %v, want AccessDenied", w.ns, err)
		}
	}

	// Staged roll-out: serial 2 for canary namespaces only.
	f.publish(t, f.sign(t, 2, `"amazon.nova-*", "anthropic.*"`, bundle.Scope{Namespaces: []string{"canary-*"}}, now, now.Add(time.Hour)))
	eventually(t, "the canary on serial 2", func() bool { return f.wardens[0].srv.PolicySerial() == 2 })
	if err := f.wardens[0].converse(t, claudeModel); err != nil {
		t.Fatalf("canary: claude under serial 2: %v", err)
	}
	for _, w := range f.wardens[1:] {
		if s := w.srv.PolicySerial(); s != 1 {
			t.Fatalf("%s took the canary bundle: serial %d", w.ns, s)
		}
	}

	// Everyone: serial 3. Measure the time from publish to the last Warden.
	start := time.Now()
	f.publish(t, f.sign(t, 3, `"amazon.nova-*", "anthropic.*"`, all, now, now.Add(time.Hour)))
	for _, w := range f.wardens {
		eventually(t, w.ns+" on serial 3", func() bool { return w.srv.PolicySerial() == 3 })
	}
	t.Logf("bundle serial 3 reached %d Wardens %s after publish (long-poll)", len(f.wardens), time.Since(start))
	good := map[string]string{}
	for _, w := range f.wardens {
		good[w.ns] = w.srv.PolicyHash()
		if err := w.converse(t, claudeModel); err != nil {
			t.Fatalf("%s: claude under serial 3: %v", w.ns, err)
		}
	}

	// A compromised or broken service now serves bad bundles.
	tampered := f.sign(t, 10, `"amazon.nova-*"`, all, now, now.Add(time.Hour))
	tampered = []byte(strings.Replace(string(tampered), `"envelope": "`, `"envelope": "`+base64.StdEncoding.EncodeToString([]byte(`{"x":1}`))[:4], 1))
	bad := []struct {
		reason string
		raw    []byte
	}{
		{"bad_signature", tamperPolicy(t, f.sign(t, 11, `"amazon.nova-*"`, all, now, now.Add(time.Hour)))},
		{"older_serial", f.sign(t, 2, `"amazon.nova-*"`, all, now, now.Add(time.Hour))},
		{"expired", f.sign(t, 12, `"amazon.nova-*"`, all, now.Add(-2*time.Hour), now.Add(-time.Hour))},
		{"out_of_scope", f.sign(t, 13, `"amazon.nova-*"`, bundle.Scope{Fleets: []string{"ecs-*"}}, now, now.Add(time.Hour))},
		{"unsigned", unsign(t, f.sign(t, 14, `"amazon.nova-*"`, all, now, now.Add(time.Hour)))},
		{"malformed", tampered},
	}
	for _, b := range bad {
		t.Run(b.reason, func(t *testing.T) {
			before := make([]float64, len(f.wardens))
			for i, w := range f.wardens {
				before[i] = w.refused(t, b.reason)
			}
			raw := b.raw
			f.override.Store(&raw)
			// The Wardens are in a long-poll on the real service: an unchanged
			// bundle answers 304 at the wait's end, then they ask again.
			for i, w := range f.wardens {
				eventually(t, w.ns+" refusing "+b.reason, func() bool { return w.refused(t, b.reason) > before[i] })
			}
			for _, w := range f.wardens {
				if w.srv.PolicySerial() != 3 || w.srv.PolicyHash() != good[w.ns] {
					t.Errorf("%s: serial %d hash %s after a %s bundle, want 3 %s", w.ns, w.srv.PolicySerial(), w.srv.PolicyHash(), b.reason, good[w.ns])
				}
				if err := w.converse(t, claudeModel); err != nil { // serial 3 allows it; the bad bundles would not
					t.Errorf("%s: claude after a %s bundle: %v", w.ns, b.reason, err)
				}
				recs := w.audit.all()
				last := recs[len(recs)-1]
				if last.PolicySerial != 3 || last.PolicyHash != good[w.ns] || last.Decision != "allow" {
					t.Errorf("%s: last record serial %d hash %s %s", w.ns, last.PolicySerial, last.PolicyHash, last.Decision)
				}
				if code, body := w.readyz(t); code != 200 || !strings.Contains(body, "serial 3") || !strings.Contains(body, "last problem") {
					t.Errorf("%s /readyz after a %s bundle = %d %q", w.ns, b.reason, code, body)
				}
			}
			f.override.Store(nil)
		})
	}

	// A restart with the service unreachable: the cached last good bundle.
	dead := "https://127.0.0.1:1"
	w := f.start(t, "shop", dead, f.wardens[1].cache)
	if w.srv.PolicySerial() != 3 || w.srv.PolicyHash() != good["shop"] {
		t.Fatalf("restart from the cache: serial %d hash %s", w.srv.PolicySerial(), w.srv.PolicyHash())
	}
	if code, _ := w.readyz(t); code != 200 {
		t.Fatalf("restart from the cache: /readyz %d", code)
	}
	if got := gaugeOf(t, w, "warden_policy_serial"); got != 3 {
		t.Errorf("warden_policy_serial = %v", got)
	}
}

// gaugeOf re-reads one unlabelled gauge from a Warden's registry.
func gaugeOf(t *testing.T, w *bundleWarden, name string) float64 {
	t.Helper()
	mfs, err := w.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestBundleFailClosed: no reachable service and no cached bundle: not
// ready, every call denied.
func TestBundleFailClosed(t *testing.T) {
	f := newBundleFleet(t)
	w := f.start(t, "shop", "https://127.0.0.1:1", "")
	eventually(t, "a failed fetch", func() bool {
		_, body := w.readyz(t)
		return strings.Contains(body, "fetching the policy bundle")
	})
	if code, body := w.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "none loaded") {
		t.Fatalf("/readyz = %d %q, want 503", code, body)
	}
	if err := w.converse(t, novaModel); !isDenied(err) {
		t.Fatalf("a call with no policy: %v, want AccessDenied", err)
	}
}

func tamperPolicy(t *testing.T, raw []byte) []byte {
	t.Helper()
	b, env, _, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	env.Policy = strings.Replace(env.Policy, "amazon.nova-*", "*", 1)
	return rewrap(t, b, env)
}

func unsign(t *testing.T, raw []byte) []byte {
	t.Helper()
	b, env, _, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	b.Signatures = nil
	return rewrap(t, b, env)
}

func rewrap(t *testing.T, b *bundle.Bundle, env *bundle.Envelope) []byte {
	t.Helper()
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

// TestBundleExpiredKeepsServing: the service is unreachable and the
// running bundle expires: the Warden keeps deciding with it and says so in
// /readyz, warden_policy_bundle_expired and every audit record.
func TestBundleExpiredKeepsServing(t *testing.T) {
	f := newBundleFleet(t)
	now := time.Now()
	// Expiry is kept to the second: a few seconds from now, so that on a
	// loaded machine both Wardens are up and have served a call before it.
	expires := now.Add(4 * time.Second)
	f.publish(t, f.sign(t, 5, `"amazon.nova-*"`, bundle.Scope{Fleets: []string{"*"}}, now, expires))
	first := f.start(t, "shop", f.url, "")
	eventually(t, "serial 5", func() bool { code, _ := first.readyz(t); return first.srv.PolicySerial() == 5 && code == 200 })
	// The bundle takes effect before it is cached: wait for the cache file
	// the restarted Warden reads.
	eventually(t, "the cached bundle", func() bool {
		_, err := os.Stat(filepath.Join(first.cache, bundle.CacheFile))
		return err == nil
	})

	// Restarted with the service gone: the cached bundle, then its expiry.
	w := f.start(t, "shop", "https://127.0.0.1:1", first.cache)
	eventually(t, "serial 5 from the cache", func() bool { return w.srv.PolicySerial() == 5 })
	if err := w.converse(t, novaModel); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	// The record's flag is only wrong if the call ended before the expiry
	// (the second is rounded down: a second's margin).
	if recs := w.audit.all(); recs[len(recs)-1].PolicyExpired && time.Now().Before(expires.Add(-time.Second)) {
		t.Fatal("a record says expired before the expiry")
	}
	eventually(t, "the expiry", func() bool { return time.Now().After(expires.Add(time.Second)) })
	if err := w.converse(t, novaModel); err != nil {
		t.Fatalf("after expiry the last good bundle no longer decides: %v", err)
	}
	if err := w.converse(t, claudeModel); !isDenied(err) {
		t.Fatalf("after expiry: claude %v, want AccessDenied", err)
	}
	recs := w.audit.all()
	for _, r := range recs[len(recs)-2:] {
		if !r.PolicyExpired || r.PolicySerial != 5 {
			t.Fatalf("record after expiry: expired %v serial %d", r.PolicyExpired, r.PolicySerial)
		}
	}
	if code, body := w.readyz(t); code != 200 || !strings.Contains(body, "serial 5") || !strings.Contains(body, "EXPIRED") {
		t.Fatalf("/readyz after expiry = %d %q", code, body)
	}
	if got := gaugeOf(t, w, "warden_policy_bundle_expired"); got != 1 {
		t.Fatalf("warden_policy_bundle_expired = %v", got)
	}
}

// TestBundleEveryRecordCarriesThePolicy: issue 15 wants the policy hash and
// serial in every audit record, so the records of calls refused before the
// policy decides (a body that does not parse, an operation Warden does not
// know, an unsigned request) carry the running policy's too: an auditor
// reading any record knows which policy the Warden ran.
func TestBundleEveryRecordCarriesThePolicy(t *testing.T) {
	f := newBundleFleet(t)
	now := time.Now()
	f.publish(t, f.sign(t, 7, `"amazon.nova-*"`, bundle.Scope{Fleets: []string{"*"}}, now, now.Add(time.Hour)))
	w := f.start(t, "shop", f.url, "")
	eventually(t, "serial 7", func() bool { return w.srv.PolicySerial() == 7 })
	hash := w.srv.PolicyHash()
	if hash == "" {
		t.Fatal("no policy hash with serial 7 running")
	}
	for _, c := range []struct{ name, method, path, body string }{
		{"unparsable body", http.MethodPost, "/model/" + novaModel + "/converse", "{not json"},
		{"unknown operation", http.MethodPost, "/no/such/operation", "{}"},
		{"unsigned get", http.MethodGet, "/", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(w.audit.all())
			req, err := http.NewRequest(c.method, w.endpoint+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("%s %s answered %s, want a refusal", c.method, c.path, resp.Status)
			}
			recs := w.audit.wait(t, before+1)
			r := recs[len(recs)-1]
			if r.PolicyHash != hash || r.PolicySerial != 7 {
				t.Errorf("record of a refused %s (status %d, reason %q): policy_hash %q policy_serial %d, want %q and 7",
					c.name, r.Status, r.Reason, r.PolicyHash, r.PolicySerial, hash)
			}
		})
	}
}
