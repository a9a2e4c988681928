package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
)

func TestPromptHash(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	sum := sha256.Sum256(body)
	if got := newPromptDigest(body).sum; got != sum {
		t.Errorf("prompt digest = %x", got)
	}
	if got := hex.EncodeToString(newPromptDigest(nil).sum[:]); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("prompt digest(empty) = %s", got)
	}
}

func TestCallCost(t *testing.T) {
	p, err := audit.NewPrices(map[string]audit.PriceConfig{
		"anthropic.claude-3-5-haiku-20241022-v1:0": {Input: 1, Output: 2},
		"meta.llama3-1-70b-instruct-v1:0":          {Input: 1, Output: 2},
		"amazon.nova-lite-v1:0":                    {Input: 5, Output: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := bedrock.Usage{Input: 1e6, Output: 1e6}
	const profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
	for _, tc := range []struct {
		canonical string
		resolved  []string
		cost      float64
		ok        bool
	}{
		{"us.anthropic.claude-3-5-haiku-20241022-v1:0", nil, 3, true},
		{profile, []string{"anthropic.claude-3-5-haiku-20241022-v1:0"}, 3, true},
		// A router over models of one price is priced; over different prices it is not.
		{profile, []string{"anthropic.claude-3-5-haiku-20241022-v1:0", "meta.llama3-1-70b-instruct-v1:0"}, 3, true},
		{profile, []string{"anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.nova-lite-v1:0"}, 0, false},
		{profile, []string{"anthropic.claude-3-5-haiku-20241022-v1:0", "mistral.mistral-large-2407-v1:0"}, 0, false},
		{profile, nil, 0, false},
	} {
		c := &call{}
		c.rec.ModelCanonical, c.rec.ModelResolved = tc.canonical, tc.resolved
		if cost, ok := callCost(p, c, u); cost != tc.cost || ok != tc.ok {
			t.Errorf("callCost(%s, %v) = %v, %v; want %v, %v", tc.canonical, tc.resolved, cost, ok, tc.cost, tc.ok)
		}
	}
	if _, ok := callCost(nil, &call{}, u); ok {
		t.Error("no table, yet a cost")
	}
}

// streamTransport answers with a canned event stream.
type streamTransport struct{ body []byte }

func (s streamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {eventStreamType}, "X-Amzn-Requestid": {"abc"}},
		Body:   io.NopCloser(bytes.NewReader(s.body)), ContentLength: -1, Request: r}, nil
}

// cannedStream is a ConverseStream answer of n text deltas and its
// metadata event, or an InvokeModelWithResponseStream one of n Anthropic
// chunks ending in invocation metrics.
func cannedStream(op bedrock.Operation, n int) []byte {
	var b bytes.Buffer
	chunk := func(v string) {
		p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(v)), "p": "abcdef"})
		b.Write(bedrock.EncodeEvent("chunk", p))
	}
	if op == bedrock.OpConverseStream {
		b.Write(bedrock.EncodeEvent("messageStart", []byte(`{"role":"assistant"}`)))
		for i := range n {
			b.Write(bedrock.EncodeEvent("contentBlockDelta", fmt.Appendf(nil, `{"contentBlockIndex":0,"delta":{"text":"word %d and a few more "}}`, i)))
		}
		b.Write(bedrock.EncodeEvent("messageStop", []byte(`{"stopReason":"end_turn"}`)))
		b.Write(bedrock.EncodeEvent("metadata", []byte(`{"usage":{"inputTokens":30,"outputTokens":120,"totalTokens":150},"metrics":{"latencyMs":321}}`)))
		return b.Bytes()
	}
	chunk(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":30,"output_tokens":1}}}`)
	for i := range n {
		chunk(fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word %d and a few more "}}`, i))
	}
	chunk(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":120}}`)
	chunk(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":30,"outputTokenCount":120,"invocationLatency":900,"firstByteLatency":100}}`)
	return b.Bytes()
}

type lastRecord struct {
	discardAudit
	rec audit.Record
}

func (l *lastRecord) Write(r *audit.Record) { l.rec = *r }

// BenchmarkRelayStream runs a 100-event stream through the endpoint
// handler against a canned upstream; ns/event is the handler's cost per
// event, hashing and usage included. BenchmarkStreamAuditEvent isolates
// the audit part of that cost.
func BenchmarkRelayStream(b *testing.B) {
	const events = 100
	for _, op := range []bedrock.Operation{bedrock.OpConverseStream, bedrock.OpInvokeModelWithResponseStream} {
		b.Run(string(op), func(b *testing.B) {
			cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [ConverseStream, InvokeModelWithResponseStream]}}]
audit: {prices: {"anthropic.*": {input_per_mtok: 1, output_per_mtok: 5}}}
`))
			if err != nil {
				b.Fatal(err)
			}
			rec := &lastRecord{}
			s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: rec})
			if err != nil {
				b.Fatal(err)
			}
			stream := cannedStream(op, events)
			s.upstreamRT = streamTransport{stream}
			path, body := "converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
			if op == bedrock.OpInvokeModelWithResponseStream {
				path, body = "invoke-with-response-stream", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
			}
			h := s.Handler()
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				r := httptest.NewRequest("POST", "http://127.0.0.1:8480/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/"+path, strings.NewReader(body))
				r.RemoteAddr = "127.0.0.1:5555"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.StopTimer()
			if !rec.rec.Usage.Known || rec.rec.Usage.Output != 120 || !rec.rec.CostKnown {
				b.Fatalf("record: usage %+v cost %v %v", rec.rec.Usage, rec.rec.CostUSD, rec.rec.CostKnown)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(events+4)), "ns/event")
		})
	}
}

func BenchmarkStreamAuditEvent(b *testing.B) {
	for _, op := range []bedrock.Operation{bedrock.OpConverseStream, bedrock.OpInvokeModelWithResponseStream} {
		b.Run(string(op), func(b *testing.B) {
			fr := bedrock.NewFrameReader(bytes.NewReader(cannedStream(op, 1)))
			_, _ = fr.Next()
			f, err := fr.Next() // a text delta
			if err != nil {
				b.Fatal(err)
			}
			c := &call{route: bedrock.Route{Op: op}}
			var sa streamAudit
			sa.init(c)
			b.ReportAllocs()
			for b.Loop() {
				sa.h.Write(f.Raw)
				sa.usage.Observe(f)
			}
		})
	}
}

// BenchmarkPromptHash is what the pipeline pays per call for
// prompt_sha256 on BenchmarkHandler's 4 KB prompt.
func BenchmarkPromptHash(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("x", 4096) + `"}]}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = newPromptDigest(body)
	}
}

// fixedTransport answers with the given headers and body.
type fixedTransport struct {
	header http.Header
	body   []byte
}

func (f fixedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: f.header.Clone(), Body: io.NopCloser(bytes.NewReader(f.body)), ContentLength: -1, Request: r}, nil
}

// TestUsageSources: InvokeModel's headers outrank its body; a stream's
// final invocation metrics outrank the model's own counts; an answer too
// large to keep still gets its hash.
func TestUsageSources(t *testing.T) {
	cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: ["*"]}}]
audit: {prices: {"anthropic.*": {input_per_mtok: 1, output_per_mtok: 5}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &lastRecord{}
	s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	do := func(path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8480/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/"+path, strings.NewReader(body))
		r.RemoteAddr = "127.0.0.1:5555"
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
		}
		return w
	}
	const anth = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`

	s.upstreamRT = fixedTransport{
		header: http.Header{"Content-Type": {"application/json"}, bedrock.HeaderInputTokens: {"100"}, bedrock.HeaderOutputTokens: {"50"},
			bedrock.HeaderCacheReadTokens: {"1000"}},
		body: []byte(`{"type":"message","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":1,"output_tokens":1}}`),
	}
	w := do("invoke", anth)
	if u := rec.rec.Usage; !u.Known || u.Input != 100 || u.Output != 50 || u.CacheRead != 1000 {
		t.Errorf("InvokeModel usage %+v; want the headers' 100/50/1000", u)
	}
	if want := (100*1.0 + 50*5.0) / 1e6; !rec.rec.CostKnown || rec.rec.CostUSD != want {
		t.Errorf("cost %v, %v; want %v", rec.rec.CostUSD, rec.rec.CostKnown, want)
	}
	if got := sha256Hex(w.Body.Bytes()); rec.rec.ResponseSHA256 != got {
		t.Errorf("response_sha256 %s; the client got %s", rec.rec.ResponseSHA256, got)
	}

	// No headers: the body says.
	s.upstreamRT = fixedTransport{header: http.Header{"Content-Type": {"application/json"}},
		body: []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"usage":{"inputTokens":7,"outputTokens":3,"cacheWriteInputTokens":11}}`)}
	do("converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	if u := rec.rec.Usage; !u.Known || u.Input != 7 || u.Output != 3 || u.CacheWrite != 11 {
		t.Errorf("Converse usage %+v", u)
	}

	// An answer over maxUsageCapture passes whole and is hashed, without tokens.
	big := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"` + strings.Repeat("y", maxUsageCapture) + `"}]}},"usage":{"inputTokens":7,"outputTokens":3}}`)
	s.upstreamRT = fixedTransport{header: http.Header{"Content-Type": {"application/json"}}, body: big}
	w = do("converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	if rec.rec.Usage.Known || rec.rec.CostKnown || w.Body.Len() != len(big) || rec.rec.ResponseSHA256 != sha256Hex(big) {
		t.Errorf("large answer: usage %+v, cost known %v, %d of %d bytes, hash ok %v", rec.rec.Usage, rec.rec.CostKnown,
			w.Body.Len(), len(big), rec.rec.ResponseSHA256 == sha256Hex(big))
	}

	// A stream: the model's message_delta says 60 after the metrics said
	// 40; Bedrock's count stands.
	var st bytes.Buffer
	for _, c := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}`,
		`{"type":"message_delta","usage":{"output_tokens":50}}`,
		`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":10,"outputTokenCount":40}}`,
		`{"type":"message_delta","usage":{"output_tokens":60}}`,
	} {
		p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(c))})
		st.Write(bedrock.EncodeEvent("chunk", p))
	}
	s.upstreamRT = fixedTransport{header: http.Header{"Content-Type": {eventStreamType}}, body: st.Bytes()}
	w = do("invoke-with-response-stream", anth)
	if u := rec.rec.Usage; !u.Known || u.Input != 10 || u.Output != 40 {
		t.Errorf("stream usage %+v; want the metrics' 10/40", u)
	}
	if !bytes.Equal(w.Body.Bytes(), st.Bytes()) || rec.rec.ResponseSHA256 != sha256Hex(st.Bytes()) {
		t.Errorf("stream: the client got %d bytes of %d; hash matches %v", w.Body.Len(), st.Len(), rec.rec.ResponseSHA256 == sha256Hex(w.Body.Bytes()))
	}
}
