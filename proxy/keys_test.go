package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
)

// keysPolicy selects app "keyed" by a verified Warden-issued key and app
// "static-app" by the static (weak, loopback-only) tags. Both may use haiku,
// so a denial can only come from identity.
const keysPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [keys, static]
  keys:
    master_key_file: %s
    revoked: [%s]
  static: {app: chatbot, env: prod}
apps:
  - name: keyed
    match: {tags: {warden.key_app: payments}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel]
  - name: keyed-billing
    match: {tags: {warden.key_app: billing}}
    allow:
      models: ["amazon.nova-*"]
      operations: [Converse]
  - name: static-app
    match: {tags: {app: chatbot, env: prod}}
%s    allow:
      models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*"]
      operations: [Converse, ConverseStream, InvokeModel]
`

type keysEnv struct {
	*env
	master []byte
	// keys for app "payments"
	goodID, goodSecret       string
	revokedID, revokedSecret string
}

func startKeysEnv(t *testing.T) *keysEnv {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "master.key")
	if _, err := identity.GenerateMasterKey(file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	master, err := identity.LoadMasterKey(file)
	if err != nil {
		t.Fatal(err)
	}
	k := &keysEnv{master: master}
	exp := time.Now().Add(30 * 24 * time.Hour)
	if k.goodID, k.goodSecret, err = identity.IssueKey(master, "payments", exp, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.revokedID, k.revokedSecret, err = identity.IssueKey(master, "payments", exp, rand.Reader); err != nil {
		t.Fatal(err)
	}
	// An app selecting only weak tags may have to say so (issue 3); use the
	// flag when this release's policy model knows it.
	weak := "    allow_weak_identity: true\n"
	probe := fmt.Sprintf(keysPolicy, file, k.revokedID, weak)
	if _, err := config.ParseConfig([]byte(strings.ReplaceAll(probe, "${UPSTREAM}", "http://127.0.0.1:1"))); err != nil &&
		strings.Contains(err.Error(), "allow_weak_identity") {
		weak = ""
	}
	k.env = startEnv(t, withPolicy(fmt.Sprintf(keysPolicy, file, k.revokedID, weak)))
	return k
}

// sdk is the real Go SDK pointed at Warden with the given static
// credentials, as an app with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set.
func (k *keysEnv) sdk(akid, secret string, hc *http.Client) *bedrockruntime.Client {
	o := bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(k.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
	}
	if hc != nil {
		o.HTTPClient = bedrocktest.BufferedClient(hc)
	} else {
		o.HTTPClient = bedrocktest.BufferedClient(nil)
	}
	return bedrockruntime.New(o)
}

// A Warden-issued key in the real Go SDK (HTTP/1.1 and h2c) gets the keyed
// app; Warden re-signs upstream with its own key.
func TestKeysGoSDKAllowed(t *testing.T) {
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			k := startKeysEnv(t)
			var hc *http.Client
			if proto == "h2c" {
				hc = h2cClient()
			}
			c := k.sdk(k.goodID, k.goodSecret, hc)
			ctx := context.Background()
			if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello with a Warden key")}); err != nil {
				t.Fatalf("Converse: %v", err)
			}
			cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(usHaiku), Messages: userMsg("stream with a Warden key")})
			if err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			for range cs.GetStream().Events() {
			}
			if err := cs.GetStream().Err(); err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			calls := k.emu.Calls()
			if len(calls) != 2 {
				t.Fatalf("emulator saw %d calls, want 2", len(calls))
			}
			for _, call := range calls {
				if !call.SignatureOK || call.AccessKeyID != wardenKey {
					t.Errorf("%s: upstream signed by %q (ok %v: %s), want Warden's own key", call.Op, call.AccessKeyID, call.SignatureOK, call.AuthError)
				}
				if strings.Contains(call.Header.Get("Authorization"), k.goodID) {
					t.Errorf("%s: the issued key reached the upstream", call.Op)
				}
			}
			for _, rec := range k.audit.wait(t, 2) {
				if rec.Decision != "allow" || rec.App != "keyed" || rec.IdentitySource != "keys" ||
					rec.Tags[identity.TagWardenKeyApp] != "payments" || rec.Tags[identity.TagWardenKeyID] != k.goodID {
					t.Errorf("audit: %+v", rec)
				}
				if strings.Contains(fmt.Sprint(rec), k.goodSecret) {
					t.Error("the audit record carries the secret")
				}
			}
		})
	}
}

// Keys that fail verification deny with AccessDeniedException naming the
// reason, and are never served by the static source that would otherwise
// answer for this loopback caller.
func TestKeysGoSDKDenied(t *testing.T) {
	k := startKeysEnv(t)
	expiredID, expiredSecret, err := identity.IssueKey(k.master, "payments", time.Now().Add(-time.Minute), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherMaster := make([]byte, 32)
	_, _ = rand.Read(otherMaster)
	foreignID, foreignSecret, _ := identity.IssueKey(otherMaster, "payments", time.Now().Add(time.Hour), rand.Reader)
	// An id edited to name another app, signed with the original secret.
	tamperedID, _, _ := identity.IssueKey(k.master, "admin", time.Now().Add(time.Hour), rand.Reader)

	cases := []struct {
		name, akid, secret, reason string
	}{
		{"expired", expiredID, expiredSecret, "key expired"},
		{"revoked", k.revokedID, k.revokedSecret, "key revoked"},
		{"wrong secret", k.goodID, strings.Repeat("0", 64), "signature does not match"},
		{"tampered id", tamperedID, k.goodSecret, "signature does not match"},
		{"another master", foreignID, foreignSecret, "signature does not match"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.sdk(tc.akid, tc.secret, nil).Converse(context.Background(),
				&bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("should not pass")})
			var ade *types.AccessDeniedException
			if !errors.As(err, &ade) {
				t.Fatalf("err = %v, want AccessDeniedException", err)
			}
			msg := ade.ErrorMessage()
			if !strings.Contains(msg, "failed verification") || !strings.Contains(msg, tc.reason) {
				t.Errorf("message %q should say the key failed verification (%s)", msg, tc.reason)
			}
			if strings.Contains(msg, tc.secret) || strings.Contains(msg, "canonical request") {
				t.Errorf("message reveals too much: %q", msg)
			}
			rec := k.audit.wait(t, i+1)[i]
			if rec.Decision != "deny" || rec.App != "" || rec.Rule != "identity" || rec.Status != 403 {
				t.Errorf("audit: decision %s app %q rule %s status %d (must not be served as static-app)", rec.Decision, rec.App, rec.Rule, rec.Status)
			}
		})
	}
	if n := len(k.emu.Calls()); n != 0 {
		t.Errorf("emulator saw %d calls; denied keys must not reach it", n)
	}
}

// Ordinary (non-Warden) credentials are not a presented Warden key: the
// static source answers as before.
func TestKeysOrdinaryCredentialsUseStatic(t *testing.T) {
	k := startKeysEnv(t)
	if _, err := k.sdk(appKey, appSecret, nil).Converse(context.Background(),
		&bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("static")}); err != nil {
		t.Fatalf("Converse: %v", err)
	}
	rec := k.audit.wait(t, 1)[0]
	if rec.Decision != "allow" || rec.App != "static-app" || rec.IdentitySource != "static" {
		t.Errorf("audit: %+v", rec)
	}
}

// The real JS SDK with an issued key in its environment: HTTP/2 (h2c), which
// signs ":authority" instead of host; verified by Warden and allowed. The same
// key with a wrong secret is denied.
func TestKeysJSSDK(t *testing.T) {
	dir := jsClientDir(t)
	k := startKeysEnv(t)
	r := runJSWith(t, dir, k.endpoint, k.goodID, k.goodSecret, "converse", haiku, "hello from node with a Warden key")
	if !r.OK || r.Text == "" {
		t.Fatalf("converse: %+v", r)
	}
	r = runJSWith(t, dir, k.endpoint, k.goodID, k.goodSecret, "converse-stream", usHaiku, "stream from node with a Warden key")
	if !r.OK || r.Text == "" {
		t.Fatalf("converse-stream: %+v", r)
	}
	r = runJSWith(t, dir, k.endpoint, k.goodID, strings.Repeat("f", 64), "converse", haiku, "wrong secret")
	if r.OK || r.Name != "AccessDeniedException" || r.Status != 403 || !strings.Contains(r.Message, "failed verification") {
		t.Fatalf("wrong secret: %+v", r)
	}
	recs := k.audit.wait(t, 3)
	for i, rec := range recs[:2] {
		if rec.Decision != "allow" || rec.App != "keyed" || rec.Protocol != "HTTP/2.0" || rec.IdentitySource != "keys" {
			t.Errorf("audit %d: decision %s app %q proto %s source %s", i, rec.Decision, rec.App, rec.Protocol, rec.IdentitySource)
		}
	}
	if recs[2].Decision != "deny" || recs[2].App != "" {
		t.Errorf("audit 2: %+v", recs[2])
	}
	for _, call := range k.emu.Calls() {
		if !call.SignatureOK || call.AccessKeyID != wardenKey {
			t.Errorf("%s not re-signed by Warden: %s", call.Op, call.AuthError)
		}
	}
}

// Two workloads with different issued keys share one Warden: each gets its
// own app and its own models.
func TestKeysTwoWorkloads(t *testing.T) {
	k := startKeysEnv(t)
	billingID, billingSecret, err := identity.IssueKey(k.master, "billing", time.Now().Add(time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nova := "amazon.nova-lite-v1:0"
	payments, billing := k.sdk(k.goodID, k.goodSecret, nil), k.sdk(billingID, billingSecret, nil)
	converse := func(c *bedrockruntime.Client, model string) error {
		_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")})
		return err
	}
	var ade *types.AccessDeniedException
	if err := converse(payments, haiku); err != nil {
		t.Errorf("payments → haiku: %v", err)
	}
	if err := converse(payments, nova); !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "keyed") {
		t.Errorf("payments → nova: %v, want AccessDenied by app keyed", err)
	}
	if err := converse(billing, nova); err != nil {
		t.Errorf("billing → nova: %v", err)
	}
	if err := converse(billing, haiku); !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "keyed-billing") {
		t.Errorf("billing → haiku: %v, want AccessDenied by app keyed-billing", err)
	}
	recs := k.audit.wait(t, 4)
	for i, want := range []struct{ app, decision string }{{"keyed", "allow"}, {"keyed", "deny"}, {"keyed-billing", "allow"}, {"keyed-billing", "deny"}} {
		if recs[i].App != want.app || recs[i].Decision != want.decision {
			t.Errorf("audit %d: app %q decision %s, want %s %s", i, recs[i].App, recs[i].Decision, want.app, want.decision)
		}
	}
}

// bodyTamperer alters the request body after the SDK signed it (same
// length), as a man in the middle would.
type bodyTamperer struct{ rt http.RoundTripper }

func (b bodyTamperer) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	body = bytes.Replace(body, []byte("transfer 10"), []byte("transfer 99"), 1)
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	return b.rt.RoundTrip(r2)
}

// A body altered after signing, and a request signed outside the clock skew
// window, are denied.
func TestKeysAlteredBodyAndSkew(t *testing.T) {
	k := startKeysEnv(t)
	c := k.sdk(k.goodID, k.goodSecret, &http.Client{Transport: bodyTamperer{http.DefaultTransport}})
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("transfer 10")})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) || !strings.Contains(ade.ErrorMessage(), "signature does not match") {
		t.Fatalf("altered body: %v", err)
	}

	// Signed by the SDK's own signer ten minutes ago.
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"old"}]}]}`)
	req, _ := http.NewRequest(http.MethodPost, k.endpoint+"/model/"+strings.ReplaceAll(haiku, ":", "%3A")+"/converse", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: k.goodID, SecretAccessKey: k.goodSecret},
		req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") != "AccessDeniedException" || !bytes.Contains(msg, []byte("clock skew")) {
		t.Fatalf("skewed: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), msg)
	}
	if n := len(k.emu.Calls()); n != 0 {
		t.Errorf("emulator saw %d calls", n)
	}
}

// A Warden-issued bearer key (Authorization: Bearer or x-api-key, as the
// OpenAI and Anthropic SDKs send it) identifies its app like the SigV4 key;
// neither header reaches the upstream, which sees Warden's signature; a real
// Bedrock API key is refused before anything else and never recorded.
func TestKeysBearer(t *testing.T) {
	k := startKeysEnv(t)
	good := identity.BearerKeyFor(k.master, k.goodID)
	revoked := identity.BearerKeyFor(k.master, k.revokedID)
	const absk = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlOnNlY3JldA=="
	call := func(h, v string) (int, string) {
		req, _ := http.NewRequest("POST", k.endpoint+"/model/"+haiku+"/converse", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(h, v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, hv := range [][2]string{{"Authorization", "Bearer " + good}, {"X-Api-Key", good}} {
		if st, body := call(hv[0], hv[1]); st != 200 {
			t.Fatalf("%s: %d %s", hv[0], st, body)
		}
	}
	calls := k.emu.Calls()
	if len(calls) != 2 {
		t.Fatalf("emulator saw %d calls", len(calls))
	}
	for _, c := range calls {
		if !c.SignatureOK || c.AccessKeyID != wardenKey || c.Header.Get("X-Api-Key") != "" || strings.Contains(c.Header.Get("Authorization"), k.goodID) {
			t.Errorf("upstream saw %q / x-api-key %q (signature ok %v)", c.Header.Get("Authorization"), c.Header.Get("X-Api-Key"), c.SignatureOK)
		}
	}
	for _, rec := range k.audit.wait(t, 2) {
		if rec.Decision != "allow" || rec.App != "keyed" || rec.Tags[identity.TagWardenKeyID] != k.goodID {
			t.Errorf("audit: %+v", rec)
		}
	}

	for _, tc := range []struct{ name, h, v, says string }{
		{"revoked", "Authorization", "Bearer " + revoked, "key revoked"},
		{"edited", "X-Api-Key", good[:len(good)-2] + "AA", "signature does not match"},
		{"Bedrock API key", "Authorization", "Bearer " + absk, "Amazon Bedrock API key"},
		{"short-term Bedrock API key", "X-Api-Key", "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29tLz9BY3Rpb249Q2FsbFdpdGhCZWFyZXJUb2tlbg==", "Amazon Bedrock API key"},
	} {
		st, body := call(tc.h, tc.v)
		if st != 403 || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s", tc.name, st, body)
		}
	}
	if n := len(k.emu.Calls()); n != 2 {
		t.Fatalf("refused calls reached the upstream (%d calls)", n)
	}
	recs := k.audit.wait(t, 6)
	for _, rec := range recs[2:] {
		if rec.Decision != "deny" {
			t.Errorf("audit: %+v", rec)
		}
		if s := fmt.Sprint(rec); strings.Contains(s, "ABSKQmVk") || strings.Contains(s, "bedrock-api-key-Ym") {
			t.Error("the audit record carries the Bedrock API key")
		}
	}
	if recs[4].Rule != "identity.bedrock-api-key" {
		t.Errorf("rule %q", recs[4].Rule)
	}
}
