package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

const runtimeHost = "bedrock-runtime.us-east-1.amazonaws.com"

// proxyPolicy serves forward-proxy mode in front of the emulator.
const proxyPolicy = `
version: 1
listen: {proxy: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: ${SIGNING}}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "amazon.nova-*"]
      operations: [InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens]
`

// startProxyEnv runs the emulator and Warden's forward proxy; it returns the
// env (endpoint holds the proxy URL).
func startProxyEnv(t *testing.T, signing string) *env {
	t.Helper()
	policy := strings.ReplaceAll(proxyPolicy, "${SIGNING}", signing)
	return startEnv(t, withPolicy(policy), withListener("proxy"), withAppKeyAccepted())
}

// proxyClient is the real Go SDK configured as an app in proxy mode would
// be: HTTPS_PROXY pointing at Warden and Warden's CA trusted, the endpoint
// left at the real regional host name.
func (e *env) proxyClient(t *testing.T, h2 bool, key, secret string) *bedrockruntime.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.CA().Certificate())
	pu, _ := url.Parse(e.endpoint)
	tr := &http.Transport{
		Proxy:           http.ProxyURL(pu),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(&http.Client{Transport: tr}),
	})
}

func TestForwardProxySmoke(t *testing.T) {
	for _, signing := range []string{"resign", "passthrough"} {
		for _, h2 := range []bool{false, true} {
			name := signing + "/h1"
			if h2 {
				name = signing + "/h2"
			}
			t.Run(name, func(t *testing.T) {
				e := startProxyEnv(t, signing)
				key, secret := appKey, appSecret
				c := e.proxyClient(t, h2, key, secret)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if err != nil {
					t.Fatalf("Converse: %v", err)
				}
				if out.Usage == nil {
					t.Fatal("no usage")
				}
				st, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if err != nil {
					t.Fatalf("ConverseStream: %v", err)
				}
				n := 0
				for ev := range st.GetStream().Events() {
					_ = ev
					n++
				}
				if err := st.GetStream().Err(); err != nil || n == 0 {
					t.Fatalf("stream: %d events, %v", n, err)
				}
				_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("meta.llama3-8b-instruct-v1:0"), Messages: userMsg("hi")})
				var ade *types.AccessDeniedException
				if !errors.As(err, &ade) {
					t.Fatalf("denied model: got %v, want AccessDeniedException", err)
				}
				recs := e.audit.wait(t, 3)
				if signing == "passthrough" && recs[0].Tags["aws.access_key_id"] != appKey {
					t.Errorf("passthrough record tags = %v, want aws.access_key_id", recs[0].Tags)
				}
			})
		}
	}
}
