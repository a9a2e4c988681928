package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/smithy-go"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// The acceptance scenarios of issue 3, end to end through the real Go SDK,
// against ONE shared Warden (TLS endpoint, keys and ec2 identity sources,
// trusted_cidrs 127.0.0.0/8) in front of the Bedrock runtime emulator.
//
// Workloads are told apart by their credentials (Warden-issued keys) or by
// the loopback address they connect from (ENIs in the EC2 emulator):
//
//	127.0.0.1  eni-…01  prod account, tag env=prod  → app search-prod
//	127.0.0.2  eni-…02  dev account,  tag env=prod  → app search-dev (the tag is weak; the account is not)
//	127.0.0.3  eni-…03  dev account,  tag env=dev   → app search-dev
const (
	accProdAccount = "111111111111"
	accDevAccount  = "222222222222"
	accOpus        = "anthropic.claude-3-opus-20240229-v1:0" // prod-only
)

const acceptancePolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [keys, ec2]
  trusted_cidrs: [127.0.0.0/8]
  keys: {master_key_file: "${MASTER}"}
  ec2: {endpoint: "${EC2}", cache_ttl: 1m, negative_ttl: 1m, stale_ttl: 1m}
apps:
  # Warden-issued keys: the key's app is strong (it is in the signed key id).
  - name: ledger-prod
    match: {tags: {warden.key_app: ledger-prod}}
    allow:
      models: ["anthropic.claude-3-opus-*", "anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel]
  - name: ledger-dev
    match: {tags: {warden.key_app: ledger-dev}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel]
  # EC2 workloads: prod is the prod account (strong) AND env=prod (weak);
  # dev is the dev account, whatever its tags say.
  - name: search-prod
    match: {tags: {aws.account: "` + accProdAccount + `", aws.tag.env: prod}}
    allow:
      models: ["anthropic.claude-3-opus-*", "anthropic.claude-3-5-haiku-*"]
      operations: [Converse]
  - name: search-dev
    match: {tags: {aws.account: "` + accDevAccount + `"}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*"]
      operations: [Converse]
`

type acceptanceEnv struct {
	emu      *bedrocktest.Server
	ec2      *bedrocktest.EC2Server
	audit    *recorder
	endpoint string // https://127.0.0.1:PORT
	pool     *x509.CertPool
	master   []byte
	nrec     int // audit records seen so far
}

func startAcceptance(t *testing.T) *acceptanceEnv {
	t.Helper()
	dir := t.TempDir()
	// Warden's own credentials for ec2:DescribeNetworkInterfaces come from
	// the environment (the default credential chain), as in production.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": ec2E2EKey, "AWS_SECRET_ACCESS_KEY": ec2E2ESecret, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	masterFile := filepath.Join(dir, "master.key")
	if _, err := identity.GenerateMasterKey(masterFile, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(masterFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &acceptanceEnv{emu: newEmulator(t), audit: newRecorder(), master: master}
	e.ec2 = bedrocktest.NewEC2Server(bedrocktest.EC2Config{Region: "us-east-1", Credentials: map[string]string{ec2E2EKey: ec2E2ESecret}, Logf: bedrocktest.TestLogf(t)})
	t.Cleanup(e.ec2.Close)
	for _, eni := range []bedrocktest.ENI{
		{ID: "eni-0acc000000000001", OwnerID: accProdAccount, PrivateIPs: []string{"127.0.0.1"}, Tags: map[string]string{"env": "prod"}},
		{ID: "eni-0acc000000000002", OwnerID: accDevAccount, PrivateIPs: []string{"127.0.0.2"}, Tags: map[string]string{"env": "prod"}},
		{ID: "eni-0acc000000000003", OwnerID: accDevAccount, PrivateIPs: []string{"127.0.0.3"}, Tags: map[string]string{"env": "dev"}},
	} {
		e.ec2.PutENI(eni)
	}
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${EC2}", e.ec2.URL, "${MASTER}", masterFile).Replace(acceptancePolicy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	srv, err := proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	cert, pool := selfSigned(t)
	e.pool = pool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeEndpoint(ln, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e.endpoint = "https://" + ln.Addr().String()
	return e
}

// sdk is the real Go SDK of a workload connecting from the loopback address
// from with the given credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://warden…, AWS_CA_BUNDLE).
func (e *acceptanceEnv) sdk(from, akid, secret string) *bedrockruntime.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: e.pool}, ForceAttemptHTTP2: true}}
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(hc),
	})
}

func (e *acceptanceEnv) issue(t *testing.T, app string) (string, string) {
	t.Helper()
	id, secret, err := identity.IssueKey(e.master, app, time.Now().Add(24*time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id, secret
}

// next returns the audit record of the call just made.
func (e *acceptanceEnv) next(t *testing.T) audit.Record {
	t.Helper()
	e.nrec++
	return e.audit.wait(t, e.nrec)[e.nrec-1]
}

func converseModel(c *bedrockruntime.Client, model string) error {
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("acceptance")})
	return err
}

// allow makes a call that must pass, reach the upstream re-signed by Warden,
// and be recorded for app.
func (e *acceptanceEnv) allow(t *testing.T, c *bedrockruntime.Client, model, app, source string) {
	t.Helper()
	before := len(e.emu.Calls())
	if err := converseModel(c, model); err != nil {
		t.Fatalf("%s → %s: %v, want allowed", app, model, err)
	}
	calls := e.emu.Calls()
	if len(calls) != before+1 {
		t.Fatalf("%s → %s: upstream saw %d calls, want 1", app, model, len(calls)-before)
	}
	if last := calls[len(calls)-1]; !last.SignatureOK || last.AccessKeyID != wardenKey {
		t.Errorf("%s → %s: upstream signed by %q (%s), want Warden's key", app, model, last.AccessKeyID, last.AuthError)
	}
	rec := e.next(t)
	if rec.Decision != "allow" || rec.App != app || rec.IdentitySource != source {
		t.Errorf("%s → %s: audit decision %s app %q source %q, want allow %s %s", app, model, rec.Decision, rec.App, rec.IdentitySource, app, source)
	}
}

// deny makes a call that must be refused with AccessDeniedException whose
// message contains each of contains, recorded for app ("" = none), with
// nothing reaching the upstream; it returns the audit record.
func (e *acceptanceEnv) deny(t *testing.T, c *bedrockruntime.Client, model, app string, contains ...string) audit.Record {
	t.Helper()
	before := len(e.emu.Calls())
	err := converseModel(c, model)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("→ %s: %v, want AccessDeniedException", model, err)
	}
	for _, s := range contains {
		if !strings.Contains(ae.ErrorMessage(), s) {
			t.Errorf("→ %s: message %q lacks %q", model, ae.ErrorMessage(), s)
		}
	}
	if n := len(e.emu.Calls()) - before; n != 0 {
		t.Errorf("→ %s: a denied call reached the upstream (%d calls)", model, n)
	}
	rec := e.next(t)
	if rec.Decision != "deny" || rec.App != app || rec.Status != http.StatusForbidden {
		t.Errorf("→ %s: audit decision %s app %q status %d, want deny by %q", model, rec.Decision, rec.App, rec.Status, app)
	}
	return rec
}

func TestAcceptance(t *testing.T) {
	e := startAcceptance(t)
	prodID, prodSecret := e.issue(t, "ledger-prod")
	devID, devSecret := e.issue(t, "ledger-dev")

	// (a) Two workloads with different Warden-issued keys, one shared
	// Warden, both connecting from the same address: the key decides. The
	// prod key may use opus, the dev key may not; both may use haiku.
	t.Run("two keys one warden", func(t *testing.T) {
		// From 127.0.0.3 (a dev ENI): the presented key is checked first
		// and wins over the address.
		prod, dev := e.sdk("127.0.0.3", prodID, prodSecret), e.sdk("127.0.0.3", devID, devSecret)
		e.allow(t, prod, accOpus, "ledger-prod", "keys")
		e.allow(t, dev, haiku, "ledger-dev", "keys")
		rec := e.deny(t, dev, accOpus, "ledger-dev", "app ledger-dev may not call", accOpus)
		if rec.Tags[identity.TagWardenKeyApp] != "ledger-dev" || rec.Tags[identity.TagWardenKeyID] != devID {
			t.Errorf("denial audit tags %v", rec.Tags)
		}
		e.allow(t, prod, haiku, "ledger-prod", "keys")
	})

	// (b) Prod is segmented from non-prod: a dev-account workload that tags
	// its ENI env=prod (a weak, team-editable tag) is still search-dev, and
	// its call to the prod-only model is denied naming its own app.
	t.Run("prod unreachable from non-prod", func(t *testing.T) {
		prodApp := e.sdk("127.0.0.1", appKey, appSecret) // ordinary credentials: identity by address
		forgedTag := e.sdk("127.0.0.2", appKey, appSecret)
		dev := e.sdk("127.0.0.3", appKey, appSecret)
		e.allow(t, prodApp, accOpus, "search-prod", "ec2")
		rec := e.deny(t, forgedTag, accOpus, "search-dev", "app search-dev may not call", accOpus)
		if rec.Tags["aws.account"] != accDevAccount || rec.Tags["aws.tag.env"] != "prod" {
			t.Errorf("forged-tag audit tags %v", rec.Tags)
		}
		e.deny(t, dev, accOpus, "search-dev", "app search-dev may not call")
		e.allow(t, dev, haiku, "search-dev", "ec2")
		// The dev key from the prod workload's own address is still dev.
		e.deny(t, e.sdk("127.0.0.1", devID, devSecret), accOpus, "ledger-dev", "app ledger-dev may not call")
	})

	// (c) A forged Warden key is denied even from 127.0.0.1, whose ENI
	// resolves to search-prod (allowed opus, as (b) showed): a presented
	// credential that fails verification never falls back to the address.
	t.Run("forged key never falls back", func(t *testing.T) {
		otherMaster := make([]byte, 32)
		if _, err := rand.Read(otherMaster); err != nil {
			t.Fatal(err)
		}
		foreignID, foreignSecret, _ := identity.IssueKey(otherMaster, "ledger-prod", time.Now().Add(time.Hour), rand.Reader)
		// An id naming ledger-prod, signed with the dev key's (valid) secret.
		tamperedID, _ := e.issue(t, "ledger-prod")
		for _, tc := range []struct{ name, akid, secret string }{
			{"wrong secret", prodID, strings.Repeat("0", 64)},
			{"tampered id", tamperedID, devSecret},
			{"another master", foreignID, foreignSecret},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rec := e.deny(t, e.sdk("127.0.0.1", tc.akid, tc.secret), accOpus, "", "failed verification")
				if rec.Rule != "identity" || rec.IdentitySource == "ec2" || rec.Tags["aws.account"] != "" {
					t.Errorf("audit rule %s source %q tags %v: must not be served by the ec2 source", rec.Rule, rec.IdentitySource, rec.Tags)
				}
			})
		}
		// The same address with ordinary credentials still resolves: the
		// denials above came from the key, not from the network.
		e.allow(t, e.sdk("127.0.0.1", appKey, appSecret), accOpus, "search-prod", "ec2")
	})
}

// scrape returns the server's /metrics text.
func scrape(t *testing.T, srv *proxy.Server) string {
	t.Helper()
	rr := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rr.Code)
	}
	return rr.Body.String()
}

func wantMetrics(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("/metrics lacks %q", l)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// Stale identities and stale model resolutions served during an outage of
// the API they came from are counted on /metrics.
func TestSourceMetrics(t *testing.T) {
	t.Run("ec2 identity cache", func(t *testing.T) {
		e := startEC2Env(t, "127.0.0.0/8", "")
		c := e.client(t, nil)
		if err := ec2Converse(c); err != nil {
			t.Fatal(err)
		}
		wantMetrics(t, scrape(t, e.srv),
			`warden_identity_cache_lookups_total{source="ec2"} 1`,
			`warden_identity_cache_stale_total{source="ec2"} 0`,
			`warden_identity_cache_entries{source="ec2"} 1`)
		time.Sleep(400 * time.Millisecond) // past cache_ttl
		e.ec2.SetOutage(http.StatusServiceUnavailable)
		if err := ec2Converse(c); err != nil {
			t.Fatalf("warm cache during an outage: %v", err)
		}
		if err := ec2Converse(c); err != nil { // within the retry back-off: stale again, no lookup
			t.Fatalf("warm cache during an outage: %v", err)
		}
		m := scrape(t, e.srv)
		wantMetrics(t, m, `warden_identity_cache_stale_total{source="ec2"} 2`)
		// One failed lookup; two if the second call came after the 200 ms
		// retry back-off (a loaded machine): never zero, never more.
		if !strings.Contains(m, `warden_identity_cache_lookup_errors_total{source="ec2"} 1`+"\n") &&
			!strings.Contains(m, `warden_identity_cache_lookup_errors_total{source="ec2"} 2`+"\n") {
			t.Errorf("lookup errors not 1 or 2:\n%s", m)
		}
	})
	t.Run("model resolver", func(t *testing.T) {
		policy := strings.Replace(basePolicy, "insecure: true}", "insecure: true, cache_ttl: 1ms}", 1)
		if policy == basePolicy {
			t.Fatal("basePolicy changed shape")
		}
		e := startEnv(t, withPolicy(policy))
		converse := func() error {
			_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(appProfile), Messages: userMsg("hi")})
			return err
		}
		if err := converse(); err != nil {
			t.Fatal(err)
		}
		wantMetrics(t, scrape(t, e.srv), `warden_model_resolution_stale_total 0`, `warden_model_resolution_lookups_total 1`)
		e.cp.SetDown(true)
		time.Sleep(5 * time.Millisecond) // past cache_ttl
		if err := converse(); err != nil {
			t.Fatalf("outage with a warm cache: %v", err)
		}
		wantMetrics(t, scrape(t, e.srv), `warden_model_resolution_stale_total 1`)
	})
}
