package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestRecordJSON(t *testing.T) {
	var buf []byte
	for _, r := range []*Record{{
		Time: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC), RequestID: "r1", UpstreamRequestID: "u1",
		Client: "127.0.0.1:5000", Protocol: "HTTP/2.0", IdentitySource: "static", Tags: map[string]string{"app": "a"},
		App: "a-prod", Operation: "Converse", Model: "m", ModelCanonical: "m", PolicyHash: "0123456789ab", Decision: "allow", Rule: "apps[0]",
		Reason: "allowed", Status: 200, BytesIn: 10, BytesOut: 20, Latency: 1500 * time.Microsecond,
	}, {RequestID: "r2", Decision: "deny", Status: 403, ErrorType: "AccessDeniedException"}} {
		buf = append(r.AppendJSON(buf), '\n')
	}
	lines := bytes.Split(bytes.TrimSpace(buf), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per record:\n%s", len(lines), buf)
	}
	var got map[string]any
	if err := json.Unmarshal(lines[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"v": 2.0, "time": "2026-11-22T04:00:00Z", "request_id": "r1", "upstream_request_id": "u1", "client": "127.0.0.1:5000",
		"protocol": "HTTP/2.0", "identity_source": "static", "tags": map[string]any{"app": "a"}, "app": "a-prod",
		"operation": "Converse", "model": "m", "model_canonical": "m", "policy_hash": "0123456789ab", "decision": "allow", "rule": "apps[0]",
		"reason": "allowed", "status": 200.0, "bytes_in": 10.0, "bytes_out": 20.0, "latency_ms": 1.5,
	}
	for k, v := range want {
		gv, _ := json.Marshal(got[k])
		wv, _ := json.Marshal(v)
		if !bytes.Equal(gv, wv) {
			t.Errorf("%s = %s, want %s", k, gv, wv)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %q", k)
		}
	}
	if err := json.Unmarshal(lines[1], &got); err != nil || got["error_type"] != "AccessDeniedException" {
		t.Errorf("second record: %s", lines[1])
	}
}

// BenchmarkWrite: one typical allowed-call record encoded as a line into
// io.Discard (the encoding, not the disk); zap is the same record through
// a zap logger, as records were written before.
func BenchmarkWrite(b *testing.B) {
	rec := &Record{
		Time: time.Now(), RequestID: "0f8fad5b-d9cb-469f-a165-70867728950e", UpstreamRequestID: "4c1a8e5b-7f7d-4f55-a1a7-6a5c2f0f6a11",
		Client: "127.0.0.1:53412", Protocol: "HTTP/1.1", IdentitySource: "static", Tags: map[string]string{"app": "bench", "env": "prod"},
		App: "bench-prod", Operation: "Converse", Model: "anthropic.claude-3-5-haiku-20241022-v1:0", ModelCanonical: "anthropic.claude-3-5-haiku-20241022-v1:0",
		PolicyHash: "0123456789ab", Decision: "allow", Rule: "apps[0]", Reason: "allowed by apps[0] (bench-prod)", Status: 200,
		BytesIn: 4200, BytesOut: 180, Latency: 1234567 * time.Nanosecond, UpstreamLatency: 987654 * time.Nanosecond,
	}
	b.Run("appendjson", func(b *testing.B) {
		var line []byte
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			line = append(rec.AppendJSON(line[:0]), '\n')
			_, _ = io.Discard.Write(line)
		}
	})
	b.Run("zap", func(b *testing.B) {
		bws := zapcore.AddSync(io.Discard)
		enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{LineEnding: zapcore.DefaultLineEnding, EncodeTime: zapcore.RFC3339NanoTimeEncoder})
		log := zap.New(zapcore.NewCore(enc, bws, zapcore.InfoLevel))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			log.Info("", zap.Inline(rec))
		}
	})
}

// zapLine is the reference: the record through zap's JSON encoder, as
// Warden wrote records before AppendJSON.
func zapLine(r *Record) []byte {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{LineEnding: zapcore.DefaultLineEnding, EncodeTime: zapcore.RFC3339NanoTimeEncoder})
	zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.InfoLevel)).Info("", zap.Inline(r))
	return buf.Bytes()
}

// writerLine is the record as a sink's line (AppendJSON) with zap's line
// ending.
func writerLine(r *Record) []byte {
	return append(r.AppendJSON(nil), '\n')
}

func TestAppendJSONMatchesZap(t *testing.T) {
	weird := "q\"b\\s/\n\r\t\x00\x01\x1f\x7f <>&é\u2028\u2029😀\xff\xc3(\xed\xa0\x80end"
	est := time.FixedZone("EST", -5*3600)
	for i, r := range []*Record{
		{},
		{RequestID: "r2", Decision: "deny", Status: 403, ErrorType: "AccessDeniedException"},
		{
			Time: time.Date(2026, 11, 22, 4, 0, 0, 123456789, time.UTC), RequestID: "r1", UpstreamRequestID: "u1",
			Client: "127.0.0.1:5000", Protocol: "HTTP/2.0", Mode: "proxy", Host: "bedrock-runtime.us-east-1.amazonaws.com", Signing: "passthrough", IdentitySource: "static", IdentityStale: true, Tags: map[string]string{"app": "a"},
			App: "a-prod", EndUser: "sha256:ab", Operation: "Converse", Model: "m", ModelCanonical: "m", ModelResolved: []string{"x", "y"}, ModelResolvedStale: true,
			PolicyHash: "0123456789ab", Decision: "allow", Rule: "apps[0]", Reason: "allowed", Status: 200, BytesIn: 10, BytesOut: 1 << 40,
			Latency: 1500 * time.Microsecond, UpstreamLatency: 987654321 * time.Nanosecond,
			Instance: "warden-a1", WeakTags: []string{"aws.access_key_id"}, UpstreamTotal: 2 * time.Second, Incomplete: true,
			PromptSHA256: "ab", ResponseSHA256: "cd", Usage: Usage{Known: true, Input: 12, Output: 34, CacheRead: 5, CacheWrite: 6},
			CostUSD: 0.000123, CostKnown: true,
			Path: Path{Account: "222233334444", VPC: "vpc-1", Subnet: "subnet-1", ENI: "eni-1", VPCEndpoint: "vpce-0a1b2c3d",
				Upstream: "vpce-0abc-x.bedrock-runtime.us-east-1.vpce.amazonaws.com", UpstreamVPCEndpoint: "vpce-0abc", Region: "us-east-1"},
		},
		{Path: Path{VPCEndpoint: "vpce-only"}},
		{Usage: Usage{Known: true}, CostKnown: true, CostUSD: 1e21},
		{
			Time: time.Date(1999, 1, 2, 3, 4, 5, 6000, est), RequestID: weird, UpstreamRequestID: weird, Client: weird, Protocol: weird, Mode: weird, Host: weird, Signing: weird,
			IdentitySource: weird, Tags: map[string]string{weird: weird}, App: weird, EndUser: weird, Operation: weird, Model: weird, ModelCanonical: weird,
			ModelResolved: []string{weird, ""}, Instance: weird, Path: Path{weird, weird, weird, weird, weird, weird, weird, weird}, WeakTags: []string{weird}, PromptSHA256: weird, PolicyHash: weird, Decision: weird, Rule: weird, Reason: weird, Status: -1, ErrorType: weird,
			BytesIn: -5, Latency: 999 * time.Nanosecond, UpstreamLatency: 1,
			Findings: []Finding{{Guard: weird, Detector: weird, Type: weird, Count: -3, Action: weird, Phase: weird}, {}},
		},
		{RequestID: "f", Decision: "deny", Status: 403, Findings: []Finding{
			{Guard: "pii-block", Detector: "pii", Type: "US_SOCIAL_SECURITY_NUMBER", Count: 2, Action: "block"},
			{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: "mask"},
			{Guard: "pii-mask", Detector: "pii", Type: "EMAIL", Count: 2, Action: "mask", Phase: "output"},
		}},
		{ModelResolvedStale: true, Latency: 1234567 * time.Hour, Tags: map[string]string{}},
		{Operation: "InvokeAgent", Agent: &AgentFields{AgentID: "AGENT00001", AgentAliasID: "ALIAS00001", SessionID: weird, KnowledgeBases: []string{"KB1", weird}, Models: []string{"m"}}},
		{Operation: "InvokeFlow", Agent: &AgentFields{FlowID: "F", FlowAliasID: "A"}},
		{Operation: "Retrieve", Agent: &AgentFields{}},
	} {
		got, want := writerLine(r), zapLine(r)
		if !bytes.Equal(got, want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Several tags: zap writes them in map order, AppendJSON sorted; the
	// same object either way.
	r := &Record{RequestID: "r", Tags: map[string]string{"b": "2", "a": "1", "c\n": "3"}}
	got := writerLine(r)
	if !bytes.Contains(got, []byte(`"tags":{"a":"1","b":"2","c\n":"3"}`)) {
		t.Errorf("tags not sorted: %s", got)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(zapLine(r), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("with several tags:\n got %s\nwant %s", gb, wb)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("r", "k", "v", "reason", int64(12345), 200)
	f.Add("\xff\"\\\n", "\x00", "é\u2028", "<&>", int64(-1), -7)
	f.Fuzz(func(t *testing.T, id, k, v, reason string, lat int64, status int) {
		r := &Record{Time: time.Unix(0, lat).UTC(), RequestID: id, Tags: map[string]string{k: v}, App: v, Reason: reason, Status: status, Count: status,
			Latency: time.Duration(lat), UpstreamLatency: time.Duration(lat / 3), ModelResolved: []string{k, v},
			Findings: []Finding{{Guard: k, Detector: v, Type: reason, Count: status, Action: id}, {Guard: v, Action: k, Phase: reason}}}
		if got, want := writerLine(r), zapLine(r); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func TestAppendMillis(t *testing.T) {
	for _, us := range []int64{0, 1, -1, 9, 10, 100, 999, 1000, 1001, 1500, 123456789, -123456789, 1<<50 - 1, -(1<<50 - 1), 1 << 50, 1<<53 + 1, 1<<62 + 12345, -1 << 62} {
		for _, extra := range []time.Duration{0, 999, -999} {
			d := time.Duration(us)*time.Microsecond + extra
			got := string(appendMillis(nil, d))
			want := strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
			if got != want {
				t.Errorf("%d ns: %s, want %s", d, got, want)
			}
		}
	}
}

func FuzzAppendMillis(f *testing.F) {
	f.Add(int64(1500000))
	f.Fuzz(func(t *testing.T, ns int64) {
		got := string(appendMillis(nil, time.Duration(ns)))
		if want := strconv.FormatFloat(float64(time.Duration(ns).Microseconds())/1000, 'f', -1, 64); got != want {
			t.Fatalf("%d ns: %s, want %s", ns, got, want)
		}
	})
}
