package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
)

// usagePrices is the price table the usage tests configure (USD per
// million tokens); haiku has its own price, other haiku versions
// the prefix's.
const usagePrices = `
audit:
  prices:
    "anthropic.claude-3-5-haiku-20241022-v1:0": {input_per_mtok: 0.8, output_per_mtok: 4, cache_read_per_mtok: 0.08, cache_write_per_mtok: 1}
    "anthropic.claude-3-5-haiku-*": {input_per_mtok: 3, output_per_mtok: 15}
`

// wireTap records, per call, the body the SDK sent and the bytes it
// received (a stream's bytes as the SDK reads them).
type wireTap struct {
	base http.RoundTripper
	mu   sync.Mutex
	sent [][]byte
	got  []*bytes.Buffer
	hdr  http.Header // the last response's
}

func (w *wireTap) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := w.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	w.mu.Lock()
	w.sent = append(w.sent, body)
	w.got = append(w.got, buf)
	w.hdr = resp.Header.Clone()
	w.mu.Unlock()
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(resp.Body, lockedWriter{&w.mu, buf}), resp.Body}
	return resp, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// last returns the hex SHA-256 of the last call's request body and of the
// response bytes received so far.
func (w *wireTap) last() (sent, got string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := sha256.Sum256(w.sent[len(w.sent)-1])
	g := sha256.Sum256(w.got[len(w.got)-1].Bytes())
	return hex.EncodeToString(s[:]), hex.EncodeToString(g[:])
}

func wantCost(in, out, cacheRead, cacheWrite int64, p [4]float64) float64 {
	return (float64(in)*p[0] + float64(out)*p[1] + float64(cacheRead)*p[2] + float64(cacheWrite)*p[3]) / 1e6
}

var haikuPrice = [4]float64{0.8, 4, 0.08, 1}

func checkUsageRecord(t *testing.T, what string, rec audit.Record, in, out int64, price [4]float64, tap *wireTap) {
	t.Helper()
	if guarded := len(rec.Findings) > 0; guarded != (rec.App != "" && strings.Contains(t.Name(), "guarded")) {
		t.Errorf("%s: findings %+v", what, rec.Findings)
	}
	if !rec.Usage.Known || rec.Usage.Input != in || rec.Usage.Output != out {
		t.Errorf("%s: record usage %+v; want input %d output %d", what, rec.Usage, in, out)
	}
	if want := wantCost(in, out, 0, 0, price); !rec.CostKnown || math.Abs(rec.CostUSD-want) > 1e-12 {
		t.Errorf("%s: cost %v (known %v); want %v", what, rec.CostUSD, rec.CostKnown, want)
	}
	sent, got := tap.last()
	if rec.ResponseSHA256 != got {
		t.Errorf("%s: response_sha256 %s; the client received bytes hashing to %s", what, rec.ResponseSHA256, got)
	}
	// The prompt hash is set by the pipeline as soon as the body is read:
	// the body the SDK sent, not the one Warden forwarded (which may carry
	// stamped metadata or masks).
	if rec.PromptSHA256 != sent {
		t.Errorf("%s: prompt_sha256 %s; the SDK sent a body hashing to %s", what, rec.PromptSHA256, sent)
	}
	if rec.UpstreamTotal <= 0 || rec.UpstreamTotal < rec.UpstreamLatency {
		t.Errorf("%s: upstream_total %v, upstream_latency %v", what, rec.UpstreamTotal, rec.UpstreamLatency)
	}
}

// TestUsageE2E runs the four model calls through Warden with the real SDK,
// plain and behind an output guard (which relays through the guarded
// paths), and checks each record's tokens against what the answer itself
// said, in the place each operation says it: InvokeModel's headers,
// Converse's body, ConverseStream's metadata event, the final chunk's
// amazon-bedrock-invocationMetrics.
func TestUsageE2E(t *testing.T) {
	for _, tc := range []struct{ name, policy string }{
		{"plain", basePolicy + usagePrices},
		// The emulator's answers say "emulator": masked, so the guarded
		// relays rewrite what the client gets, and the hash must follow.
		{"guarded", basePolicy + "    guards: [out-words]\n" +
			"guards:\n  out-words: {words: {list: [emulator], action: mask}, applies_to: [output]}\n" + usagePrices},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, withPolicy(tc.policy))
			tap := &wireTap{base: http.DefaultTransport}
			c := e.client(t, &http.Client{Transport: tap})
			ctx := context.Background()
			n := 0

			// InvokeModel: the tokens are in the response headers.
			// (A system profile: priced as its foundation model.)
			if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
				ModelId: aws.String(usHaiku), ContentType: aws.String("application/json"), Body: []byte(anthropicBody),
			}); err != nil {
				t.Fatalf("InvokeModel: %v", err)
			}
			tap.mu.Lock()
			hdr := tap.hdr
			tap.mu.Unlock()
			in, _ := strconv.ParseInt(hdr.Get("X-Amzn-Bedrock-Input-Token-Count"), 10, 64)
			out, _ := strconv.ParseInt(hdr.Get("X-Amzn-Bedrock-Output-Token-Count"), 10, 64)
			if in == 0 || out == 0 {
				t.Fatalf("the emulator sent no token headers: %v", hdr)
			}
			n++
			checkUsageRecord(t, "InvokeModel", e.audit.wait(t, n)[n-1], in, out, haikuPrice, tap)

			// Converse: usage in the body.
			conv, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello there, how many tokens is this")})
			if err != nil {
				t.Fatalf("Converse: %v", err)
			}
			n++
			checkUsageRecord(t, "Converse", e.audit.wait(t, n)[n-1],
				int64(aws.ToInt32(conv.Usage.InputTokens)), int64(aws.ToInt32(conv.Usage.OutputTokens)), haikuPrice, tap)

			// An application profile: priced as the model the control
			// plane resolves it to.
			conv, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(appProfile), Messages: userMsg("through a profile")})
			if err != nil {
				t.Fatalf("Converse on %s: %v", appProfile, err)
			}
			n++
			rec := e.audit.wait(t, n)[n-1]
			if len(rec.ModelResolved) != 1 || rec.ModelResolved[0] != haiku {
				t.Errorf("Converse on a profile: model_resolved %v", rec.ModelResolved)
			}
			checkUsageRecord(t, "Converse on a profile", rec,
				int64(aws.ToInt32(conv.Usage.InputTokens)), int64(aws.ToInt32(conv.Usage.OutputTokens)), haikuPrice, tap)

			// ConverseStream: usage in the metadata event, the last.
			cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("stream please, a few words")})
			if err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			var meta *types.TokenUsage
			for ev := range cs.GetStream().Events() {
				if m, ok := ev.(*types.ConverseStreamOutputMemberMetadata); ok {
					meta = m.Value.Usage
				}
			}
			if err := cs.GetStream().Err(); err != nil || meta == nil {
				t.Fatalf("ConverseStream: metadata %v, err %v", meta, err)
			}
			_ = cs.GetStream().Close()
			n++
			checkUsageRecord(t, "ConverseStream", e.audit.wait(t, n)[n-1],
				int64(aws.ToInt32(meta.InputTokens)), int64(aws.ToInt32(meta.OutputTokens)), haikuPrice, tap)

			// InvokeModelWithResponseStream on a sonnet model (the
			// price of a prefix): usage in the final chunk's invocation metrics.
			const sonnet = "anthropic.claude-3-5-haiku-20251001-v1:0" // not haiku itself: the prefix price
			st, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{
				ModelId: aws.String(sonnet), ContentType: aws.String("application/json"), Body: []byte(anthropicBody),
			})
			if err != nil {
				t.Fatalf("InvokeModelWithResponseStream: %v", err)
			}
			var last []byte
			for ev := range st.GetStream().Events() {
				if ch, ok := ev.(*types.ResponseStreamMemberChunk); ok {
					last = ch.Value.Bytes
				}
			}
			if err := st.GetStream().Err(); err != nil {
				t.Fatalf("InvokeModelWithResponseStream: %v", err)
			}
			_ = st.GetStream().Close()
			var final struct {
				M *struct{ InputTokenCount, OutputTokenCount int64 } `json:"amazon-bedrock-invocationMetrics"`
			}
			if err := json.Unmarshal(last, &final); err != nil || final.M == nil {
				t.Fatalf("the last chunk carries no invocation metrics: %s", last)
			}
			n++
			checkUsageRecord(t, "InvokeModelWithResponseStream", e.audit.wait(t, n)[n-1],
				final.M.InputTokenCount, final.M.OutputTokenCount, [4]float64{3, 15, 0, 0}, tap)
		})
	}
}
