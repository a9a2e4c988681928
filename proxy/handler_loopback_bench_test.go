package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/config"
)

// BenchmarkHandlerLoopback is BenchmarkHandler's 4 KB Converse forwarded
// by Warden's real upstream transport over loopback HTTP/1.1 to an
// in-process upstream that reads the body and answers: the transport's
// writes (one for headers and a small in-memory body, two otherwise) are
// in the CPU per call.
func BenchmarkHandlerLoopback(b *testing.B) {
	b.Run("http1", func(b *testing.B) { benchLoopback(b, false) })
	// Over TLS with HTTP/2, as Bedrock's endpoints: the body is read out
	// of the call's pooled buffer and stamped in place.
	b.Run("h2", func(b *testing.B) { benchLoopback(b, true) })
}

func benchLoopback(b *testing.B, h2 bool) {
	respBody := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(respBody)
	}))
	if h2 {
		up.EnableHTTP2 = true
		up.StartTLS()
	} else {
		up.Start()
	}
	defer up.Close()
	cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "` + up.URL + `", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: discardAudit{}})
	if err != nil {
		b.Fatal(err)
	}
	if h2 {
		s.upstreamRT = up.Client().Transport // trusts the test certificate
	}
	h := s.Handler()
	prompt := `{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("x", 4096) + `"}]}]}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8480/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", strings.NewReader(prompt))
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
