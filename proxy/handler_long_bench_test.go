package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/benchtext"
)

// longConverseBody is a Converse request with n bytes of prompt prose.
func longConverseBody(n int) string {
	body, _ := json.Marshal(map[string]any{
		"messages":        []any{map[string]any{"role": "user", "content": []any{map[string]any{"text": benchtext.Prose(n)}}}},
		"inferenceConfig": map[string]any{"maxTokens": 512},
	})
	return string(body)
}

// BenchmarkHandlerLong is BenchmarkHandler with an 800 KB Converse prompt
// (issue 19's long-context call): Warden with a PII guard of every type on
// input and output, without guards, and the bare reverse proxy. Its ns/op
// at -cpu 1 is CPU per call; MB/s is the prompt's bytes per second.
func BenchmarkHandlerLong(b *testing.B) {
	prompt := longConverseBody(800 << 10)
	respBody := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`)
	mk := func() *http.Request {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8480/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", strings.NewReader(prompt))
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "aws-sdk-go-v2/1.0")
		return r
	}
	const base = `
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
limits: {max_body_bytes: 4194304}
`
	run := func(b *testing.B, yaml string) {
		cfg, err := config.ParseConfig([]byte(yaml))
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: encodingAudit{}})
		if err != nil {
			b.Fatal(err)
		}
		s.upstreamRT = cannedTransport{respBody}
		h := s.Handler()
		b.ReportAllocs()
		b.SetBytes(int64(len(prompt)))
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, mk())
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("warden-guards", func(b *testing.B) {
		run(b, base+`guards:
  pii: {pii: {action: block}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, guards: [pii], allow: {models: ["anthropic.*"], operations: [Converse]}}]
`)
	})
	b.Run("warden-noguards", func(b *testing.B) {
		run(b, base+`apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`)
	})
	b.Run("bare-reverse-proxy", func(b *testing.B) {
		u, _ := url.Parse("http://127.0.0.1:1")
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = cannedTransport{respBody}
		rp.BufferPool = bufPool{}
		b.ReportAllocs()
		b.SetBytes(int64(len(prompt)))
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			rp.ServeHTTP(w, mk())
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
