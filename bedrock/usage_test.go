package bedrock

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readUsageFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "usage", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUsageFromResponse(t *testing.T) {
	for _, tc := range []struct {
		file   string
		op     Operation
		family string
		want   Usage
	}{
		{"converse.json", OpConverse, FamilyAnthropic, Usage{Input: 25, Output: 118, CacheRead: 1024}},
		{"anthropic.json", OpInvokeModel, FamilyAnthropic, Usage{Input: 12, Output: 6, CacheWrite: 2048}},
		{"titan.json", OpInvokeModel, FamilyTitanText, Usage{Input: 9, Output: 41}},
		{"nova.json", OpInvokeModel, FamilyNova, Usage{Input: 7, Output: 3}},
		{"llama.json", OpInvokeModel, FamilyLlama, Usage{Input: 18, Output: 7}},
		{"mistral-chat.json", OpInvokeModel, FamilyMistral, Usage{Input: 11, Output: 4}},
		{"jamba.json", OpInvokeModel, FamilyJamba, Usage{Input: 20, Output: 2}},
		{"cohere.json", OpInvokeModel, FamilyCohereCommandR, Usage{Input: 14, Output: 5}},
		// An unresolved family still reports what it recognises.
		{"anthropic.json", OpInvokeModel, FamilyUnknown, Usage{Input: 12, Output: 6, CacheWrite: 2048}},
	} {
		t.Run(tc.file+"/"+tc.family, func(t *testing.T) {
			got, ok := UsageFromResponse(tc.op, tc.family, readUsageFixture(t, tc.file))
			if !ok || got != tc.want {
				t.Errorf("UsageFromResponse(%s, %q, %s) = %+v, %v; want %+v, true", tc.op, tc.family, tc.file, got, ok, tc.want)
			}
		})
	}
}

func TestUsageFromResponseUnknown(t *testing.T) {
	for name, body := range map[string]string{
		"mistral text (no counts)": string(readUsageFixture(t, "mistral-text.json")),
		"not JSON":                 `usage: {"inputTokens": 3}`,
		"truncated":                `{"usage":{"inputTokens":3,"outputTokens":4}`,
		"negative":                 `{"usage":{"inputTokens":-3,"outputTokens":-4}}`,
		"strings":                  `{"usage":{"inputTokens":"3","outputTokens":"4"}}`,
		"fractional":               `{"usage":{"inputTokens":3.5}}`,
		"huge":                     `{"usage":{"inputTokens":123456789012345678901234567890}}`,
		"nested too deep":          `{"usage":{"usage":{"usage":{"usage":{"usage":{"usage":{"inputTokens":1}}}}}}}`,
		"cache only":               `{"usage":{"cacheReadInputTokens":5}}`,
		"text mentions tokens":     `{"output":{"message":{"content":[{"text":"\"inputTokens\": 5"}]}}}`,
	} {
		if u, ok := UsageFromResponse(OpConverse, FamilyUnknown, []byte(body)); ok {
			t.Errorf("%s: UsageFromResponse(%s) = %+v, true; want false", name, body, u)
		}
	}
	if _, ok := UsageFromResponse(OpConverseStream, "", readUsageFixture(t, "converse.json")); ok {
		t.Error("a stream operation's body should report no usage")
	}
	// "12.0" is a count; the first spelling of a count wins.
	u, ok := UsageFromResponse(OpInvokeModel, FamilyUnknown, []byte(`{"usage":{"input_tokens":12.0,"output_tokens":3,"outputTokens":99}}`))
	if want := (Usage{Input: 12, Output: 3}); !ok || u != want {
		t.Errorf("got %+v, %v; want %+v", u, ok, want)
	}
}

func TestUsageFromHeaders(t *testing.T) {
	h := http.Header{}
	if _, ok := UsageFromHeaders(h); ok {
		t.Error("no headers: want false")
	}
	// Canonical forms, as net/http stores what Bedrock sends in lower case.
	h.Set("x-amzn-bedrock-input-token-count", "120")
	h.Set("x-amzn-bedrock-output-token-count", "33")
	h.Set("x-amzn-bedrock-cache-read-input-token-count", "4096")
	h.Set("x-amzn-bedrock-cache-write-input-token-count", "8")
	if u, ok := UsageFromHeaders(h); !ok || u != (Usage{Input: 120, Output: 33, CacheRead: 4096, CacheWrite: 8}) {
		t.Errorf("got %+v, %v", u, ok)
	}
	h = http.Header{}
	h.Set(HeaderInputTokens, "x12")
	h.Set(HeaderCacheReadTokens, "5")
	if u, ok := UsageFromHeaders(h); ok {
		t.Errorf("malformed input count and no output: got %+v, true", u)
	}
}

// chunkFrame wraps decoded chunk bytes the way InvokeModelWithResponseStream sends them.
func chunkFrame(t testing.TB, decoded []byte) *Frame {
	t.Helper()
	payload, err := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(decoded), "p": "abc"})
	if err != nil {
		t.Fatal(err)
	}
	return readFrame(t, EncodeEvent("chunk", payload))
}

func readFrame(t testing.TB, raw []byte) *Frame {
	t.Helper()
	f, err := NewFrameReader(bytes.NewReader(raw)).Next()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func fixtureLines(t testing.TB, name string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(readUsageFixture(t, name)))
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

func TestStreamUsage(t *testing.T) {
	for _, tc := range []struct {
		file      string
		family    string
		want      Usage
		finalOnly bool // only the last event reports (Bedrock's metrics)
	}{
		{"anthropic-stream.jsonl", FamilyAnthropic, Usage{Input: 21, Output: 37, CacheRead: 512}, false},
		{"anthropic-stream-nometrics.jsonl", FamilyAnthropic, Usage{Input: 21, Output: 37}, false},
		{"llama-stream.jsonl", FamilyLlama, Usage{Input: 18, Output: 3}, false},
		{"titan-stream.jsonl", FamilyTitanText, Usage{Input: 9, Output: 4}, false},
		{"nova-stream.jsonl", FamilyNova, Usage{Input: 6, Output: 2}, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			su := StreamUsage{Op: OpInvokeModelWithResponseStream, Family: tc.family}
			lines := fixtureLines(t, tc.file)
			for i, l := range lines {
				f := chunkFrame(t, []byte(l))
				_, ok := UsageFromStreamEvent(OpInvokeModelWithResponseStream, tc.family, f)
				if tc.finalOnly && ok != (i == len(lines)-1) {
					t.Errorf("event %d reports usage: %v", i, ok)
				}
				su.Observe(f)
			}
			if u, ok := su.Usage(); !ok || u != tc.want {
				t.Errorf("stream usage = %+v, %v; want %+v", u, ok, tc.want)
			}
		})
	}
}

// Bedrock's final metrics win over the model's own (cumulative) counts,
// even when a model reported a larger number before.
func TestStreamUsageMetricsWin(t *testing.T) {
	su := StreamUsage{Op: OpInvokeModelWithResponseStream, Family: FamilyAnthropic}
	su.Observe(chunkFrame(t, []byte(`{"type":"message_delta","usage":{"output_tokens":50}}`)))
	su.Observe(chunkFrame(t, []byte(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":10,"outputTokenCount":40}}`)))
	su.Observe(chunkFrame(t, []byte(`{"type":"message_delta","usage":{"output_tokens":60,"cache_read_input_tokens":3}}`)))
	if u, ok := su.Usage(); !ok || u != (Usage{Input: 10, Output: 40, CacheRead: 3}) {
		t.Errorf("got %+v, %v", u, ok)
	}
}

func TestStreamUsageConverse(t *testing.T) {
	su := StreamUsage{Op: OpConverseStream}
	lines := fixtureLines(t, "converse-stream.jsonl")
	for i, l := range lines {
		typ, payload, _ := strings.Cut(l, "\t")
		f := readFrame(t, EncodeEvent(typ, []byte(payload)))
		if _, ok := UsageFromStreamEvent(OpConverseStream, "", f); ok != (i == len(lines)-1) {
			t.Errorf("event %d (%s) reports usage: %v", i, typ, ok)
		}
		su.Observe(f)
	}
	if u, ok := su.Usage(); !ok || u != (Usage{Input: 30, Output: 12, CacheRead: 100, CacheWrite: 7}) {
		t.Errorf("got %+v, %v", u, ok)
	}
	// An exception frame with a usage-shaped payload is not usage.
	ex := readFrame(t, EncodeException(&APIError{Type: "ThrottlingException", Message: `{"usage":{"inputTokens":1}}`, Status: 429}))
	if _, ok := UsageFromStreamEvent(OpConverseStream, "", ex); ok {
		t.Error("exception frame reported usage")
	}
}

// A chunk whose payload is not laid out as the SDK writes it is still read;
// one whose bytes are not base64 reports nothing.
func TestChunkBytesLayouts(t *testing.T) {
	inner := base64.StdEncoding.EncodeToString([]byte(`{"amazon-bedrock-invocationMetrics":{"inputTokenCount":1,"outputTokenCount":2}}`))
	for payload, want := range map[string]bool{
		`{"p":"x","bytes":"` + inner + `"}`:                 true,
		` { "bytes" : "` + inner + `" }`:                    true,
		`{"bytes":"` + strings.TrimRight(inner, "=") + `"}`: true,
		`{"bytes":"!!!"}`:                                   false,
		`{"bytes":12}`:                                      false,
		`not json`:                                          false,
	} {
		f := readFrame(t, EncodeEvent("chunk", []byte(payload)))
		if _, ok := UsageFromStreamEvent(OpInvokeModelWithResponseStream, "", f); ok != want {
			t.Errorf("payload %s: ok = %v, want %v", payload, ok, want)
		}
	}
}

func TestStreamUsageAllocs(t *testing.T) {
	delta := chunkFrame(t, []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, world"}}`))
	conv := readFrame(t, EncodeEvent("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Hello"}}`)))
	su := &StreamUsage{Op: OpInvokeModelWithResponseStream, Family: FamilyAnthropic}
	if n := testing.AllocsPerRun(100, func() { su.Observe(delta) }); n != 0 {
		t.Errorf("a text chunk costs %v allocations", n)
	}
	cs := &StreamUsage{Op: OpConverseStream}
	if n := testing.AllocsPerRun(100, func() { cs.Observe(conv) }); n != 0 {
		t.Errorf("a ConverseStream delta costs %v allocations", n)
	}
}

func BenchmarkStreamUsage(b *testing.B) {
	for _, bc := range []struct {
		name string
		op   Operation
		f    *Frame
	}{
		{"chunk-text", OpInvokeModelWithResponseStream, chunkFrame(b, []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, world, and a few more words"}}`))},
		{"chunk-final", OpInvokeModelWithResponseStream, chunkFrame(b, []byte(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":37,"invocationLatency":811,"firstByteLatency":302}}`))},
		{"converse-delta", OpConverseStream, readFrame(b, EncodeEvent("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Hello there"}}`)))},
		{"converse-metadata", OpConverseStream, readFrame(b, EncodeEvent("metadata", []byte(`{"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42},"metrics":{"latencyMs":321}}`)))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			su := &StreamUsage{Op: bc.op}
			b.ReportAllocs()
			for b.Loop() {
				su.Observe(bc.f)
			}
		})
	}
}

func BenchmarkUsageFromResponse(b *testing.B) {
	body := readUsageFixture(b, "converse.json")
	b.ReportAllocs()
	for b.Loop() {
		UsageFromResponse(OpConverse, "", body)
	}
}

func checkCounts(t *testing.T, u Usage) {
	for _, n := range []int64{u.Input, u.Output, u.CacheRead, u.CacheWrite} {
		if n < 0 || n > maxCount {
			t.Fatalf("count out of range: %+v", u)
		}
	}
}

// FuzzExtractUsageResponse: any body either reports nothing or is valid JSON
// with counts in range, and the same body carried in a stream's chunk event
// reports the same usage.
func FuzzExtractUsageResponse(f *testing.F) {
	for _, name := range []string{"converse.json", "anthropic.json", "titan.json", "nova.json", "llama.json", "mistral-chat.json", "jamba.json", "cohere.json"} {
		f.Add(readUsageFixture(f, name))
	}
	for _, name := range []string{"anthropic-stream.jsonl", "llama-stream.jsonl", "titan-stream.jsonl", "nova-stream.jsonl"} {
		for _, l := range fixtureLines(f, name) {
			f.Add([]byte(l))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, ok := UsageFromResponse(OpInvokeModel, FamilyUnknown, body)
		if !ok {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("usage %+v from invalid JSON %q", u, body)
		}
		checkCounts(t, u)
		payload, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(body)})
		raw := EncodeEvent("chunk", payload)
		fr, err := NewFrameReader(bytes.NewReader(raw)).Next()
		if err != nil {
			t.Fatal(err)
		}
		su := StreamUsage{Op: OpInvokeModelWithResponseStream}
		su.Observe(fr)
		if su2, ok2 := su.Usage(); ok2 != ok || su2 != u {
			t.Fatalf("as a chunk: %+v, %v; as a body: %+v, %v", su2, ok2, u, ok)
		}
	})
}

// FuzzExtractUsageStreamEvent feeds arbitrary frames: never a panic, counts
// always in range.
func FuzzExtractUsageStreamEvent(f *testing.F) {
	for _, l := range fixtureLines(f, "converse-stream.jsonl") {
		typ, payload, _ := strings.Cut(l, "\t")
		f.Add(EncodeEvent(typ, []byte(payload)))
	}
	for _, l := range fixtureLines(f, "anthropic-stream.jsonl") {
		f.Add(chunkFrame(f, []byte(l)).Raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr := NewFrameReader(bytes.NewReader(raw))
		for _, op := range []Operation{OpConverseStream, OpInvokeModelWithResponseStream} {
			su := StreamUsage{Op: op}
			for {
				fm, err := fr.Next()
				if err != nil {
					break
				}
				if u, ok := UsageFromStreamEvent(op, "", fm); ok {
					checkCounts(t, u)
				}
				su.Observe(fm)
			}
			u, _ := su.Usage()
			checkCounts(t, u)
			fr = NewFrameReader(bytes.NewReader(raw))
		}
	})
}
