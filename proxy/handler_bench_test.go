package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/audit/audittest"
	"github.com/warden-egress/warden/config"
)

// cannedTransport answers every request with a fixed Converse response
// without touching the network, so the benchmarks below measure only the
// handlers' own work.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {"abc"}, "Content-Length": {"120"}},
		Body:   io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: r}, nil
}

type discardAudit struct{}

func (discardAudit) Begin(*audit.Record) error { return nil }
func (discardAudit) Write(*audit.Record)       {}
func (discardAudit) Close() error              { return nil }

// encodingAudit encodes every record, as a sink's line, and drops it.
type encodingAudit struct{ discardAudit }

func (encodingAudit) Write(r *audit.Record) {
	bp := encodeBufs.Get().(*[]byte)
	*bp = append(r.AppendJSON((*bp)[:0]), '\n')
	_, _ = io.Discard.Write(*bp)
	encodeBufs.Put(bp)
}

var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// BenchmarkHandler compares the CPU Warden's endpoint handler spends per
// Converse call with a bare httputil.ReverseProxy's, both against a canned
// upstream: the part of the added latency that is Warden's own code.
func BenchmarkHandler(b *testing.B) {
	var runWardenWith func(b *testing.B, cfg *config.Config, aw audit.Writer)
	respBody := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`)
	prompt := `{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("x", 4096) + `"}]}]}`
	cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
	if err != nil {
		b.Fatal(err)
	}
	mk := func() *http.Request {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8480/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", strings.NewReader(prompt))
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
		r.Header.Set("X-Amz-Date", "20260101T000000Z")
		r.Header.Set("Amz-Sdk-Invocation-Id", "5f1c")
		r.Header.Set("Amz-Sdk-Request", "attempt=1; max=1")
		r.Header.Set("User-Agent", "aws-sdk-go-v2/1.0")
		return r
	}
	const capped = `
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
audit: {prices: {"anthropic.*": {input_per_mtok: 1, output_per_mtok: 5}}}
apps:
  - name: a
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow: {models: ["anthropic.*"], operations: [Converse]}
    limits: {max_output_tokens: 1024}
`
	capCfg, err := config.ParseConfig([]byte(capped))
	if err != nil {
		b.Fatal(err)
	}
	budgetCfg, err := config.ParseConfig([]byte(capped + `    budgets: {requests_per_second: 1000000000, requests_per_minute: 1000000000, input_tokens_per_minute: 1000000000000000,
      output_tokens_per_minute: 1000000000000000, tokens_per_day: 1000000000000000, cost_per_day_usd: 1000000000,
      cost_per_month_usd: 1000000000, concurrent_streams: 1000}
`))
	if err != nil {
		b.Fatal(err)
	}
	runWarden := func(b *testing.B, aw audit.Writer) { runWardenWith(b, cfg, aw) }
	runWardenWith = func(b *testing.B, cfg *config.Config, aw audit.Writer) {
		s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: aw})
		if err != nil {
			b.Fatal(err)
		}
		s.upstreamRT = cannedTransport{respBody}
		h := s.Handler()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, mk())
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("warden", func(b *testing.B) { runWarden(b, discardAudit{}) })
	// The same over an HTTPS upstream, as Bedrock is (the body is then
	// forwarded out of the pooled read buffer and stamped in place).
	httpsCfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "https://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("warden-https", func(b *testing.B) { runWardenWith(b, httpsCfg, discardAudit{}) })
	// An app with limits.max_output_tokens (a token budget needs it), and
	// the same app with every kind of local budget (in memory, never
	// reached): the difference is the reservation before forwarding and
	// the settlement after.
	b.Run("warden-capped", func(b *testing.B) { runWardenWith(b, capCfg, discardAudit{}) })
	b.Run("warden-capped-budgets", func(b *testing.B) { runWardenWith(b, budgetCfg, discardAudit{}) })
	// With the audit record encoded into io.Discard (no spool).
	b.Run("warden-audited", func(b *testing.B) {
		runWarden(b, encodingAudit{})
	})
	// With the production pipeline: intent and sealed record through the
	// on-disk spool (process durability), shipped to a discarding sink.
	b.Run("warden-spooled", func(b *testing.B) {
		p, err := audit.Open(context.Background(), audit.Options{Dir: b.TempDir(), Instance: "bench", Sinks: []audit.Sink{audittest.Discard{}},
			SegmentBytes: 64 << 20, MaxBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		runWarden(b, p)
	})
	b.Run("bare-reverse-proxy", func(b *testing.B) {
		u, _ := url.Parse("http://127.0.0.1:1")
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = cannedTransport{respBody}
		rp.BufferPool = bufPool{}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			rp.ServeHTTP(w, mk())
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

type bufPool struct{}

func (bufPool) Get() []byte  { return (*copyBufPool.Get().(*[]byte)) }
func (bufPool) Put(b []byte) { copyBufPool.Put(&b) }
