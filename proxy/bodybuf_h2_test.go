package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
)

// TestSharedBodyOverHTTPS: over an HTTPS upstream (the emulator with TLS,
// speaking HTTP/2 as Bedrock does) every re-signed body, short ones too,
// is stamped in place and read out of the call's pooled buffer. Prompts
// of many sizes with texts of their own from several SDK clients at once:
// the emulator verifies each signature against the bytes it got, and
// each forwarded text must be its call's, so a buffer reused too early
// fails the test (run with -race in CI).
func TestSharedBodyOverHTTPS(t *testing.T) {
	const key, secret = "AKIDWARDEN", "warden-secret"
	emu := bedrocktest.NewTLSServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{key: secret}})
	t.Cleanup(emu.Close)
	cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "` + emu.URL + `", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""), Audit: discardAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	s.upstreamRT = emu.Client().Transport // trusts the emulator's certificate
	front := httptest.NewServer(s.Handler())
	t.Cleanup(front.Close)

	sizes := []int{10, 900, 4000, 16 << 10, 70 << 10}
	const workers, rounds = 4, 5
	var mu sync.Mutex
	sent := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(front.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDAPP", "app", ""), RetryMaxAttempts: 1,
			HTTPClient: bedrocktest.BufferedClient(nil)})
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for i, n := range sizes {
					tag := fmt.Sprintf("<w%d r%d c%d>", w, r, i)
					text := tag + strings.Repeat(fmt.Sprintf("w%d r%d c%d ", w, r, i), n/10+1)
					mu.Lock()
					sent[text] = true
					mu.Unlock()
					var meta map[string]string
					if i%2 == 1 {
						meta = map[string]string{"team": "search"}
					}
					_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String("anthropic.claude-3-5-haiku-20241022-v1:0"),
						Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}, RequestMetadata: meta})
					if err != nil {
						t.Errorf("%s %d bytes: %v", tag, n, err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	calls := emu.Calls()
	if len(calls) != workers*rounds*len(sizes) {
		t.Fatalf("emulator saw %d calls, want %d", len(calls), workers*rounds*len(sizes))
	}
	for _, call := range calls {
		if !call.SignatureOK {
			t.Errorf("a %d-byte body's signature does not verify: %s", len(call.Body), call.AuthError)
		}
		if call.Proto != "HTTP/2.0" {
			t.Errorf("upstream protocol %s, want HTTP/2.0", call.Proto)
		}
		var in struct {
			Messages []struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"messages"`
			RequestMetadata map[string]string `json:"requestMetadata"`
		}
		if err := json.Unmarshal(call.Body, &in); err != nil || len(in.Messages) != 1 || len(in.Messages[0].Content) != 1 {
			t.Fatalf("forwarded body does not parse (%v): %.200q", err, call.Body)
		}
		if text := in.Messages[0].Content[0].Text; !sent[text] {
			t.Errorf("a forwarded %d-byte body holds a text no client sent", len(call.Body))
		} else {
			delete(sent, text)
		}
		if in.RequestMetadata["warden_app"] != "a" {
			t.Errorf("forwarded metadata %v", in.RequestMetadata)
		}
	}
}
